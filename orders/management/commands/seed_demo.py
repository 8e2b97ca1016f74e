"""Load a small demo data set through the services, so the ledger, outbox and timelines look
exactly as they would after real use. Safe to run again: orders whose reference starts with
DEMO- mark the data as seeded. The admin password is (re)set on every run."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from history.audit import Audit
from history.models import Source
from inventory.models import Product
from inventory.services import product_create
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
    ("DEMO-1007", None, {"WIDGET-100": 10, "CABLE-USB-C": 10}, []),
    (
        "DEMO-1008",
        "Acme Retail",
        {"CRATE-EU": 4},
        [("adjust", {"CRATE-EU": 2}, "Two more crates for the second truck")],
    ),
]


def _audit(reason: str) -> Audit:
    return Audit(actor="demo", source=Source.SYSTEM, reason=reason)


class Command(BaseCommand):
    help = "Load demo customers, products and orders (once) and set the admin password."

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
                product_create(sku=sku, name=name)

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
