import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from history.models import OrderLedgerEntry, OutboxEvent

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE history_orderledgerentry SET delta = delta + 1",
        "UPDATE history_orderledgerentry SET reason = 'rewritten'",
        "DELETE FROM history_orderledgerentry",
    ],
)
def test_the_database_rejects_changes_to_ledger_rows(make_order, product, statement):
    # given
    make_order(lines={product.sku: 5})

    # when / then
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    assert OrderLedgerEntry.objects.get().delta == 5


def test_the_orm_cannot_edit_or_delete_a_ledger_row_either(make_order, product):
    # given
    make_order(lines={product.sku: 5})
    row = OrderLedgerEntry.objects.get()

    # when / then
    row.reason = "tampered"
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        row.save()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        OrderLedgerEntry.objects.all().delete()
    assert OrderLedgerEntry.objects.get().reason == "test"


def test_delta_must_match_before_and_after(make_order, product):
    # given
    order = make_order(lines={product.sku: 5})
    row = OrderLedgerEntry.objects.get()

    # when / then
    with pytest.raises(DatabaseError), transaction.atomic():
        OrderLedgerEntry.objects.create(
            event_id=row.event_id,
            order=order,
            product=product,
            sku=product.sku,
            version=2,
            event_type="order.quantity_adjusted",
            delta=3,
            quantity_before=5,
            quantity_after=9,
            actor="x",
            source="system",
            occurred_at=row.occurred_at,
        )


@pytest.mark.parametrize("unsettled", ["next_attempt_at", "dead_lettered_at"])
def test_a_published_event_cannot_wait_for_a_retry_or_be_dead_lettered(
    make_order, product, unsettled
):
    # given
    make_order(lines={product.sku: 1})
    event = OutboxEvent.objects.get()
    now = timezone.now()

    # then: the relay's stuck-aggregate read relies on this
    with pytest.raises(IntegrityError), transaction.atomic():
        OutboxEvent.objects.filter(pk=event.pk).update(published_at=now, **{unsettled: now})
    OutboxEvent.objects.filter(pk=event.pk).update(published_at=now)
