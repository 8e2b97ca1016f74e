"""Settings shared by every environment. Everything configurable is read here, from the
environment or a `.env` file; with nothing set the project runs on the embedded default
(an embedded PostgreSQL server under var/postgres, no Redis: the order cache is off, a
filesystem broker) and needs nothing but Python."""

import logging
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from config import embedded_postgres
from config.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("SECRET_KEY", default="insecure-local-only-key-change-me-0123456789abcdef")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    # django.contrib.admin with the project's admin site (grouped index, dashboard).
    "orders.admin_site.OrderTrackAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "drf_standardized_errors",
    "django_prometheus",
    "django_structlog",
    "csp",
    "axes",
    # The ground (roles, API plumbing) is an app for its one model, the API tokens.
    "config",
    "inventory",
    "orders",
    "history",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.middleware.CorrelationIdMiddleware",
    # The log context and the `request_finished` line (config/logging.py), for every request.
    "config.logging.RequestLogMiddleware",
    "config.middleware.BodyLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.middleware.ContentSecurityPolicyMiddleware",
    # The admin login limiter (AXES_* below): answers a locked-out login with 429.
    "axes.middleware.AxesMiddleware",
]
# What an API request authenticated by its token does not go through (config/handlers.py):
# it has no session, no CSRF cookie, no messages, no admin login and no static file.
TOKEN_API_SKIPPED_MIDDLEWARE = frozenset(
    {
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "axes.middleware.AxesMiddleware",
    }
)
# The request metric (`ordertrack_http_request_duration_seconds`, config/metrics.py), first so
# that it times the whole stack. METRICS_HTTP=false leaves it out (the other metrics stay).
METRICS_HTTP = env.bool("METRICS_HTTP", default=True)
if METRICS_HTTP:
    MIDDLEWARE = ["config.metrics.HttpMetricsMiddleware", *MIDDLEWARE]

