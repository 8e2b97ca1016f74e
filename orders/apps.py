from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self) -> None:
        from history.consumers import handler_register
        from orders.consumers import notify_order_cancelled

        handler_register("notify-cancelled", notify_order_cancelled)
