"""Small cells for the admin changelists, so the lists fit a 1366 px screen: coloured status
badges (the CSS the timelines use, history/static/history/badges.css, loaded by
`BadgesMedia`), times on one line, long texts cut short with the whole in the title."""

from datetime import datetime

from django.utils.dateformat import format as date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator
from django.utils.timezone import localtime

from history.selectors import OutboxStatus

BADGES_CSS = "history/badges.css"

# A badge's colour by what it says: good, info, warn, hold, bad, quiet.
OUTBOX_TONES = {
    OutboxStatus.PENDING: "info",
    OutboxStatus.RETRYING: "warn",
    OutboxStatus.WAITING: "hold",
    OutboxStatus.DEAD_LETTERED: "bad",
    OutboxStatus.PUBLISHED: "good",
}


class BadgesMedia:
    """Mix into a ModelAdmin whose list shows badges."""

    class Media:
        css = {"all": [BADGES_CSS]}


def badge(text: str, *, tone: str, title: str = "") -> SafeString:
    if title:
        return format_html(
            '<span class="status-badge status-{}" title="{}">{}</span>', tone, title, text
        )
    return format_html('<span class="status-badge status-{}">{}</span>', tone, text)


def short_time(moment: datetime | None) -> SafeString | str:
    """'2026-11-28 14:12' on one line; the seconds and the zone are in the title."""
    if moment is None:
        return "—"
    moment = localtime(moment)
    return format_html(
        '<span class="cell-time" title="{}">{}</span>',
        date_format(moment, "Y-m-d H:i:s T"),
        date_format(moment, "Y-m-d H:i"),
    )


def cut(text: str, chars: int) -> SafeString | str:
    """The text cut to `chars` characters; the whole of it in the title."""
    if not text:
        return "—"
    short = Truncator(text).chars(chars)
    if short == text:
        return text
    return format_html('<span class="cell-cut" title="{}">{}</span>', text, short)


def order_total_cell(*, total: int | None, snapshot_version: int | None, version: int) -> str:
    """An order's total from its snapshot, marked as catching up while the snapshot is
    behind the order (the projector has not applied its latest change yet)."""
    if total is None:
        return mark_safe(
            '— <span class="catching-up" title="Catching up: the projector has not seen '
            'this order yet.">⟳ catching up</span>'
        )
    if snapshot_version is not None and snapshot_version >= version:
        return str(total)
    return format_html(
        '{} <span class="catching-up" title="Catching up: this total is from version {} of '
        'the order, which is now at version {}. It updates within seconds.">⟳ catching up'
        "</span>",
        total,
        snapshot_version,
        version,
    )
