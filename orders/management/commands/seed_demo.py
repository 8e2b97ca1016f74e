"""Load a small demo data set through the services, so the ledger, outbox and timelines look
exactly as they would after real use: stock is received at three locations first (the demo
orders reserve it), and the stock ledger ends up with every kind of movement. Safe to run
again: orders whose reference starts with DEMO- mark the data as seeded. The admin password
is (re)set on every run.

The history is spread over the last 90 days (HISTORY_DAYS), so charts and the forecast have
something to show: each step runs through the services with the clock set to its day
(`_clock`; the services take their time from `timezone.now()`, so every ledger row, hash and
outbox row is written with the time it claims). The store sells every day but Sunday and is
restocked weekly from WH-EAST, which a supplier delivers to every other week; the stock is
counted once a month. The steps run oldest first, and the orders keep their ids and ledger
rows (the README's walkthroughs use them). Finally a few transfer events are dead-lettered
through the relay's own failure handling, as if the broker had refused them."""

import logging
import random
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, time, timedelta
from unittest import mock

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from history import relay
from history.audit import Audit
from history.models import OutboxEvent, Source
from history.services import partitions_ensure
from inventory import services as stock
from inventory.models import Location, LocationType, Product, StockLevel
from orders import services
from orders.models import Customer, Order

MARKER = "DEMO-"
ADMIN_USERNAME = "admin"
HISTORY_DAYS = 90

CUSTOMERS = [
    ("Acme Retail", "orders@acme.example"),
    ("Globex Wholesale", "buying@globex.example"),
    ("Initech Supplies", "purchasing@initech.example"),
]
PRODUCTS = [
    ("WIDGET-100", "Widget, steel"),
    ("GADGET-200", "Gadget, plastic"),
    ("BOLT-M8", "Bolt M8 x 40"),
    ("NUT-M8", "Nut M8"),
    ("CABLE-USB-C", "USB-C cable, 1 m"),
    ("CRATE-EU", "Euro crate"),
]
# (code, name, type, priority): orders reserve from the lowest priority number first.
LOCATIONS = [
    ("WH-MAIN", "Main warehouse", LocationType.WAREHOUSE, 10),
    ("WH-EAST", "East warehouse", LocationType.WAREHOUSE, 20),
    ("STORE-1", "City store", LocationType.STORE, 30),
]
# sku -> {location: units received as opening stock}
OPENING_STOCK = {
    "WIDGET-100": {"WH-MAIN": 150, "WH-EAST": 80},
    "GADGET-200": {"WH-MAIN": 100, "WH-EAST": 60},
    "BOLT-M8": {"WH-MAIN": 1500, "WH-EAST": 1000},
    "NUT-M8": {"WH-MAIN": 1500, "WH-EAST": 1000},
    "CABLE-USB-C": {"WH-MAIN": 200, "WH-EAST": 100},
    "CRATE-EU": {"WH-MAIN": 40},
}
# (sku, location, reorder point, safety stock)
THRESHOLDS = [
    ("WIDGET-100", "WH-MAIN", 40, 15),
    ("CABLE-USB-C", "STORE-1", 10, 5),
    ("CRATE-EU", "WH-MAIN", 25, 10),
]
# (reference, customer name or None, initial lines, follow-up commands); ORDER_DAYS gives
# the days ago of the creation and of each follow-up, oldest first. A follow-up is (kind,
# quantities, reason, reason code, door): a clerk in the admin or the web shop's integration
# (the API), which also creates the orders.
API, ADMIN = Source.API, Source.ADMIN
ACTORS = {ADMIN: "clerk.jo", API: "webshop-sync"}
REQUEST = "customer_request"
ORDERS = [
    (
        "DEMO-1001",
        "Acme Retail",
        {"WIDGET-100": 100, "GADGET-200": 40},
        [
            ("set", {"WIDGET-100": 120}, "Customer raised the quantity by phone", REQUEST, ADMIN),
            ("adjust", {"GADGET-200": -5}, "Five units damaged in the warehouse", "damaged", ADMIN),
        ],
    ),
    (
        "DEMO-1002",
        "Acme Retail",
        {"BOLT-M8": 500, "NUT-M8": 500},
        [("cancel", None, "Customer ordered from another supplier", REQUEST, API)],
    ),
    ("DEMO-1003", "Globex Wholesale", {"CABLE-USB-C": 250}, []),
    (
        "DEMO-1004",
        "Globex Wholesale",
        {"CRATE-EU": 12},
        [("set", {"WIDGET-100": 30}, "Widgets added to the same delivery", REQUEST, API)],
    ),
    (
        "DEMO-1005",
        "Initech Supplies",
        {"BOLT-M8": 2000, "NUT-M8": 2000},
        [
            ("adjust", {"BOLT-M8": -200}, "Short shipment", "supplier_shortage", ADMIN),
            ("set", {"NUT-M8": 1800}, "Match the number of bolts", "correction", ADMIN),
        ],
    ),
    ("DEMO-1006", "Initech Supplies", {"GADGET-200": 75}, []),
    (
        "DEMO-1007",
        None,
        {"WIDGET-100": 10, "CABLE-USB-C": 10},
        [("fulfil", None, "Picked up at the counter", REQUEST, API)],
    ),
    (
        "DEMO-1008",
        "Acme Retail",
        {"CRATE-EU": 4},
        [("adjust", {"CRATE-EU": 2}, "Two more crates for the second truck", REQUEST, ADMIN)],
    ),
]


