"""Two middleware stacks: the full one, and a shorter one for API requests that carry a token.

A request to /api/ with `Authorization: Token ...` is authenticated by its token alone
(config.api.authentication either accepts it or refuses it; DRF never falls through to the
session). Sessions, CSRF, the session user, messages, the admin login limiter and static
files have nothing to do for it, yet they cost about a fifth of a cached order read
(bench/README.md, "Round two"). Such requests go through settings.MIDDLEWARE minus
TOKEN_API_SKIPPED_MIDDLEWARE; every other request (the admin, a session's API calls, the
schema page in a browser) through all of it. The headers both stacks set are the same
(config/tests/test_handlers.py)."""

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler


def token_api_request(environ: dict) -> bool:
    """An API request whose Authorization header's scheme is `Token`, as DRF reads it."""
    if not environ.get("PATH_INFO", "").startswith("/api/"):
        return False
    scheme = environ.get("HTTP_AUTHORIZATION", "").split(None, 1)[:1]
    return scheme == ["Token"] or (bool(scheme) and scheme[0].lower() == "token")


class TokenApiStack:
    """Mixed into a Django handler: it loads settings.MIDDLEWARE without the skipped ones.
    Filtered when loaded, so that middleware added at startup (the OpenTelemetry Django
    instrumentation's) is kept."""

    def load_middleware(self, is_async=False):
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = [m for m in full if m not in settings.TOKEN_API_SKIPPED_MIDDLEWARE]
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


class TokenApiWSGIHandler(TokenApiStack, WSGIHandler):
    pass


class Application:
    """The WSGI application: each request to the stack it needs."""

    def __init__(self):
        self.full = WSGIHandler()
        self.token_api = TokenApiWSGIHandler()

    def __call__(self, environ, start_response):
        handler = self.token_api if token_api_request(environ) else self.full
        return handler(environ, start_response)
