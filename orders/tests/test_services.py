import pytest

from history.models import OrderLedgerEntry, OutboxEvent

pytestmark = pytest.mark.django_db


def test_seed_scenario_records_one_plus_twenty_adjustment_at_version_2(make_order, product, audit):
    # given
    from orders.services import order_set_quantities

    order = make_order(lines={product.sku: 100})

    # when
    order = order_set_quantities(
        order_id=order.pk, quantities={product.sku: 120}, expected_version=1, audit=audit
    )

    # then
    adjustments = list(
        OrderLedgerEntry.objects.filter(order=order, event_type="order.quantity_adjusted")
    )
    assert len(adjustments) == 1
    assert (adjustments[0].version, adjustments[0].delta) == (2, 20)
    assert (adjustments[0].quantity_before, adjustments[0].quantity_after) == (100, 120)
    assert order.version == 2
    assert OutboxEvent.objects.filter(aggregate_id=str(order.pk)).count() == 2
