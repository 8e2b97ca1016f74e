from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "inventory"

    def ready(self) -> None:
        from config import metrics
        from inventory import monitoring

        metrics.on_scrape(monitoring.metrics_scrape)
