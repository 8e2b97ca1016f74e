from django.apps import AppConfig


class PeerConfig(AppConfig):
    name = "bench.peer"
    label = "peer"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from bench.peer import signals  # noqa: F401