ORDER_DAYS = {
    "DEMO-1001": (85, 83, 78),
    "DEMO-1002": (74, 70),
    "DEMO-1003": (66,),
    "DEMO-1004": (61, 55),
    "DEMO-1005": (50, 44, 41),
    "DEMO-1006": (35,),
    "DEMO-1007": (27, 25),
    "DEMO-1008": (14, 8),
}
# The store sells every day but Sunday (sku -> most units a day), is restocked from WH-EAST
# every Monday up to STORE_TARGET (received on Tuesday), and the supplier delivers to
# WH-EAST every other Thursday.
STORE = "STORE-1"
STORE_SALES = {"WIDGET-100": 3, "CABLE-USB-C": 4, "GADGET-200": 2}
STORE_TARGET = {"WIDGET-100": 15, "CABLE-USB-C": 25, "GADGET-200": 10}
SUPPLIER_DELIVERY = {"WIDGET-100": 20, "CABLE-USB-C": 40, "GADGET-200": 15}
# Monthly cycle counts (days ago): the store's skus, and the fasteners at WH-EAST.
COUNT_DAYS = (60, 31, 5)
# (days ago, sku, location, delta, reason, reason code)
ADJUSTMENTS = [
    (52, "WIDGET-100", STORE, 1, "Returned unopened by a customer", "return"),
    (33, "CABLE-USB-C", STORE, 2, "Found behind the counter", "found"),
    (19, "GADGET-200", "WH-EAST", -2, "Forklift damage", "damaged"),
    (10, "WIDGET-100", STORE, -1, "Missing from the display", "lost"),
]
DEAD_LETTERS = 3  # the last transfers' final events, refused by the broker


def _audit(reason: str, reason_code: str = "") -> Audit:
    return Audit(actor="demo", source=Source.SYSTEM, reason=reason, reason_code=reason_code)


@contextmanager
def _clock(moment: datetime) -> Iterator[None]:
    """Run the services as if it were `moment`. For this demo command only. The services and
    the models read `django.utils.timezone.now()`, some through a reference to the function
    itself (`orders.planner.Plan.now`'s default_factory), so the clock is set where that
    function reads the time: the `datetime` it calls `now()` on."""

    class FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz=None):
            return moment.astimezone(tz)

    with mock.patch("django.utils.timezone.datetime", FrozenDatetime):
        yield


