"""The Content-Security-Policy header: built once for every response, and still django-csp's
own for a response that carries a policy of its own (its view decorators)."""

from django.http import HttpResponse
from django.test import RequestFactory

from config.middleware import ContentSecurityPolicyMiddleware


def _answer(response: HttpResponse) -> HttpResponse:
    middleware = ContentSecurityPolicyMiddleware(lambda request: response)
    return middleware(RequestFactory().get("/"))


def test_every_response_gets_the_configured_policy():
    # when
    first, second = _answer(HttpResponse()), _answer(HttpResponse(status=404))

    # then
    assert first["Content-Security-Policy"] == second["Content-Security-Policy"]
    assert "script-src 'self'" in first["Content-Security-Policy"]


def test_a_response_with_a_policy_update_gets_it_merged():
    # given: what django-csp's @csp_update decorator leaves on a response
    response = HttpResponse()
    response._csp_update = {"img-src": ["https://images.example"]}

    # when
    policy = _answer(response)["Content-Security-Policy"]

    # then
    assert "img-src 'self' data: https://images.example" in policy


def test_a_header_set_by_the_view_is_kept():
    # given
    response = HttpResponse()
    response["Content-Security-Policy"] = "default-src 'none'"

    # then
    assert _answer(response)["Content-Security-Policy"] == "default-src 'none'"
