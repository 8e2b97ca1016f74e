"""The admin's stock level timeline as an auditor reads it: the chain's verified/broken
badge and the proof link, and beside each movement its hash, its seal and its event's
delivery; the reason-code filter."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from history.audit import Audit
from history.models import OutboxEvent, Source, StockLedgerEntry
from history.relay import outbox_relay
from history.seals import ledger_seal
from inventory.models import StockLevel
from inventory.selectors import stock_chain_problems
from inventory.services import location_create, stock_adjust, stock_receive
from orders.tests.test_verify_tampering import _as_superuser
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

SETUP = Audit(actor="setup", source=Source.SYSTEM, reason="setup")
DAMAGED = Audit(actor="clerk", source=Source.SYSTEM, reason="dropped", reason_code="damaged")


@pytest.fixture
def auditor_client(client):
    client.force_login(UserFactory(role="auditor"))
    return client


@pytest.fixture
def level(db) -> StockLevel:
    """Ten received at MAIN, then two damaged."""
    product = ProductFactory(sku="AUD-1", name="Audited widget", track_inventory=True)
    location_create(code="MAIN", name="Main warehouse")
    stock_receive(sku=product.sku, location="MAIN", quantity=10, audit=SETUP)
    return stock_adjust(sku=product.sku, location="MAIN", delta=-2, audit=DAMAGED)


def timeline_url(level: StockLevel) -> str:
    return reverse("admin:inventory_stocklevel_timeline", args=[level.pk])


def _entries(level: StockLevel) -> list[StockLedgerEntry]:
    return list(
        StockLedgerEntry.objects.filter(
            product_id=level.product_id, location_id=level.location_id
        ).order_by("version")
    )


def test_an_intact_chain_is_verified_with_a_link_to_its_proof(auditor_client, level):
    # when
    content = auditor_client.get(timeline_url(level)).content.decode()

    # then
    assert "✓ Chain verified" in content
    assert "Chain broken" not in content
    proof = reverse("stock-proof", kwargs={"sku": "AUD-1"}) + "?location=MAIN"
    assert f'href="{proof}"' in content


@pytest.mark.django_db(transaction=True)
def test_a_tampered_chain_is_broken_and_names_the_problem(auditor_client, level):
    # given: a superuser rewrites a movement with the guards off
    table = StockLedgerEntry._meta.db_table
    row = _entries(level)[1]
    _as_superuser(table, f"UPDATE {table} SET actor = 'mallory' WHERE id = %s", [row.pk])

    # when
    content = auditor_client.get(timeline_url(level)).content.decode()

    # then
    place = (level.product_id, level.location_id)
    problems = [problem for _, problem in stock_chain_problems(places=[place])]
    assert problems
    assert "✗ Chain broken" in content
    for problem in problems:
        assert f"<li>{escape(problem)}</li>" in content


def test_each_movement_shows_its_short_hash_with_the_full_one_on_hover(auditor_client, level):
    # when
    content = auditor_client.get(timeline_url(level)).content.decode()

    # then
    for entry in _entries(level):
        full, previous = bytes(entry.hash).hex(), bytes(entry.prev_hash).hex()
        assert (
            f'<code class="ledger-hash" title="hash {full}&#10;previous {previous}">'
            f"{full[:12]}…</code>"
        ) in content


@pytest.mark.django_db(transaction=True)
def test_a_movement_is_sealed_once_a_seal_covers_it(auditor_client, level):
    # given
    before = auditor_client.get(timeline_url(level))

    # when
    seal = ledger_seal()

    # then
    after = auditor_client.get(timeline_url(level)).content.decode()
    assert before.content.decode().count('<span class="sealed-no"') == 2
    assert after.count(f'<span class="sealed-yes">yes</span> · seal {seal.number}') == 2


@pytest.mark.django_db(transaction=True)
def test_delivery_badge_is_pending_until_the_relay_publishes(auditor_client, level):
    # given
    pending = auditor_client.get(timeline_url(level)).content.decode()

    # when
    outbox_relay()

    # then
    published = auditor_client.get(timeline_url(level)).content.decode()
    assert pending.count('<span class="delivery delivery-pending"') == 2
    assert published.count('<span class="delivery delivery-published"') == 2


def test_delivery_badges_of_published_and_dead_lettered_movements(auditor_client, level):
    # given
    received, damaged = _entries(level)
    OutboxEvent.objects.filter(event_id=received.event_id).update(published_at=timezone.now())
    OutboxEvent.objects.filter(event_id=damaged.event_id).update(
        attempts=8, last_error="channel closed", dead_lettered_at=timezone.now()
    )

    # when
    content = auditor_client.get(timeline_url(level)).content.decode()

    # then
    assert '<span class="delivery delivery-published" title="Published at ' in content
    assert '<span class="delivery delivery-dead_lettered" title="Dead-lettered at ' in content
    assert "Last error: channel closed" in content


def test_the_reason_code_filter_keeps_the_movements_with_that_code(auditor_client, level):
    # when
    damaged = auditor_client.get(timeline_url(level), {"reason_code": "damaged"})
    system = auditor_client.get(timeline_url(level), {"reason_code": "system"})
    bogus = auditor_client.get(timeline_url(level), {"reason_code": "bogus"})

    # then
    assert [row.entry.version for row in damaged.context["rows"]] == [2]
    assert [row.entry.version for row in system.context["rows"]] == [1]
    assert bogus.status_code == 200
    assert [row.entry.version for row in bogus.context["rows"]] == [1, 2]
    assert "Unknown reason code &#x27;bogus&#x27;" in bogus.content.decode()
    # the chart still shows every movement
    assert len(damaged.context["chart"].series[0].points) == 2


def test_the_timeline_takes_as_many_queries_for_many_movements_as_for_two(auditor_client, level):
    # given
    auditor_client.get(timeline_url(level))  # the session and the like
    with CaptureQueriesContext(connection) as two:
        auditor_client.get(timeline_url(level))
    for _ in range(20):
        stock_adjust(sku="AUD-1", location="MAIN", delta=1, audit=DAMAGED)

    # when
    with CaptureQueriesContext(connection) as many:
        response = auditor_client.get(timeline_url(level))

    # then
    assert len(response.context["rows"]) == 22
    assert len(many) == len(two)
