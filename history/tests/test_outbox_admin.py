"""The outbox in the admin: the delivery status of every event (filter and column), and
the action that sends dead-lettered events back to the relay."""

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from history.admin import OutboxEventAdmin
from history.models import OutboxEvent
from history.selectors import OutboxStatus, outbox_with_status
from orders.services import order_set_quantities

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:history_outboxevent_changelist"
RETRY = "retry_dead_lettered"


def two_events(make_order, product, audit, reference: str) -> tuple[OutboxEvent, OutboxEvent]:
    """An order with two events: `order.created` (v1) and `order.quantity_adjusted` (v2)."""
    order = make_order(lines={product.sku: 1}, reference=reference)
    order_set_quantities(order_id=order.pk, quantities={product.sku: 2}, audit=audit)
    first, second = OutboxEvent.objects.filter(aggregate_id=str(order.pk)).order_by("id")
    return first, second


def set_state(event: OutboxEvent, **fields) -> None:
    OutboxEvent.objects.filter(pk=event.pk).update(**fields)


def dead_letter(event: OutboxEvent) -> None:
    now = timezone.now()
    set_state(event, attempts=8, last_error="connection refused", dead_lettered_at=now)


def found(client, **params) -> list[int]:
    response = client.get(reverse(CHANGELIST), params)
    assert response.status_code == 200
    return sorted(event.pk for event in response.context["cl"].result_list)


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def outbox(make_order, product, audit):
    """One aggregate per situation the relay can be in; returns the events by name."""
    now = timezone.now()
    published, pending = two_events(make_order, product, audit, "A")
    set_state(published, published_at=now)
    dead, waiting = two_events(make_order, product, audit, "B")
    dead_letter(dead)
    backing_off, behind_backing_off = two_events(make_order, product, audit, "C")
    set_state(
        backing_off, attempts=2, last_error="nack", next_attempt_at=now + timedelta(minutes=5)
    )
    due, after_due = two_events(make_order, product, audit, "D")
    set_state(due, attempts=1, last_error="timeout", next_attempt_at=now - timedelta(seconds=1))
    return {
        "published": published,
        "pending": pending,
        "dead": dead,
        "waiting": waiting,
        "backing_off": backing_off,
        "behind_backing_off": behind_backing_off,
        "due": due,
        "after_due": after_due,
    }


def test_status_filter_puts_every_event_in_exactly_one_bucket(admin_client, outbox):
    # given
    ids = {name: event.pk for name, event in outbox.items()}

    # when
    buckets = {status: found(admin_client, status=status) for status in OutboxStatus.values}

    # then
    assert buckets == {
        "published": [ids["published"]],
        "dead_lettered": [ids["dead"]],
        "waiting": sorted([ids["waiting"], ids["behind_backing_off"]]),
        "retrying": sorted([ids["backing_off"], ids["due"]]),
        "pending": sorted([ids["pending"], ids["after_due"]]),
    }
    assert sorted(pk for pks in buckets.values() for pk in pks) == found(admin_client)


def test_status_column_agrees_with_the_filter(admin_client, outbox):
    # given
    annotated = dict(outbox_with_status().values_list("pk", "status"))

    # when
    response = admin_client.get(reverse(CHANGELIST))

    # then
    for status in OutboxStatus.values:
        assert {pk for pk, s in annotated.items() if s == status} == set(
            found(admin_client, status=status)
        )
    content = response.content.decode()
    for status in OutboxStatus:
        assert status.label in content
    assert "connection refused" in content


def test_an_event_waits_only_behind_an_earlier_stuck_sibling(
    admin_client, make_order, product, audit
):
    # given: the later event of the aggregate is dead, the earlier one is not
    first, second = two_events(make_order, product, audit, "E")
    dead_letter(second)
    other_aggregate, _ = two_events(make_order, product, audit, "F")

    # when
    waiting = found(admin_client, status="waiting")
    pending = found(admin_client, status="pending")

    # then
    assert waiting == []
    assert first.pk in pending
    assert other_aggregate.pk in pending


def test_a_published_earlier_sibling_blocks_nothing(admin_client, make_order, product, audit):
    # given: v1 was dead-lettered once but has since been retried and published
    first, second = two_events(make_order, product, audit, "G")
    set_state(first, attempts=8, published_at=timezone.now())

    # then
    assert found(admin_client, status="pending") == [second.pk]
    assert found(admin_client, status="published") == [first.pk]


