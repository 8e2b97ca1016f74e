"""Production: every backing service must be named (there is no embedded fallback here),
and the security settings are on."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env

for _name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "EVENT_BUS_URL"):
    _value = env(_name, default="")
    if not _value or _value.startswith("filesystem"):
        raise ImproperlyConfigured(
            f"{_name} must be set with production settings (there is no embedded default "
            "here): PostgreSQL, Redis and RabbitMQ URLs, see .env.example."
        )

SECRET_KEY = env("SECRET_KEY")
# A production ledger is sealed with a key the operator keeps (history/seals.py), never with
# one generated on the fly.
LEDGER_SIGNING_KEY_GENERATE = False
DEBUG = False
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")

# Trust X-Forwarded-Proto only behind a proxy that sets it (and strips a client's own):
# otherwise any client could claim https.
if env.bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
# Preloading is hard to undo (browsers ship the list): only when asked for. Without it,
# `check --deploy` would warn that the site cannot be submitted to the list: that is the
# point, so the warning is silenced then.
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
if not SECURE_HSTS_PRELOAD:
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# /metrics needs `Authorization: Bearer <METRICS_TOKEN>` here (config/metrics.py).
METRICS_PUBLIC = env.bool("METRICS_PUBLIC", default=False)
