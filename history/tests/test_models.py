import pytest
from django.db import DatabaseError, connection, transaction

from history.models import OrderLedgerEntry

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