# Content-Security-Policy (django-csp): scripts from this origin only, so no injected inline
# script runs. The admin and Swagger UI (served as separate files, SpectacularSwaggerSplitView)
# work under it; inline styles stay allowed (the admin and Swagger UI use them).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def database_settings(database: dict) -> dict:
    """The connection options every settings module gives its database (env.db's dict)."""
    database["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    # A health check costs a SELECT 1 round trip on every request; without it, the first
    # request on a connection the database dropped fails once and the connection is replaced.
    database["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=False)
    options = database.setdefault("OPTIONS", {})
    if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
        # psycopg prepares a statement once a connection has run it 5 times, so PostgreSQL
        # stops parsing and planning the hot ones: ~30% less PostgreSQL CPU per order write
        # (make bench-profile). Turn off behind a pooler in transaction mode (PgBouncer
        # before 1.21), which cannot keep prepared statements.
        options.update({"server_side_binding": True, "prepare_threshold": 5})
    return database


POSTGRES_SCHEMES = {
    name
    for name, engine in environ.Env.DB_SCHEMES.items()
    if engine.endswith("backends.postgresql")
}


def _default_database() -> dict:
    """DATABASE_URL's database, which must be PostgreSQL; without it, the embedded server
    (`python -m config.embedded_postgres start`, which `make run` does)."""
    url = env("DATABASE_URL", default="")
    if not url:
        return embedded_postgres.database_settings()
    scheme = urlsplit(url).scheme
    if scheme not in POSTGRES_SCHEMES:
        raise ImproperlyConfigured(
            f"DATABASE_URL is {scheme + '://...' if scheme else 'not a URL'}, but ordertrack "
            "runs on PostgreSQL only: use a postgres:// URL (e.g. "
            "postgres://postgres@127.0.0.1:5432/ordertrack), or unset DATABASE_URL (in the "
            "environment and in .env) to run on the embedded PostgreSQL under var/postgres, "
            "which `make run` starts (or `python -m config.embedded_postgres start`)."
        )
    return env.db_url_config(url)


DATABASES = {"default": database_settings(_default_database())}

# A streaming read replica (a hot standby of DATABASE_URL's database): the GET endpoints that
# only read may be served from it, with read-your-writes (config/replica.py; README, "Read
# replica"). Empty: one database, and no query, header or Redis access more than without.
DATABASE_REPLICA_URL = env("DATABASE_REPLICA_URL", default="")
# Reads leave a replica that lags more than this, or cannot be reached, for the primary.
REPLICA_MAX_LAG_SECONDS = env.float("REPLICA_MAX_LAG_SECONDS", default=10.0)
# How often, at most, each process checks the replica's replay position and lag.
REPLICA_CHECK_INTERVAL_SECONDS = env.float("REPLICA_CHECK_INTERVAL_SECONDS", default=0.5)
# How long a user's write sends their reads to the primary until the replica has replayed it.
# Older writes are on any replica that still gets reads, hence the lower bound below.
REPLICA_READ_YOUR_WRITES_SECONDS = env.float("REPLICA_READ_YOUR_WRITES_SECONDS", default=60.0)
if DATABASE_REPLICA_URL:
    if urlsplit(DATABASE_REPLICA_URL).scheme not in POSTGRES_SCHEMES:
        raise ImproperlyConfigured(
            "DATABASE_REPLICA_URL must be the postgres:// URL of a hot standby of "
            "DATABASE_URL's database (streaming replication), or empty."
        )
    if REPLICA_READ_YOUR_WRITES_SECONDS < REPLICA_MAX_LAG_SECONDS + REPLICA_CHECK_INTERVAL_SECONDS:
        raise ImproperlyConfigured(
            "REPLICA_READ_YOUR_WRITES_SECONDS must be at least REPLICA_MAX_LAG_SECONDS + "
            "REPLICA_CHECK_INTERVAL_SECONDS: a write forgotten sooner may not be on a replica "
            "that still gets reads."
        )
    DATABASES["replica"] = database_settings(env.db_url_config(DATABASE_REPLICA_URL))
    # libpq's shortest: a replica that is away costs a check 2 s, then reads use the primary.
    DATABASES["replica"]["OPTIONS"].setdefault("connect_timeout", 2)
    DATABASE_ROUTERS = ["config.db_router.ReplicaRouter"]
    MIDDLEWARE = [*MIDDLEWARE, "config.replica.CommitLsnMiddleware"]

# The least-privileged role the application runs as (DATABASE_URL's user in production);
# `migrate`, run as the tables' owner, grants it what it needs (history.services).
DATABASE_RUNTIME_ROLE = env(
    "DATABASE_RUNTIME_ROLE",
    default="" if env("DATABASE_URL", default="") else embedded_postgres.RUNTIME_ROLE,
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="")
CACHE_KEY_PREFIX = env("CACHE_KEY_PREFIX", default="ordertrack")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "SOCKET_TIMEOUT": 0.5,
                # A cache outage must degrade reads, never fail them.
                "IGNORE_EXCEPTIONS": True,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# django-axes first: it refuses a locked-out username + address before any password is
# checked, and records every failure (AXES_* settings below).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "config.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["config.api.permissions.IsIntegratorOrStaff"],
    "DEFAULT_RENDERER_CLASSES": [
        "drf_orjson_renderer.renderers.ORJSONRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "drf_orjson_renderer.parsers.ORJSONParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "config.api.negotiation.StrictContentNegotiation",
    "DEFAULT_FILTER_BACKENDS": ["config.api.filters.FilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "config.api.pagination.IdCursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "config.api.schema.ProblemAutoSchema",
    "EXCEPTION_HANDLER": "drf_standardized_errors.handler.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Rate limits per role and per token, counted in the default cache (Redis with
    # REDIS_URL): config/api/throttling.py. A rate is N/second|minute|hour|day, or off.
    "DEFAULT_THROTTLE_CLASSES": ["config.api.throttling.RoleRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "integrator": env("THROTTLE_INTEGRATOR", default="6000/minute"),
        "staff": env("THROTTLE_STAFF", default="1200/minute"),
        "auditor": env("THROTTLE_AUDITOR", default="600/minute"),
        "csv_export": env("THROTTLE_CSV_EXPORT", default="60/hour"),
        "anon": env("THROTTLE_ANON", default="60/minute"),
    },
    # Proxies in front that append to X-Forwarded-For (0: use REMOTE_ADDR, ignore the header):
    # the client address of the anonymous rate limit and of the admin login limit.
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
}

DRF_STANDARDIZED_ERRORS = {
    "EXCEPTION_HANDLER_CLASS": "config.api.problems.ProblemExceptionHandler",
    "EXCEPTION_FORMATTER_CLASS": "config.api.problems.ProblemFormatter",
    "ENABLE_IN_DEBUG_FOR_UNHANDLED_EXCEPTIONS": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "OrderTrack API: orders and inventory",
    "DESCRIPTION": (
        "Orders and the stock they reserve: orders and their quantity changes, stock levels "
        "per location, reservations, transfers, and the append-only, sealed ledgers behind "
        "every change (the audit history). "
        "Errors are RFC 9457 problem details. Writes accept `Idempotency-Key`; "
        "order writes accept `If-Match` with the ETag of the order."
    ),
    # The Swagger UI's groups, in this order; config.api.schema.TAGS_BY_PREFIX assigns them.
    "TAGS": [
        {"name": "orders", "description": "Orders, their quantities and open demand."},
        {
            "name": "history",
            "description": "The order and stock ledgers, timelines, seals and their proofs.",
        },
        {"name": "stock", "description": "Stock levels, movements, thresholds and forecasts."},
        {"name": "reservations", "description": "Stock held for a purpose until confirmed."},
        {"name": "transfers", "description": "Stock moving between locations."},
        {"name": "locations", "description": "Warehouses and other places that hold stock."},
        {"name": "catalogue", "description": "Products and customers."},
        {"name": "operations", "description": "Your API tokens."},
    ],
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI is served from our own static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Path ids (config.api.converters.IdConverter).
    "PATH_CONVERTER_OVERRIDES": {
        "id": {"type": "integer", "format": "int64", "minimum": 1, "maximum": 2**63 - 1}
    },
}

# Events and background work. The embedded default uses kombu's filesystem transport,
# which works across processes without a server.
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://localhost//")
EVENT_BUS_URL = env("EVENT_BUS_URL", default="filesystem://localhost//")
EVENT_EXCHANGE = env("EVENT_EXCHANGE", default="inventory.events")
# The queue beat, the relay's kicks and the workers use. Deployments (or test runs) that
# share one RabbitMQ virtual host each need their own, or their workers take each other's
# tasks.
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", default="celery")
FILESYSTEM_TRANSPORT_OPTIONS = {
    "data_folder_in": str(BROKER_DIR / "queue"),
    "data_folder_out": str(BROKER_DIR / "queue"),
    "control_folder": str(BROKER_DIR / "control"),
    "store_processed": False,
}
CELERY_BROKER_TRANSPORT_OPTIONS = (
    FILESYSTEM_TRANSPORT_OPTIONS if CELERY_BROKER_URL.startswith("filesystem") else {}
)
# The filesystem transport fails on missing folders instead of creating them.
if CELERY_BROKER_URL.startswith("filesystem") or EVENT_BUS_URL.startswith("filesystem"):
    for _folder in ("queue", "control"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TIMEZONE = TIME_ZONE

IDEMPOTENCY_KEY_TTL_HOURS = env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=24)
# API request bodies above this get 413 before anything reads them (config.middleware).
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=1024 * 1024)
# API tokens (config.tokens): the lifetime of a new token unless its creator picks one, and
# the longest one may pick.
API_TOKEN_TTL_DAYS = env.int("API_TOKEN_TTL_DAYS", default=90)
API_TOKEN_MAX_DAYS = env.int("API_TOKEN_MAX_DAYS", default=365)
# With REDIS_URL: how long a token lookup is cached (config.token_cache; every revocation,
# user and role change invalidates it at once). 0: every token request reads the database.
API_TOKEN_CACHE_SECONDS = env.int("API_TOKEN_CACHE_SECONDS", default=60)

LOGIN_URL = "admin:login"

# Admin login limiter (django-axes): after AXES_FAILURE_LIMIT failed logins of one username
# from one address, that pair is locked out (429) for AXES_COOLOFF_MINUTES; a failure during
# the lockout starts it again, a successful login clears the count. Attempts, lockouts and
# logins are in the admin (Axes); `manage.py axes_reset` unlocks everyone.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The client address as the rate limits see it (NUM_PROXIES).
AXES_CLIENT_IP_CALLABLE = "config.api.throttling.client_ip"

# Logs (config/logging.py): human-readable lines by default (`make run`), one JSON object a
# line with LOG_FORMAT=json (production), each with the request id, user, trace and span ids.
LOG_FORMAT = env("LOG_FORMAT", default="console")
LOGGING = logging_config(fmt=LOG_FORMAT, level=env("LOG_LEVEL", default="INFO"))
# django-structlog: one `request_finished` line a request (with its status and duration), one
# `task_succeeded`/`task_failed` a task, the context carried into the tasks a request queues;
# the client address is ours (NUM_PROXIES), not guessed by ipware.
DJANGO_STRUCTLOG_STATUS_START_LOG_LEVEL = logging.DEBUG
DJANGO_STRUCTLOG_CELERY_ENABLED = True
DJANGO_STRUCTLOG_CELERY_TASK_START_LOG_LEVEL = logging.DEBUG
DJANGO_STRUCTLOG_IP_LOGGING_ENABLED = False

# Outbox relay (history/relay.py).
EVENT_SOURCE = env("EVENT_SOURCE", default="/ordertrack")
RELAY_INTERVAL_SECONDS = env.float("RELAY_INTERVAL_SECONDS", default=1.0)
RELAY_BATCH_SIZE = env.int("RELAY_BATCH_SIZE", default=500)
RELAY_MAX_ATTEMPTS = env.int("RELAY_MAX_ATTEMPTS", default=10)
RELAY_BACKOFF_BASE_SECONDS = env.float("RELAY_BACKOFF_BASE_SECONDS", default=1.0)
RELAY_BACKOFF_MAX_SECONDS = env.float("RELAY_BACKOFF_MAX_SECONDS", default=300.0)
RELAY_CONFIRM_TIMEOUT = env.float("RELAY_CONFIRM_TIMEOUT", default=10.0)
RELAY_CONNECT_TIMEOUT = env.float("RELAY_CONNECT_TIMEOUT", default=3.0)
RELAY_MAX_RUN_SECONDS = env.float("RELAY_MAX_RUN_SECONDS", default=30.0)
RELAY_KICK_ON_COMMIT = env.bool("RELAY_KICK_ON_COMMIT", default=True)
OUTBOX_RETENTION_DAYS = env.int("OUTBOX_RETENTION_DAYS", default=7)
# Months of partitions (ledgers, outbox) the beat keeps created ahead of this one.
PARTITION_MONTHS_AHEAD = env.int("PARTITION_MONTHS_AHEAD", default=3)
# Where `ledger_archive` writes the ledgers' old months (README, "Archive"); relative to
# the project directory.
LEDGER_ARCHIVE_DIR = BASE_DIR / env("LEDGER_ARCHIVE_DIR", default="var/ledger-archive")

# Seals of the ledger (history/seals.py): how often beat seals new rows, and the Ed25519 key
# that signs them: LEDGER_SIGNING_KEY holds a PEM private key, or LEDGER_SIGNING_KEY_FILE
# names a file holding one. Without either, outside production, a key is generated into
# LEDGER_SIGNING_KEY_FILE the first time one is needed (and a warning says so).
LEDGER_SEAL_INTERVAL_SECONDS = env.float("LEDGER_SEAL_INTERVAL_SECONDS", default=60.0)
LEDGER_SIGNING_KEY = env("LEDGER_SIGNING_KEY", default="")
LEDGER_SIGNING_KEY_FILE = env(
    "LEDGER_SIGNING_KEY_FILE", default=str(VAR_DIR / "ledger-signing-key.pem")
)
LEDGER_SIGNING_KEY_GENERATE = True

# Projector (history/projector.py).
PROJECTOR_INTERVAL_SECONDS = env.float("PROJECTOR_INTERVAL_SECONDS", default=1.0)
PROJECTOR_BATCH_SIZE = env.int("PROJECTOR_BATCH_SIZE", default=5000)

# Order read cache (history/cache.py): on when REDIS_URL is set.
ORDER_CACHE_TTL_SECONDS = env.int("ORDER_CACHE_TTL_SECONDS", default=300)

# Consumers (history/consumers.py). A message whose handling fails is delivered at most
# CONSUMER_MAX_DELIVERIES times (the quorum queue's x-delivery-limit), waiting
# CONSUMER_RETRY_DELAY_SECONDS (doubled at each attempt) before handing it back, and is then
# dead-lettered to `<queue>.dead`. Consumed-event records (the dedup by id) are kept
# CONSUMED_EVENT_RETENTION_DAYS.
CONSUMER_MAX_DELIVERIES = env.int("CONSUMER_MAX_DELIVERIES", default=5)
CONSUMER_RETRY_DELAY_SECONDS = env.float("CONSUMER_RETRY_DELAY_SECONDS", default=1.0)
CONSUMED_EVENT_RETENTION_DAYS = env.int("CONSUMED_EVENT_RETENTION_DAYS", default=30)
ORDER_NOTIFICATIONS_EMAIL = env("ORDER_NOTIFICATIONS_EMAIL", default="orders@localhost")
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="ordertrack@localhost")

# Metrics (config/metrics.py, `/metrics`). Public by default, for local runs and tests; the
# production settings require `Authorization: Bearer <METRICS_TOKEN>` instead. Multiprocess
# mode is switched on by the PROMETHEUS_MULTIPROC_DIR environment variable itself (read by
# prometheus_client at import), not by a setting: see config/gunicorn.py.
METRICS_PUBLIC = env.bool("METRICS_PUBLIC", default=True)
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# /readyz checks at most this often per process (config/health.py).
READYZ_CACHE_SECONDS = env.float("READYZ_CACHE_SECONDS", default=5.0)

# Inventory.
RESERVATION_DEFAULT_TTL_SECONDS = env.int("RESERVATION_DEFAULT_TTL_SECONDS", default=15 * 60)
RESERVATION_EXPIRY_INTERVAL_SECONDS = env.float("RESERVATION_EXPIRY_INTERVAL_SECONDS", default=10.0)

# Reason codes (history.audit): the vocabulary a change's `reason_code` comes from, the
# doors (admin, api, system) that must give one, and the stock movements that need one
# whatever the door. A change given no code is recorded as `unspecified` (`system` for the
# system's own).
REASON_CODES = [
    "customer_request",
    "correction",
    "damaged",
    "lost",
    "found",
    "cycle_count",
    "return",
    "supplier_shortage",
    "system",
]
REASON_CODES_EXTRA = env.list("REASON_CODES_EXTRA", default=[])
REASON_CODE_REQUIRED_DOORS = env.list("REASON_CODE_REQUIRED_DOORS", default=["admin"])
REASON_CODE_REQUIRED_MOVEMENTS = env.list(
    "REASON_CODE_REQUIRED_MOVEMENTS", default=["adjust", "count"]
)