class Command(BaseCommand):
    help = (
        "Load demo customers, products, locations, stock and orders with 90 days of history "
        "(once) and set the admin password."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--admin-password",
            help="Password for the 'admin' superuser; a random one is generated if omitted.",
        )

    def handle(self, *args, admin_password: str | None, **options):
        with transaction.atomic():
            if Order.objects.filter(reference__startswith=MARKER).exists():
                self.stdout.write("Demo data already present; left as is.")
            else:
                self._seed()
                self.stdout.write(
                    f"Loaded demo data: {len(CUSTOMERS)} customers, {len(PRODUCTS)} products, "
                    f"{len(LOCATIONS)} locations with stock, "
                    f"{len(ORDERS)} orders with their adjustment history, "
                    f"spread over the last {HISTORY_DAYS} days."
                )
            password = admin_password or secrets.token_urlsafe(12)
            self._set_admin(password)
        self.stdout.write("Admin superuser (password set by this run):")
        self.stdout.write(f"  username: {ADMIN_USERNAME}")
        self.stdout.write(f"  password: {password}")

    # --- The plan: (moment, step), run oldest first --------------------------------------

    def _seed(self) -> None:
        self.today = timezone.localdate()
        self.rng = random.Random(2026)  # the same history on every fresh database
        self.transfers: dict[str, int] = {}
        self.orders: dict[str, int] = {}
        steps = [
            *self._setup_steps(),
            *self._order_steps(),
            *self._store_steps(),
            *self._count_steps(),
        ]
        # Stable: steps at the same moment keep their order (the orders' ids and rows stay).
        steps.sort(key=lambda step: step[0])
        # The history's months get partitions of their own, not the DEFAULT partition.
        partitions_ensure(months_ahead=settings.PARTITION_MONTHS_AHEAD, since=steps[0][0])
        for moment, step in steps:
            with _clock(moment):
                step()
        self._dead_letter()
        # Held for a customer who has not ordered yet; the beat releases it when it expires.
        stock.reservation_create(
            sku="GADGET-200",
            quantity=5,
            expires_at=timezone.now() + timedelta(days=2),
            reference="DEMO-HOLD-1",
            audit=_audit("Held for a phone enquiry"),
        )

    def _at(self, days_ago: int, hour: int, minute: int = 0) -> datetime:
        day = self.today - timedelta(days=days_ago)
        return timezone.make_aware(datetime.combine(day, time(hour, minute)))

    def _setup_steps(self) -> Iterator[tuple[datetime, Callable[[], object]]]:
        """The catalogue, opening stock and a few movements of every kind, before the
        orders reserve."""
        first = HISTORY_DAYS - 1
        yield self._at(first, 7), self._seed_catalogue
        yield self._at(first, 8), self._seed_opening_stock
        yield (
            self._at(first - 2, 10),
            lambda: self._transfer(
                "restock", "WIDGET-100", "WH-EAST", STORE, 10, "Restock the store"
            ),
        )
        yield (
            self._at(first - 1, 15),
            lambda: stock.stock_issue(
                sku="CRATE-EU",
                location="WH-MAIN",
                quantity=2,
                audit=_audit("Used in the warehouse"),
            ),
        )
        yield (
            self._at(first - 3, 9),
            lambda: stock.transfer_receive(
                transfer_id=self.transfers["restock"], audit=_audit("Arrived at the store")
            ),
        )
        yield (
            self._at(first - 4, 11),
            lambda: stock.stock_count(
                sku="NUT-M8",
                location="WH-EAST",
                counted=996,
                audit=_audit("Cycle count", "cycle_count"),
            ),
        )
        yield (
            self._at(first - 6, 14),
            lambda: self._transfer("bolts", "BOLT-M8", "WH-EAST", STORE, 50, "Bolts for the store"),
        )
        yield (
            self._at(first - 7, 8),
            lambda: stock.transfer_cancel(
                transfer_id=self.transfers["bolts"], audit=_audit("Truck cancelled")
            ),
        )
        yield (
            self._at(75, 16),
            lambda: stock.stock_adjust(
                sku="GADGET-200",
                location="WH-EAST",
                delta=-3,
                audit=_audit("Damaged in handling", "damaged"),
            ),
        )
        yield (  # left in transit
            self._at(2, 14),
            lambda: self._transfer(
                "cables", "CABLE-USB-C", "WH-EAST", STORE, 20, "Cables for the store"
            ),
        )

    def _seed_catalogue(self) -> None:
        for name, email in CUSTOMERS:
            if not Customer.objects.filter(name=name).exists():
                services.customer_create(name=name, email=email)
        existing_skus = set(Product.objects.values_list("sku", flat=True))
        for sku, name in PRODUCTS:
            if sku not in existing_skus:
                stock.product_create(sku=sku, name=name)
        existing_codes = set(Location.objects.values_list("code", flat=True))
        for code, name, type_, priority in LOCATIONS:
            if code not in existing_codes:
                stock.location_create(code=code, name=name, type=type_, priority=priority)

    def _seed_opening_stock(self) -> None:
        for sku, places in OPENING_STOCK.items():
            for location, quantity in places.items():
                stock.stock_receive(
                    sku=sku, location=location, quantity=quantity, audit=_audit("Opening stock")
                )
        for sku, location, reorder_point, safety_stock in THRESHOLDS:
            stock.stock_set_thresholds(
                sku=sku,
                location=location,
                reorder_point=reorder_point,
                safety_stock=safety_stock,
                audit=_audit("Demo thresholds"),
            )

    def _transfer(self, key: str, sku: str, source: str, to: str, quantity: int, reason: str):
        transfer = stock.transfer_create(
            sku=sku, from_location=source, to_location=to, quantity=quantity, audit=_audit(reason)
        )
        self.transfers[key] = transfer.pk

    def _order_steps(self) -> Iterator[tuple[datetime, Callable[[], object]]]:
        for reference, customer_name, lines, commands in ORDERS:
            created, *follow_ups = ORDER_DAYS[reference]
            yield (
                self._at(created, 10),
                lambda r=reference, c=customer_name, lines=lines: self._order_create(r, c, lines),
            )
            for days_ago, command in zip(follow_ups, commands, strict=True):
                yield self._at(days_ago, 11), lambda r=reference, c=command: self._order_do(r, c)

    def _order_create(self, reference: str, customer_name: str | None, lines: dict) -> None:
        customer = Customer.objects.get(name=customer_name) if customer_name else None
        order = services.order_create(
            customer_id=customer.pk if customer else None,
            reference=reference,
            lines=lines,
            audit=Audit(
                actor=ACTORS[API], source=API, reason="Order from the web shop", reason_code=REQUEST
            ),
        )
        self.orders[reference] = order.pk

    def _order_do(self, reference: str, command: tuple) -> None:
        kind, quantities, reason, code, door = command
        audit = Audit(actor=ACTORS[door], source=door, reason=reason, reason_code=code)
        order_id = self.orders[reference]
        if kind == "set":
            services.order_set_quantities(order_id=order_id, quantities=quantities, audit=audit)
        elif kind == "adjust":
            services.order_adjust(order_id=order_id, deltas=quantities, audit=audit)
        elif kind == "fulfil":
            services.order_fulfil(order_id=order_id, audit=audit)
        else:
            services.order_cancel(order_id=order_id, audit=audit)

    # --- The store's daily life ----------------------------------------------------------

    def _store_steps(self) -> Iterator[tuple[datetime, Callable[[], object]]]:
        for days_ago in range(HISTORY_DAYS - 4, 0, -1):
            day = self.today - timedelta(days=days_ago)
            weekday = day.weekday()
            if weekday == 0 and days_ago > 1:  # Monday, received on Tuesday
                yield self._at(days_ago, 7), lambda d=days_ago: self._restock(d)
                yield self._at(days_ago - 1, 8), lambda d=days_ago: self._restock_arrived(d)
            if weekday == 3 and day.isocalendar().week % 2 == 0:
                yield self._at(days_ago, 9), lambda d=day: self._delivery(d)
            if weekday != 6:
                sales = {sku: self.rng.randint(0, most) for sku, most in STORE_SALES.items()}
                yield self._at(days_ago, 17, 30), lambda s=sales: self._sell(s)
        for days_ago, sku, location, delta, reason, code in ADJUSTMENTS:
            yield (
                self._at(days_ago, 12),
                lambda s=sku, loc=location, d=delta, r=reason, c=code: self._adjust(
                    s, loc, d, r, c
                ),
            )

    def _level(self, sku: str, location: str) -> StockLevel:
        """The level, or an empty one where nothing has moved yet (not saved)."""
        level = StockLevel.objects.filter(product__sku=sku, location__code=location).first()
        return level or StockLevel(on_hand=0, reserved=0, in_transit=0)

    def _available(self, sku: str, location: str) -> int:
        level = self._level(sku, location)
        return level.on_hand - level.reserved

    def _restock(self, days_ago: int) -> None:
        for sku, target in STORE_TARGET.items():
            store = self._level(sku, STORE)
            wanted = target - store.on_hand - store.in_transit
            quantity = min(wanted, self._available(sku, "WH-EAST"))
            if quantity > 0:
                self._transfer(
                    f"{sku}-{days_ago}", sku, "WH-EAST", STORE, quantity, "Weekly restock"
                )

    def _restock_arrived(self, days_ago: int) -> None:
        for sku in STORE_TARGET:
            transfer_id = self.transfers.get(f"{sku}-{days_ago}")
            if transfer_id:
                stock.transfer_receive(transfer_id=transfer_id, audit=_audit("Weekly restock"))

    def _delivery(self, day) -> None:
        for sku, quantity in SUPPLIER_DELIVERY.items():
            stock.stock_receive(
                sku=sku,
                location="WH-EAST",
                quantity=quantity,
                audit=_audit(f"Supplier delivery note DN-{day:%y%m%d}"),
            )

    def _sell(self, sales: dict[str, int]) -> None:
        for sku, wanted in sales.items():
            quantity = min(wanted, self._available(sku, STORE))
            if quantity > 0:
                stock.stock_issue(
                    sku=sku, location=STORE, quantity=quantity, audit=_audit("Counter sales")
                )

    def _adjust(self, sku: str, location: str, delta: int, reason: str, code: str) -> None:
        if delta < 0 and self._available(sku, location) < -delta:
            return
        stock.stock_adjust(sku=sku, location=location, delta=delta, audit=_audit(reason, code))

    def _count_steps(self) -> Iterator[tuple[datetime, Callable[[], object]]]:
        places = [(sku, STORE) for sku in STORE_SALES] + [
            ("BOLT-M8", "WH-EAST"),
            ("NUT-M8", "WH-EAST"),
        ]
        for days_ago in COUNT_DAYS:
            shrink = [self.rng.choice((0, 0, 1, 2)) for _ in places]
            yield self._at(days_ago, 7, 30), lambda p=places, s=shrink: self._count(p, s)

    def _count(self, places: list[tuple[str, str]], shrink: list[int]) -> None:
        for (sku, location), missing in zip(places, shrink, strict=True):
            level = self._level(sku, location)
            stock.stock_count(
                sku=sku,
                location=location,
                counted=max(level.on_hand - missing, level.reserved),
                audit=_audit("Monthly cycle count", "cycle_count"),
            )

    # --- A few events the broker refused -------------------------------------------------

    def _dead_letter(self) -> None:
        """The final events of the last few received transfers, failed through the relay's
        own failure handling (`relay._record_failures`, what a batch does with a refused
        event) until it dead-letters them, at the times the relay would have tried. A
        transfer has no later events, so nothing else waits behind them."""
        events = list(
            OutboxEvent.objects.filter(
                aggregate_type="transfer", event_type="stock.transfer_received"
            ).order_by("-id")[:DEAD_LETTERS]
        )
        relay_logger = logging.getLogger(relay.__name__)
        was_disabled, relay_logger.disabled = relay_logger.disabled, True  # expected, not news
        try:
            for event in events:
                now = event.created_at + timedelta(seconds=1)
                while event.dead_lettered_at is None:
                    relay._record_failures(
                        [event], "the broker refused (nack)", now, relay.RelayResult()
                    )
                    now = event.next_attempt_at or now
        finally:
            relay_logger.disabled = was_disabled

    def _set_admin(self, password: str) -> None:
        user, _ = get_user_model().objects.get_or_create(
            username=ADMIN_USERNAME, defaults={"email": "admin@example.com"}
        )
        user.is_staff = True
        user.is_superuser = True
        user.is_active = True
        user.set_password(password)
        user.save()
