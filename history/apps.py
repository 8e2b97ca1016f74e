from django.apps import AppConfig


class HistoryConfig(AppConfig):
    name = "history"

    def ready(self) -> None:
        # Imported here, once the app registry is ready (these modules import models).
        # `tasks` is imported to register the tasks in every process, not only in Celery
        # workers (which discover them): commits kick the relay task by name.
        from django.db.backends.signals import connection_created

        from config import health, metrics
        from history import cache, monitoring, tasks
        from history.selectors import outbox_backlog

        health.report_register("outbox", outbox_backlog)
        health.report_register("projections", monitoring.projections_report)
        metrics.on_scrape(monitoring.metrics_scrape)
        connection_created.connect(cache.namespace_forget)
        del tasks
