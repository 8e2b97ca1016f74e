from django.apps import AppConfig


class ConfigAppConfig(AppConfig):
    """`config` is an app only for what the API plumbing must store itself: the API tokens.
    It still imports no other app of the project."""

    name = "config"
    label = "config"
    verbose_name = "API access"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete

        from config import health, metrics, replica, token_cache
        from config.api.throttling import rates_check
        from config.models import ApiToken

        if replica.configured():
            health.report_register("replica", replica.replica_report)
            metrics.on_scrape(replica.metrics_scrape)
        rates_check()  # a mistyped THROTTLE_* fails at start, not on every request
        # What can make a cached token lookup wrong (config.token_cache).
        user_model = get_user_model()
        post_save.connect(token_cache.on_user_saved, sender=user_model)
        m2m_changed.connect(token_cache.on_memberships_changed, sender=user_model.groups.through)
        post_save.connect(token_cache.on_group_changed, sender=Group)
        pre_delete.connect(token_cache.on_group_changed, sender=Group)
        post_save.connect(token_cache.on_token_changed, sender=ApiToken)
        post_delete.connect(token_cache.on_token_changed, sender=ApiToken)
