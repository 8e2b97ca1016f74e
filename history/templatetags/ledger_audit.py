"""Cells of the admin timelines: a ledger row's hash, seal and delivery (set on the row by
history.selectors.ledger_rows_audited)."""

from django import template
from django.utils.dateformat import format as date_format
from django.utils.html import format_html
from django.utils.timezone import localtime

from history.selectors import PURGED, Delivery, OutboxStatus

register = template.Library()

SHORT_HASH = 12  # hex digits shown; the full hash is in the title


@register.simple_tag
def ledger_hash(entry) -> str:
    full, previous = bytes(entry.hash).hex(), bytes(entry.prev_hash).hex()
    return format_html(
        '<code class="ledger-hash" title="hash {}&#10;previous {}">{}…</code>',
        full,
        previous,
        full[:SHORT_HASH],
    )


@register.simple_tag
def sealed_cell(entry) -> str:
    if entry.sealed:
        return format_html('<span class="sealed-yes">yes</span> · seal {}', entry.seal_number)
    return format_html('<span class="sealed-no" title="{}">no</span>', "No seal covers it yet.")


def _when(moment) -> str:
    return date_format(localtime(moment), "Y-m-d H:i:s T") if moment else "?"


def _delivery_text(delivery: Delivery) -> tuple[str, str]:
    """The badge's text and its title."""
    status, attempts = delivery.status, delivery.attempts
    if status == OutboxStatus.PUBLISHED:
        failed = f" after {attempts} failed attempt(s)" if attempts else ""
        return "published", f"Published at {_when(delivery.published_at)}{failed}."
    if status == PURGED:
        return "published", "Published; its outbox row has since been purged (retention)."
    if status == OutboxStatus.DEAD_LETTERED:
        return "dead-lettered", (
            f"Dead-lettered at {_when(delivery.dead_lettered_at)} after {attempts} attempt(s). "
            f"Last error: {delivery.last_error or '—'}"
        )
    if status == OutboxStatus.RETRYING:
        return f"retrying ({attempts})", (
            f"{attempts} attempt(s) failed; next at {_when(delivery.next_attempt_at)}. "
            f"Last error: {delivery.last_error or '—'}"
        )
    if status == OutboxStatus.WAITING:
        return "waiting", "Held back behind an earlier event of the same aggregate that is stuck."
    return "pending", "Not yet published: waiting for the relay."


@register.simple_tag
def delivery_badge(delivery: Delivery) -> str:
    text, title = _delivery_text(delivery)
    return format_html(
        '<span class="delivery delivery-{}" title="{}">{}</span>', delivery.status, title, text
    )
