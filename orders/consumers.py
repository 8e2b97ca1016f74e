"""Consumers of the event stream that act on orders (run by `manage.py consume_events
--handler NAME`; registered in `orders.apps`)."""

from functools import partial

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from config.tracing import traced
from orders.models import Order


@traced
def notify_order_cancelled(event: dict) -> None:
    """E-mail the customer (or the operations inbox) when an order is cancelled. The mail
    leaves once the handling's transaction has committed: a handling that rolls back (and
    is delivered again) sends nothing. A mail that fails to send is logged, not retried."""
    if event.get("type") != "order.cancelled":
        return
    data = event["data"]
    order = Order.objects.select_related("customer").filter(pk=data["order_id"]).first()
    recipient = (order.customer.email if order and order.customer else "") or (
        settings.ORDER_NOTIFICATIONS_EMAIL
    )
    released = sum(-change["delta"] for change in data["changes"])
    mail = partial(
        send_mail,
        subject=f"Order #{data['order_id']} was cancelled",
        message=(
            f"Order #{data['order_id']} ({data.get('reference') or 'no reference'}) was "
            f"cancelled by {data['actor']} at {data['occurred_at']}.\n"
            f"Reason: {data.get('reason') or '-'}\n"
            f"Units released: {released}\n"
        ),
        from_email=None,
        recipient_list=[recipient],
    )
    transaction.on_commit(mail, robust=True)