def test_unknown_status_value_filters_nothing(admin_client, outbox):
    # when
    response = admin_client.get(reverse(CHANGELIST), {"status": "bogus"})

    # then: the admin redirects with ?e=1 for an invalid lookup, or shows everything
    assert response.status_code in (200, 302)


def test_staff_retries_dead_lettered_events(client, user_with_role, outbox):
    # given
    client.force_login(user_with_role("order_staff"))
    dead, waiting, pending = outbox["dead"], outbox["waiting"], outbox["pending"]

    # when
    response = client.post(
        reverse(CHANGELIST),
        {"action": RETRY, "_selected_action": [dead.pk, pending.pk]},
        follow=True,
    )

    # then
    assert response.status_code == 200
    dead.refresh_from_db()
    assert (dead.dead_lettered_at, dead.attempts, dead.next_attempt_at) == (None, 0, None)
    assert messages_of(response) == [
        "Sent 1 dead-lettered event(s) back to the relay.",
        "1 selected event(s) were not dead-lettered and were left as they are.",
    ]
    statuses = dict(outbox_with_status().values_list("pk", "status"))
    assert statuses[dead.pk] == statuses[waiting.pk] == OutboxStatus.PENDING


def test_superuser_is_offered_the_retry_action(admin_client, outbox):
    # when
    response = admin_client.get(reverse(CHANGELIST))

    # then
    choices = [name for name, _ in response.context["action_form"].fields["action"].choices]
    assert RETRY in choices
    assert "delete_selected" not in choices


def test_auditor_is_not_offered_the_retry_action_and_cannot_post_it(client, user_with_role, outbox):
    # given
    client.force_login(user_with_role("auditor"))
    dead = outbox["dead"]

    # when
    page = client.get(reverse(CHANGELIST))
    post = client.post(reverse(CHANGELIST), {"action": RETRY, "_selected_action": [dead.pk]})

    # then
    assert page.status_code == 200
    assert page.context["action_form"] is None or RETRY not in [
        name for name, _ in page.context["action_form"].fields["action"].choices
    ]
    assert RETRY not in page.content.decode()
    assert post.status_code in (200, 302)
    dead.refresh_from_db()
    assert dead.dead_lettered_at is not None
    assert dead.attempts == 8


def test_outbox_stays_read_only_for_staff(client, user_with_role, outbox):
    # given
    client.force_login(user_with_role("order_staff"))
    event = outbox["dead"]

    # when
    change_post = client.post(
        reverse("admin:history_outboxevent_change", args=[event.pk]), {"attempts": 0}
    )
    delete_post = client.post(
        reverse("admin:history_outboxevent_delete", args=[event.pk]), {"post": "yes"}
    )
    add_page = client.get(reverse("admin:history_outboxevent_add"))

    # then
    assert [change_post.status_code, delete_post.status_code, add_page.status_code] == [
        403,
        403,
        403,
    ]
    assert OutboxEvent.objects.get(pk=event.pk).attempts == 8


def test_view_page_shows_status_and_delivery_fields(admin_client, outbox):
    # given
    dead = outbox["dead"]

    # when
    response = admin_client.get(reverse("admin:history_outboxevent_change", args=[dead.pk]))

    # then
    assert response.status_code == 200
    content = response.content.decode()
    assert OutboxStatus.DEAD_LETTERED.label in content
    assert "connection refused" in content


def test_view_page_shows_the_trace_the_event_was_recorded_in(admin_client, outbox):
    # given
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    set_state(outbox["dead"], traceparent=traceparent)

    # when
    response = admin_client.get(
        reverse("admin:history_outboxevent_change", args=[outbox["dead"].pk])
    )

    # then
    assert traceparent in response.content.decode()


def test_status_filter_query_count_does_not_grow_with_rows(
    admin_client, make_order, product, audit, django_assert_max_num_queries
):
    # given
    for i in range(10):
        dead, _ = two_events(make_order, product, audit, f"Q{i}")
        dead_letter(dead)

    # then
    for status in OutboxStatus.values:
        with django_assert_max_num_queries(8):
            assert admin_client.get(reverse(CHANGELIST), {"status": status}).status_code == 200


def test_changelist_sorts_by_status(admin_client, outbox):
    # given
    column = OutboxEventAdmin.list_display.index("status_badge") + 1

    # when
    response = admin_client.get(reverse(CHANGELIST), {"o": str(column)})

    # then
    assert response.status_code == 200
    statuses = [event.status for event in response.context["cl"].result_list]
    assert statuses == sorted(statuses)
