from django.apps import AppConfig
from django.core import checks


class HistoryConfig(AppConfig):
    name = "history"

    def ready(self) -> None:
        # Imported here, once the app registry is ready (these modules import models).
        # `tasks` is imported to register the tasks in every process, not only in Celery
        # workers (which discover them): commits kick the relay task by name.
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate

        from config import health, metrics, token_cache
        from history import cache, monitoring, tasks
        from history.selectors import outbox_backlog, partitions_next_month_check

        health.check_register("partitions", partitions_next_month_check)
        health.report_register("outbox", outbox_backlog)
        health.report_register("projections", monitoring.projections_report)
        metrics.on_scrape(monitoring.metrics_scrape)
        connection_created.connect(cache.namespace_forget)
        post_migrate.connect(_grant_runtime_role, sender=self)
        # Token cache keys carry the database's instance id too (config cannot read it).
        token_cache.namespace_register(cache.namespace)
        del tasks


@checks.register(checks.Tags.security, deploy=True)
def signing_key_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """A deployment seals its ledger with a key it was given (history.seals)."""
    from django.core.exceptions import ImproperlyConfigured

    from history.seals import signing_key

    try:
        signing_key()
    except (ImproperlyConfigured, ValueError, TypeError) as exc:
        return [checks.Error(f"The ledger's signing key: {exc}", id="history.E001")]
    return []


def _grant_runtime_role(using: str, **kwargs) -> None:
    """After `migrate` (run as the owner), DATABASE_RUNTIME_ROLE gets its privileges."""
    from django.conf import settings
    from django.db import connections

    from history.services import runtime_role_grant

    role = settings.DATABASE_RUNTIME_ROLE
    if role and connections[using].settings_dict["USER"] != role:
        runtime_role_grant(role=role)
