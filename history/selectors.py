from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import NamedTuple
from uuid import UUID

from django.db import connection, models
from django.db.models import (
    BigIntegerField,
    BooleanField,
    Case,
    CharField,
    Count,
    F,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils import timezone

from config.errors import LedgerArchived
from config.sql import fetch_all
from history.archive import ArchivedRun, archived_before
from history.models import (
    DailyChangeCounts,
    LedgerKind,
    LedgerSeal,
    OrderEventType,
    OrderLedgerEntry,
    OutboxEvent,
    Source,
    StockLedgerEntry,
)
from history.projector import Lag, projection_lag
from history.seals import sees


def outbox_backlog() -> dict:
    """Unpublished outbox rows: how many, how many dead-lettered, and the age of the
    oldest deliverable one (the relay's lag)."""
    stats = OutboxEvent.objects.filter(published_at__isnull=True).aggregate(
        pending=Count("id", filter=Q(dead_lettered_at__isnull=True)),
        dead_lettered=Count("id", filter=Q(dead_lettered_at__isnull=False)),
        oldest=Min("created_at", filter=Q(dead_lettered_at__isnull=True)),
    )
    oldest = stats.pop("oldest")
    stats["seconds_behind"] = round((timezone.now() - oldest).total_seconds(), 3) if oldest else 0.0
    return stats


def projection_lag_list() -> list[tuple[str, Lag]]:
    """Every projection's lag behind the ledger (history.projector.projection_lag), by name:
    one query for the checkpoints, then one or two per projection."""
    return sorted(projection_lag().items())


@dataclass(frozen=True, slots=True)
class DailyChanges:
    day: date
    # {LedgerKind value: {Source value: rows}}, every ledger and source, 0 where none
    by_ledger: dict[str, dict[str, int]]

    def total(self, ledger: str | None = None) -> int:
        """The day's rows in one ledger, or in both."""
        ledgers = [self.by_ledger[ledger]] if ledger else self.by_ledger.values()
        return sum(sum(by_source.values()) for by_source in ledgers)


def adjustments_per_day(*, days: int = 30) -> list[DailyChanges]:
    """Ledger rows (order changes, stock movements) per day of settings.TIME_ZONE, per
    ledger and per source, for the last `days` days, today included, oldest first; days
    without rows count 0. One query, on the DailyChangeCounts projection (at most six rows
    a day, whatever the ledgers hold), so as fresh as the projector: its lag is on the
    dashboard next to the chart."""
    today = timezone.localdate(timezone=timezone.get_default_timezone())
    first = today - timedelta(days=days - 1)
    counts = DailyChangeCounts.objects.filter(day__range=(first, today)).values_list(
        "day", "ledger", "source", "rows"
    )
    per_day = {
        first + timedelta(days=n): {
            ledger: dict.fromkeys(Source.values, 0) for ledger in LedgerKind.values
        }
        for n in range(days)
    }
    for day, ledger, source, rows in counts:
        if ledger in LedgerKind.values and source in Source.values:
            per_day[day][ledger][source] = rows
    return [DailyChanges(day=day, by_ledger=by_ledger) for day, by_ledger in per_day.items()]


def ledger_seal_latest() -> LedgerSeal | None:
    """The latest seal of the ledgers (history.seals), without its signature and tree: one
    query. Checking the chains and every seal is `manage.py verify_ledger`'s job, far too
    slow for a page view."""
    return (
        LedgerSeal.objects.order_by("-number")
        .only("number", "tree_size", "batch_size", "sealed_at")
        .first()
    )


def ledger_entries() -> QuerySet[OrderLedgerEntry]:
    return OrderLedgerEntry.objects.all()


def order_timeline(*, order_id: int) -> QuerySet[OrderLedgerEntry]:
    """The order's ledger, oldest first (version order, then line order)."""
    return OrderLedgerEntry.objects.filter(order_id=order_id).order_by("version", "id")


@dataclass
class ReplayedOrder:
    order_id: int
    version: int = 0
    status: str = "open"
    quantities: dict[str, int] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    problems: list[str] = field(default_factory=list)


def order_replay(entries: Iterable[OrderLedgerEntry], *, order_id: int) -> ReplayedOrder:
    """Fold ledger rows (in version order) into the order's state. Records any row whose
    `quantity_before` does not continue from the previous row, or a version gap."""
    state = ReplayedOrder(order_id=order_id)
    for entry in entries:
        if isinstance(entry, ArchivedRun):
            _order_replay_archived(state, entry)
            continue
        if entry.version not in (state.version, state.version + 1):
            state.problems.append(f"version jumps from {state.version} to {entry.version}")
        previous = state.quantities.get(entry.sku, 0)
        if entry.quantity_before != previous:
            state.problems.append(
                f"v{entry.version} {entry.sku}: before={entry.quantity_before}, "
                f"but the ledger had {previous}"
            )
        state.quantities[entry.sku] = entry.quantity_after
        state.version = entry.version
        state.created_at = state.created_at or entry.occurred_at
        state.updated_at = entry.occurred_at or state.updated_at
        if entry.event_type == OrderEventType.CANCELLED:
            state.status = "cancelled"
        elif entry.event_type == OrderEventType.FULFILLED:
            state.status = "fulfilled"
    return state


def _order_replay_archived(state: ReplayedOrder, run: ArchivedRun) -> None:
    """An archived month's rows of the order, from the heads its archive registered: they
    must continue from the state so far, and leave it as they did."""
    if run.first_version not in (state.version, state.version + 1):
        state.problems.append(
            f"version jumps from {state.version} to {run.first_version} ({run.span})"
        )
    for sku, before in run.before.items():
        previous = state.quantities.get(sku, 0)
        if before != previous:
            state.problems.append(
                f"v{run.first_version} {sku}: before={before} ({run.span}), but the ledger "
                f"had {previous}"
            )
    state.quantities.update(run.after["lines"])
    state.version = run.version
    if run.after["status"]:
        state.status = run.after["status"]


class _ReplayRow(NamedTuple):
    version: int
    sku: str
    quantity_before: int
    quantity_after: int
    event_type: str
    occurred_at: datetime | None  # only on the first and the last row


# Only what the replay reads, in one statement, and the time only where it is used (the
# first and last rows): converting every row's timestamp was most of an as_of of a long
# history (bench/README.md, make bench-audit).
_AS_OF = f"""SELECT version, sku, quantity_before, quantity_after, event_type,
    CASE WHEN lag(id) OVER w IS NULL OR lead(id) OVER w IS NULL THEN occurred_at END
FROM {OrderLedgerEntry._meta.db_table}
WHERE order_id = %s AND occurred_at <= %s
WINDOW w AS (ORDER BY version, id)
ORDER BY version, id"""


def order_as_of(*, order_id: int, at: datetime) -> ReplayedOrder | None:
    """The order as it stood at `at`, rebuilt from the ledger; None if it did not exist.
    LedgerArchived when some of its rows up to `at` are in an archived month (one indexed
    query; history.archive): a replay without them would be wrong."""
    if month := archived_before(ledger=LedgerKind.ORDER, aggregate_id=order_id, at=at):
        raise LedgerArchived(
            f"Order {order_id}'s changes of {month:%Y-%m} are archived out of the database "
            f"(ledger_archive): its state as of {at.isoformat()} cannot be rebuilt until that "
            "month is restored (ledger_restore)."
        )
    rows = [_ReplayRow(*row) for row in fetch_all(_AS_OF, [order_id, at])]
    state = order_replay(rows, order_id=order_id)
    return state if state.version else None


class OutboxStatus(models.TextChoices):
    """Where an outbox row is in its delivery. Exactly one applies, in this order:
    published, dead-lettered, waiting (an earlier unpublished event of the same aggregate
    is dead-lettered or backing off, so the relay holds this one back), retrying (failed
    at least once, will be tried again), pending (next in line)."""

    PENDING = "pending", "Pending"
    RETRYING = "retrying", "Retrying"
    WAITING = "waiting", "Waiting behind a stuck event"
    DEAD_LETTERED = "dead_lettered", "Dead-lettered"
    PUBLISHED = "published", "Published"


_OUTBOX = OutboxEvent._meta.db_table
# An earlier unpublished event of the same aggregate is dead-lettered or backing off: the
# rows the relay waits behind. Served by the partial index on unpublished rows
# (aggregate_type, aggregate_id, id). One parameter: now.
_BLOCKED_BY_SIBLING = f"""EXISTS (SELECT 1 FROM {_OUTBOX} AS sibling
    WHERE sibling.aggregate_type = {_OUTBOX}.aggregate_type
    AND sibling.aggregate_id = {_OUTBOX}.aggregate_id
    AND sibling.published_at IS NULL AND sibling.id < {_OUTBOX}.id
    AND (sibling.dead_lettered_at IS NOT NULL OR sibling.next_attempt_at > %s))"""
# An outbox row's OutboxStatus, in the order the statuses take precedence; the sibling
# subquery runs only for unpublished, live rows. One parameter: now.
_STATUS = f"""CASE WHEN {_OUTBOX}.published_at IS NOT NULL THEN '{OutboxStatus.PUBLISHED.value}'
    WHEN {_OUTBOX}.dead_lettered_at IS NOT NULL THEN '{OutboxStatus.DEAD_LETTERED.value}'
    WHEN {_BLOCKED_BY_SIBLING} THEN '{OutboxStatus.WAITING.value}'
    WHEN {_OUTBOX}.attempts > 0 THEN '{OutboxStatus.RETRYING.value}'
    ELSE '{OutboxStatus.PENDING.value}' END"""


def _outbox_blocked_by_sibling(now: datetime) -> RawSQL:
    return RawSQL(_BLOCKED_BY_SIBLING, [now], BooleanField())


def outbox_status_q(status: str, *, now: datetime | None = None) -> Q:
    """The filter for one OutboxStatus, on indexed columns (not on the CASE annotation)."""
    now = now or timezone.now()
    unpublished = Q(published_at__isnull=True)
    live = unpublished & Q(dead_lettered_at__isnull=True)
    blocked = _outbox_blocked_by_sibling(now)
    return {
        OutboxStatus.PUBLISHED: Q(published_at__isnull=False),
        OutboxStatus.DEAD_LETTERED: unpublished & Q(dead_lettered_at__isnull=False),
        OutboxStatus.WAITING: live & Q(blocked),
        OutboxStatus.RETRYING: live & Q(attempts__gt=0) & ~Q(blocked),
        OutboxStatus.PENDING: live & Q(attempts=0) & ~Q(blocked),
    }[OutboxStatus(status)]


def outbox_with_status(
    *, status: str | None = None, queryset: QuerySet[OutboxEvent] | None = None
) -> QuerySet[OutboxEvent]:
    """Outbox rows annotated with `status` (an OutboxStatus value), optionally only those
    in one status."""
    now = timezone.now()
    queryset = OutboxEvent.objects.all() if queryset is None else queryset
    queryset = queryset.annotate(status=RawSQL(_STATUS, [now], CharField()))
    if status:
        queryset = queryset.filter(outbox_status_q(status, now=now))
    return queryset


# --- What an auditor sees next to each ledger row ------------------------------------------


def ledger_sealed(queryset: QuerySet) -> QuerySet:
    """Ledger rows (order or stock) annotated with `sealed` (a seal covers the row: the
    latest seal's snapshot sees its transaction, as history.seals decides) and
    `seal_number` (the first seal that does, the one that sealed it; None if unsealed).
    No query of its own: the latest seal's snapshot is an uncorrelated subquery that
    PostgreSQL runs once per statement, and the covering seal a subquery run only for the
    sealed rows. Seals are taken one after another, so their snapshots' xmax grows with
    their number, and the covering seal is the first one in the snapshot_xmax index that
    sees the row."""
    latest = LedgerSeal.objects.order_by("-number").values("snapshot")[:1]
    covering = (
        LedgerSeal.objects.filter(snapshot_xmax__gt=OuterRef("txid"))
        .filter(sees(OuterRef("txid"), F("snapshot")))
        .order_by("snapshot_xmax", "number")
        .values("number")[:1]
    )
    return queryset.annotate(
        sealed=Coalesce(sees(F("txid"), Subquery(latest)), Value(False))
    ).annotate(
        seal_number=Case(When(sealed=True, then=Subquery(covering)), output_field=BigIntegerField())
    )


# An event with no outbox row left: published rows are purged after OUTBOX_RETENTION_DAYS
# (history.services.outbox_published_purge), and only published ones.
PURGED = "purged"
DELIVERY_LABELS = {**dict(OutboxStatus.choices), PURGED: "Published (outbox row purged)"}


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where the outbox event of a ledger row is in its delivery to the broker."""

    status: str  # an OutboxStatus value, or PURGED
    published_at: datetime | None = None
    attempts: int | None = None  # None once the outbox row is purged
    last_error: str = ""
    dead_lettered_at: datetime | None = None
    next_attempt_at: datetime | None = None

    @property
    def label(self) -> str:
        return DELIVERY_LABELS[self.status]


_DELIVERIES = f"""SELECT event_id, {_STATUS}, published_at, attempts, last_error,
    dead_lettered_at, next_attempt_at
FROM {_OUTBOX} WHERE event_id = ANY(%s)"""


def event_deliveries(*, event_ids: Iterable[UUID]) -> dict[UUID, Delivery]:
    """{event id: Delivery} for these events (the `event_id` of ledger rows), in one query
    (none for no ids). An id without an outbox row gets a PURGED delivery. Plain SQL: with
    the ORM, building the statement cost twice what running it does, on every history
    page."""
    wanted = set(event_ids)
    if not wanted:
        return {}
    rows = fetch_all(_DELIVERIES, [timezone.now(), list(wanted)])
    deliveries = {row[0]: Delivery(*row[1:]) for row in rows}
    return {event_id: deliveries.get(event_id, Delivery(PURGED)) for event_id in wanted}


def ledger_rows_audited(queryset: QuerySet) -> list:
    """The rows of `queryset` (ledger rows, order or stock) with `sealed`, `seal_number`
    (ledger_sealed) and `delivery` (a Delivery) set on each: two queries in all."""
    rows = list(ledger_sealed(queryset))
    deliveries = event_deliveries(event_ids={row.event_id for row in rows})
    for row in rows:
        row.delivery = deliveries[row.event_id]
    return rows


# --- Stock ledger replay ----------------------------------------------------------------------

STOCK_QUANTITIES = ("on_hand", "reserved", "in_transit", "backorder")


@dataclass
class ReplayedStock:
    product_id: int
    location_id: int
    sku: str = ""
    location_code: str = ""
    on_hand: int = 0
    reserved: int = 0
    in_transit: int = 0
    backorder: int = 0
    version: int = 0
    movements: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def place(self) -> str:
        return f"{self.sku}@{self.location_code}"


def stock_replay(rows: Iterable) -> dict[tuple[int, int], ReplayedStock]:
    """Fold stock ledger rows (in id order) per (product id, location id). Each row must
    continue from the previous row of its place: its before (after - delta) is the previous
    after, and its version the previous one plus one. Every break is recorded in the
    place's `problems`; the fold goes on from the row's own after values."""
    places: dict[tuple[int, int], ReplayedStock] = {}
    for entry in rows:
        key = (entry.product_id, entry.location_id)
        state = places.get(key)
        if state is None:
            state = places[key] = ReplayedStock(*key, entry.sku, entry.location_code)
        if isinstance(entry, ArchivedRun):
            _stock_replay_archived(state, entry)
            continue
        if entry.version != state.version + 1:
            state.problems.append(f"version jumps from {state.version} to {entry.version}")
        for name in STOCK_QUANTITIES:
            previous = getattr(state, name)
            delta = getattr(entry, f"delta_{name}")
            after = getattr(entry, f"{name}_after")
            if previous + delta != after:
                state.problems.append(
                    f"v{entry.version} {entry.movement}: {name} {previous} {delta:+d} makes "
                    f"{previous + delta}, the row says {after}"
                )
            setattr(state, name, after)
        state.version = entry.version
        state.movements += 1
    return places


def _stock_replay_archived(state: ReplayedStock, run: ArchivedRun) -> None:
    """An archived month's movements of the level, from the heads its archive registered."""
    if run.first_version != state.version + 1:
        state.problems.append(
            f"version jumps from {state.version} to {run.first_version} ({run.span})"
        )
    for name in STOCK_QUANTITIES:
        previous = getattr(state, name)
        if run.before[name] != previous:
            state.problems.append(
                f"v{run.first_version}: {run.span} start from {name} {run.before[name]}, the "
                f"ledger had {previous}"
            )
        setattr(state, name, run.after[name])
    state.version = run.version
    state.movements += run.rows


PARTITIONED_TABLES = (
    OrderLedgerEntry._meta.db_table,
    StockLedgerEntry._meta.db_table,
    OutboxEvent._meta.db_table,
)


def partitions_missing(*, month: date) -> list[str]:
    """The partitioned tables (ledgers, outbox) with no partition for `month` attached, by
    the names history_partition_create gives them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t FROM unnest(%s::text[]) AS t WHERE NOT EXISTS (SELECT 1 FROM pg_inherits "
            "WHERE inhparent = t::regclass AND inhrelid = to_regclass(t || %s))",
            [list(PARTITIONED_TABLES), f"_p{month:%Y%m}"],
        )
        return [table for (table,) in cursor.fetchall()]


def partitions_next_month_check() -> None:
    """Readiness: the next month's partitions exist (the beat creates them months ahead;
    a row without one would land in the DEFAULT partition)."""
    today = timezone.now().date()  # UTC, as the partitions' bounds
    next_month = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    if missing := partitions_missing(month=next_month):
        raise RuntimeError(f"no partition for {next_month:%Y-%m} of {', '.join(missing)}")
