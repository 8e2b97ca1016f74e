from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DEBUG", default=True)
REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] = [  # noqa: F405
    *REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"],  # noqa: F405
    "rest_framework.renderers.BrowsableAPIRenderer",
]
# runserver serves static files itself in development.
MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("whitenoise")]  # noqa: F405
