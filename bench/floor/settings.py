"""The floor's settings: no middleware, no authentication, no cache, no apps beyond DRF.
DATABASE_URL points at a copy of the seeded bench database (bench/load.py makes it)."""

import os

import environ

DEBUG = False
SECRET_KEY = os.environ.get("SECRET_KEY", "bench-floor-not-secret")
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "bench.floor.app"
WSGI_APPLICATION = "bench.floor.wsgi.application"
INSTALLED_APPS = ["rest_framework"]
MIDDLEWARE: list[str] = []
USE_TZ = True
TIME_ZONE = "UTC"

DATABASES = {
    "default": environ.Env.db_url_config(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ordertrack_bench_floor")
    )
}
# As config.settings.base.database_settings: persistent connections, prepared statements.
DATABASES["default"]["CONN_MAX_AGE"] = 60
DATABASES["default"]["OPTIONS"] = {"server_side_binding": True, "prepare_threshold": 5}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_THROTTLE_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["drf_orjson_renderer.renderers.ORJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["drf_orjson_renderer.parsers.ORJSONParser"],
}
LOGGING_CONFIG = None
