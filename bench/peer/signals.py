"""A line saved writes an outbox row, in the request's transaction (ATOMIC_REQUESTS)."""

from django.db.models.signals import post_save
from django.dispatch import receiver

from bench.peer.models import OrderLine, Outbox


@receiver(post_save, sender=OrderLine)
def order_line_saved(sender, instance: OrderLine, created: bool, **kwargs) -> None:
    Outbox.objects.create(
        event_type="order.line_created" if created else "order.line_changed",
        aggregate_id=str(instance.order_id),
        payload={
            "order_id": instance.order_id,
            "sku": instance.product.sku,
            "quantity": instance.quantity,
        },
    )
