"""The two middleware stacks (config/handlers.py): which requests take the shorter one, and
that it answers as the full one does."""

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from config.handlers import token_api_request
from config.settings import base
from tests.clients import ApiClient

pytestmark = pytest.mark.django_db

ORDERS = "/api/v1/orders/"


@pytest.mark.parametrize(
    ("path", "authorization", "expected"),
    [
        ("/api/v1/orders/", "Token ot_abc_def", True),
        ("/api/v1/orders/", "token ot_abc_def", True),
        ("/api/v1/orders/", "TOKEN\tot_abc_def", True),
        ("/api/v1/orders/", "Token", True),  # refused by the token authentication: 401
        ("/api/v1/orders/", "Tokens ot_abc_def", False),
        ("/api/v1/orders/", "Bearer ot_abc_def", False),
        ("/api/v1/orders/", "", False),
        ("/api/v1/orders/", None, False),
        ("/admin/", "Token ot_abc_def", False),
        ("/healthz", "Token ot_abc_def", False),
        ("/apix/", "Token ot_abc_def", False),
    ],
)
def test_which_requests_take_the_token_stack(path, authorization, expected):
    environ = {"PATH_INFO": path}
    if authorization is not None:
        environ["HTTP_AUTHORIZATION"] = authorization
    assert token_api_request(environ) is expected


def _stack_of(response) -> str:
    """The session middleware sets request.session; the token stack has none."""
    return "full" if hasattr(response.wsgi_request, "session") else "token"


def test_a_token_request_takes_the_token_stack_and_answers_as_the_full_one(api, make_order):
    order = make_order()
    full = APIClient()
    full.credentials(HTTP_AUTHORIZATION=f"Token {api.key}")
    for path in (ORDERS, f"{ORDERS}{order.pk}/", f"{ORDERS}999999/", "/api/v1/nowhere/"):
        short, long = api.get(path), full.get(path)
        assert (_stack_of(short), _stack_of(long)) == ("token", "full")
        assert short.status_code == long.status_code, path
        assert short.content == long.content, path
        # Each its own request id; the second read hits the cache entry the first filled.
        differ = {"X-Request-ID", "X-Cache"}
        headers = {name: value for name, value in short.items() if name not in differ}
        assert headers == {name: value for name, value in long.items() if name not in differ}
        assert "X-Frame-Options" in headers and "Content-Security-Policy" in headers


def test_a_refused_token_is_refused_by_the_token_stack(api):
    bad = ApiClient()
    bad.credentials(HTTP_AUTHORIZATION="Token ot_nope_nope")
    response = bad.get(ORDERS)
    assert (_stack_of(response), response.status_code) == ("token", 401)
    assert ApiClient(HTTP_AUTHORIZATION="Token").get(ORDERS).status_code == 401


def test_a_session_request_to_the_api_takes_the_full_stack(user_with_role, make_order):
    make_order()
    client = ApiClient(enforce_csrf_checks=True)
    client.force_login(user_with_role("order_staff"))
    response = client.get(ORDERS)
    assert (_stack_of(response), response.status_code) == ("full", 200)
    # The session's CSRF protection still holds: a write without the token is refused.
    refused = client.post(ORDERS, {"customer": 1, "lines": []}, format="json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]


def test_middleware_added_at_startup_is_kept_on_the_token_stack(api, settings_mw_stamp):
    client = ApiClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api.key}")
    response = client.get(ORDERS)
    assert _stack_of(response) == "token"
    assert response["X-Stamp"] == "stamped"


class StampMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response["X-Stamp"] = "stamped"
        return response


@pytest.fixture
def settings_mw_stamp(settings):
    # As the OpenTelemetry Django instrumentation does: prepended to settings.MIDDLEWARE.
    settings.MIDDLEWARE = [f"{__name__}.StampMiddleware", *settings.MIDDLEWARE]
    return settings


def test_only_middleware_that_a_token_request_has_no_use_for_is_skipped():
    skipped = settings.TOKEN_API_SKIPPED_MIDDLEWARE
    assert skipped <= set(base.MIDDLEWARE)  # no typo: each one is in the stack
    kept = [m for m in settings.MIDDLEWARE if m not in skipped]
    for needed in (
        "django.middleware.security.SecurityMiddleware",
        "config.middleware.CorrelationIdMiddleware",
        "config.logging.RequestLogMiddleware",
        "config.middleware.BodyLimitMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
        "config.middleware.ContentSecurityPolicyMiddleware",
    ):
        assert needed in kept
