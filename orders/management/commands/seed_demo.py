"""Load a small demo data set through the services, so the ledger, outbox and timelines look
exactly as they would after real use: stock is received at three locations first (the demo
orders reserve it), and the stock ledger ends up with every kind of movement. Safe to run
again: orders whose reference starts with DEMO- mark the data as seeded. The admin password
is (re)set on every run."""

import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from history.audit import Audit
from history.models import Source
from inventory import services as stock
from inventory.models import Location, LocationType, Product
from orders import services
from orders.models import Customer, Order

MARKER = "DEMO-"
ADMIN_USERNAME = "admin"

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
# (reference, customer name or None, initial lines, follow-up commands)
ORDERS = [
    (
        "DEMO-1001",
        "Acme Retail",
        {"WIDGET-100": 100, "GADGET-200": 40},
        [
            ("set", {"WIDGET-100": 120}, "Customer raised the quantity by phone"),
            ("adjust", {"GADGET-200": -5}, "Five units damaged in the warehouse"),
        ],
    ),
    (
        "DEMO-1002",
        "Acme Retail",
        {"BOLT-M8": 500, "NUT-M8": 500},
        [("cancel", None, "Customer ordered from another supplier")],
    ),
    ("DEMO-1003", "Globex Wholesale", {"CABLE-USB-C": 250}, []),
    (
        "DEMO-1004",
        "Globex Wholesale",
        {"CRATE-EU": 12},
        [("set", {"WIDGET-100": 30}, "Widgets added to the same delivery")],
    ),
    (
        "DEMO-1005",
        "Initech Supplies",
        {"BOLT-M8": 2000, "NUT-M8": 2000},
        [
            ("adjust", {"BOLT-M8": -200}, "Short shipment from the supplier"),
            ("set", {"NUT-M8": 1800}, "Match the number of bolts"),
        ],
    ),
    ("DEMO-1006", "Initech Supplies", {"GADGET-200": 75}, []),
    (
        "DEMO-1007",
        None,
        {"WIDGET-100": 10, "CABLE-USB-C": 10},
        [("fulfil", None, "Picked up at the counter")],
    ),
    (
        "DEMO-1008",
        "Acme Retail",
        {"CRATE-EU": 4},
        [("adjust", {"CRATE-EU": 2}, "Two more crates for the second truck")],
    ),
]


def _audit(reason: str, reason_code: str = "") -> Audit:
    return Audit(actor="demo", source=Source.SYSTEM, reason=reason, reason_code=reason_code)


class Command(BaseCommand):
    help = (
        "Load demo customers, products, locations, stock and orders (once) and set the admin "
        "password."
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
                    f"{len(ORDERS)} orders with their adjustment history."
                )
            password = admin_password or secrets.token_urlsafe(12)
            self._set_admin(password)
        self.stdout.write("Admin superuser (password set by this run):")
        self.stdout.write(f"  username: {ADMIN_USERNAME}")
        self.stdout.write(f"  password: {password}")

    def _seed(self) -> None:
        customer_ids = {}
        for name, email in CUSTOMERS:
            customer = Customer.objects.filter(name=name).first()
            customer = customer or services.customer_create(name=name, email=email)
            customer_ids[name] = customer.pk
        existing_skus = set(Product.objects.values_list("sku", flat=True))
        for sku, name in PRODUCTS:
            if sku not in existing_skus:
                stock.product_create(sku=sku, name=name)
        self._seed_stock()
        self._seed_orders(customer_ids)
        # Held for a customer who has not ordered yet; the beat releases it when it expires.
        stock.reservation_create(
            sku="GADGET-200",
            quantity=5,
            expires_at=timezone.now() + timedelta(days=2),
            reference="DEMO-HOLD-1",
            audit=_audit("Held for a phone enquiry"),
        )

    def _seed_stock(self) -> None:
        """Opening stock and a few movements of every kind, before the orders reserve."""
        existing_codes = set(Location.objects.values_list("code", flat=True))
        for code, name, type_, priority in LOCATIONS:
            if code not in existing_codes:
                stock.location_create(code=code, name=name, type=type_, priority=priority)
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
        restock = stock.transfer_create(
            sku="WIDGET-100",
            from_location="WH-EAST",
            to_location="STORE-1",
            quantity=10,
            audit=_audit("Restock the store"),
        )
        stock.transfer_receive(transfer_id=restock.pk, audit=_audit("Arrived at the store"))
        cancelled = stock.transfer_create(
            sku="BOLT-M8",
            from_location="WH-EAST",
            to_location="STORE-1",
            quantity=50,
            audit=_audit("Bolts for the store"),
        )
        stock.transfer_cancel(transfer_id=cancelled.pk, audit=_audit("Truck cancelled"))
        stock.transfer_create(  # left in transit
            sku="CABLE-USB-C",
            from_location="WH-MAIN",
            to_location="STORE-1",
            quantity=20,
            audit=_audit("Cables for the store"),
        )
        stock.stock_issue(
            sku="CRATE-EU", location="WH-MAIN", quantity=2, audit=_audit("Used in the warehouse")
        )
        stock.stock_adjust(
            sku="GADGET-200",
            location="WH-EAST",
            delta=-3,
            audit=_audit("Damaged in handling", "damaged"),
        )
        stock.stock_count(
            sku="NUT-M8",
            location="WH-EAST",
            counted=996,
            audit=_audit("Cycle count", "cycle_count"),
        )

    def _seed_orders(self, customer_ids: dict[str, int]) -> None:
        for reference, customer_name, lines, commands in ORDERS:
            order = services.order_create(
                customer_id=customer_ids[customer_name] if customer_name else None,
                reference=reference,
                lines=lines,
                audit=_audit("Demo order"),
            )
            for kind, quantities, reason in commands:
                if kind == "set":
                    services.order_set_quantities(
                        order_id=order.pk, quantities=quantities, audit=_audit(reason)
                    )
                elif kind == "adjust":
                    services.order_adjust(
                        order_id=order.pk, deltas=quantities, audit=_audit(reason)
                    )
                elif kind == "fulfil":
                    services.order_fulfil(order_id=order.pk, audit=_audit(reason))
                else:
                    services.order_cancel(order_id=order.pk, audit=_audit(reason))

    def _set_admin(self, password: str) -> None:
        user, _ = get_user_model().objects.get_or_create(
            username=ADMIN_USERNAME, defaults={"email": "admin@example.com"}
        )
        user.is_staff = True
        user.is_superuser = True
        user.is_active = True
        user.set_password(password)
        user.save()
