"""The admin's order timeline as an auditor reads it: the chain's verified/broken badge and
the proof link, and beside each change its hash, its seal and its event's delivery; the
reason-code filter."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from history.audit import Audit
from history.models import OrderLedgerEntry, OutboxEvent, Source
from history.relay import outbox_relay
from history.seals import ledger_seal
from orders.selectors import order_chain_problems
from orders.services import order_adjust
from orders.tests.test_verify_tampering import _as_superuser
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

DAMAGED = Audit(actor="clerk", source=Source.SYSTEM, reason="dropped", reason_code="damaged")


@pytest.fixture
def auditor_client(client):
    client.force_login(UserFactory(role="auditor"))
    return client


def timeline_url(order) -> str:
    return reverse("admin:orders_order_timeline", args=[order.pk])


def _entries(order) -> list[OrderLedgerEntry]:
    return list(OrderLedgerEntry.objects.filter(order=order).order_by("version", "id"))


def test_an_intact_chain_is_verified_with_a_link_to_its_proof(auditor_client, make_order, product):
    # given
    order = make_order(lines={product.sku: 5})

    # when
    content = auditor_client.get(timeline_url(order)).content.decode()

    # then
    assert "✓ Chain verified" in content
    assert "Chain broken" not in content
    assert f'href="{reverse("order-proof", kwargs={"order_id": order.pk})}"' in content


@pytest.mark.django_db(transaction=True)
def test_a_tampered_chain_is_broken_and_names_the_problem(auditor_client, make_order, product):
    # given: a superuser rewrites a row's reason with the guards off
    order = make_order(lines={product.sku: 5})
    row = _entries(order)[0]
    table = OrderLedgerEntry._meta.db_table
    _as_superuser(table, f"UPDATE {table} SET reason = 'nothing to see' WHERE id = %s", [row.pk])

    # when
    content = auditor_client.get(timeline_url(order)).content.decode()

    # then
    problems = [problem for _, problem in order_chain_problems(order_ids=[order.pk])]
    assert problems
    assert "✗ Chain broken" in content
    assert "Chain verified" not in content
    for problem in problems:
        assert f"<li>{escape(problem)}</li>" in content


def test_each_change_shows_its_short_hash_with_the_full_one_on_hover(
    auditor_client, make_order, product, audit
):
    # given
    order = make_order(lines={product.sku: 5})
    order_adjust(order_id=order.pk, deltas={product.sku: 1}, audit=audit)

    # when
    content = auditor_client.get(timeline_url(order)).content.decode()

    # then
    for entry in _entries(order):
        full, previous = bytes(entry.hash).hex(), bytes(entry.prev_hash).hex()
        assert (
            f'<code class="ledger-hash" title="hash {full}&#10;previous {previous}">'
            f"{full[:12]}…</code>"
        ) in content


@pytest.mark.django_db(transaction=True)
def test_a_change_is_sealed_once_a_seal_covers_it(auditor_client, make_order, product):
    # given
    order = make_order(lines={product.sku: 5})
    before = auditor_client.get(timeline_url(order))

    # when
    seal = ledger_seal()

    # then
    after = auditor_client.get(timeline_url(order))
    assert [(e.sealed, e.seal_number) for e in before.context["entries"]] == [(False, None)]
    assert '<span class="sealed-no"' in before.content.decode()
    assert [(e.sealed, e.seal_number) for e in after.context["entries"]] == [(True, seal.number)]
    assert f'<span class="sealed-yes">yes</span> · seal {seal.number}' in after.content.decode()


@pytest.mark.django_db(transaction=True)
def test_delivery_badge_is_pending_until_the_relay_publishes(auditor_client, make_order, product):
    # given
    order = make_order(lines={product.sku: 5})
    pending = auditor_client.get(timeline_url(order)).content.decode()

    # when
    outbox_relay()

    # then
    published = auditor_client.get(timeline_url(order)).content.decode()
    assert '<span class="delivery delivery-pending"' in pending
    assert '<span class="delivery delivery-published" title="Published at ' in published


def test_delivery_badge_of_a_dead_lettered_event_carries_its_last_error(
    auditor_client, make_order, product
):
    # given
    order = make_order(lines={product.sku: 5})
    OutboxEvent.objects.filter(event_id=_entries(order)[0].event_id).update(
        attempts=8, last_error="NOT_FOUND - no exchange 'x'", dead_lettered_at=timezone.now()
    )

    # when
    content = auditor_client.get(timeline_url(order)).content.decode()

    # then
    assert '<span class="delivery delivery-dead_lettered" title="Dead-lettered at ' in content
    assert "after 8 attempt(s). Last error: NOT_FOUND - no exchange &#x27;x&#x27;" in content
    assert ">dead-lettered</span>" in content


def test_delivery_badge_of_a_retrying_and_a_purged_event(auditor_client, make_order, product):
    # given
    retrying, purged = make_order(lines={product.sku: 5}), make_order(lines={product.sku: 6})
    OutboxEvent.objects.filter(event_id=_entries(retrying)[0].event_id).update(
        attempts=2, last_error="broker away", next_attempt_at=timezone.now()
    )
    OutboxEvent.objects.filter(event_id=_entries(purged)[0].event_id).delete()

    # when
    retrying_page = auditor_client.get(timeline_url(retrying)).content.decode()
    purged_page = auditor_client.get(timeline_url(purged)).content.decode()

    # then
    assert ">retrying (2)</span>" in retrying_page
    assert "Last error: broker away" in retrying_page
    assert '<span class="delivery delivery-purged"' in purged_page
    assert "outbox row has since been purged" in purged_page


def test_the_reason_code_filter_keeps_the_rows_with_that_code(
    auditor_client, make_order, product, audit
):
    # given: version 1 has no code (system), version 2 is damaged
    order = make_order(lines={product.sku: 5})
    order_adjust(order_id=order.pk, deltas={product.sku: -1}, audit=DAMAGED)

    # when
    damaged = auditor_client.get(timeline_url(order), {"reason_code": "damaged"})
    lost = auditor_client.get(timeline_url(order), {"reason_code": "lost"})
    every = auditor_client.get(timeline_url(order), {"reason_code": ""})

    # then
    assert [e.version for e in damaged.context["entries"]] == [2]
    assert '<option value="damaged" selected>' in damaged.content.decode()
    assert "1 of 2 rows" in damaged.content.decode()
    assert "No ledger entry of this order has reason code <code>lost</code>" in (
        lost.content.decode()
    )
    assert [e.version for e in every.context["entries"]] == [1, 2]
    # the charts still show the whole order
    assert len(damaged.context["charts"][0].points) == 2


def test_unspecified_is_a_filter_choice(auditor_client, make_order, product):
    # given: a person's change without a code is recorded as unspecified
    order = make_order(lines={product.sku: 5})
    clerk = Audit(actor="clerk", source=Source.API)
    order_adjust(order_id=order.pk, deltas={product.sku: 1}, audit=clerk)

    # when
    response = auditor_client.get(timeline_url(order), {"reason_code": "unspecified"})

    # then
    assert [e.version for e in response.context["entries"]] == [2]


def test_an_unknown_reason_code_filters_nothing_and_says_so(auditor_client, make_order, product):
    # given
    order = make_order(lines={product.sku: 5})

    # when
    response = auditor_client.get(timeline_url(order), {"reason_code": "<bogus>"})

    # then
    assert response.status_code == 200
    assert [e.version for e in response.context["entries"]] == [1]
    assert "Unknown reason code &#x27;&lt;bogus&gt;&#x27;: showing every row." in (
        response.content.decode()
    )


def test_the_timeline_takes_as_many_queries_for_many_changes_as_for_one(
    auditor_client, make_order, product, audit
):
    # given
    order = make_order(lines={product.sku: 5})
    auditor_client.get(timeline_url(order))  # the session and the like
    with CaptureQueriesContext(connection) as one:
        auditor_client.get(timeline_url(order))
    for _ in range(20):
        order_adjust(order_id=order.pk, deltas={product.sku: 1}, audit=audit)

    # when
    with CaptureQueriesContext(connection) as many:
        response = auditor_client.get(timeline_url(order))

    # then
    assert len(response.context["entries"]) == 21
    assert len(many) == len(one)
