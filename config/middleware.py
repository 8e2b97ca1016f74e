import re
import uuid

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CSPMiddleware
from csp.utils import build_policy
from django.conf import settings

from config import tracing
from config.api.problems import problem_response

_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class CorrelationIdMiddleware:
    """Gives every request a correlation id (the caller's `X-Request-ID` when it is sane)
    that the services write into the ledger and the response echoes back."""

    header = "X-Request-ID"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(self.header, "")
        request.correlation_id = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
        tracing.correlation_id_set(request.correlation_id)  # on the request's span
        response = self.get_response(request)
        response[self.header] = request.correlation_id
        return response


class BodyLimitMiddleware:
    """Refuses an API request whose body is over API_MAX_BODY_BYTES with 413, before
    anything reads it (a parser, the Idempotency-Key fingerprint). The length is the
    declared Content-Length: Django reads no body that does not declare one."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith("/api/"):
            declared = request.META.get("CONTENT_LENGTH") or "0"
            limit = settings.API_MAX_BODY_BYTES
            if not declared.isdecimal():
                return problem_response(
                    status=400, code="bad_content_length", detail="Content-Length is not a number."
                )
            if int(declared) > limit:
                return problem_response(
                    status=413,
                    code="request_too_large",
                    detail=f"The body is {int(declared):,} bytes; at most {limit:,} are accepted.",
                )
        return self.get_response(request)


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware, with the policy built once instead of on every response
    (building it cost about a tenth of a cached order read, make bench-profile). A response
    that a view gave a policy of its own, or a request that used a nonce, still goes
    through django-csp's own path."""

    _PER_VIEW = (
        "_csp_config",
        "_csp_update",
        "_csp_replace",
        "_csp_config_ro",
        "_csp_update_ro",
        "_csp_replace_ro",
    )

    def __init__(self, get_response):
        super().__init__(get_response)
        self._policy = build_policy()
        self._policy_report_only = build_policy(report_only=True)

    def process_response(self, request, response):
        if getattr(request, "_csp_nonce", None) or any(
            getattr(response, name, None) for name in self._PER_VIEW
        ):
            return super().process_response(request, response)
        if settings.DEBUG and response.status_code in (404, 500):
            return response
        for header, policy, exempt in (
            (HEADER, self._policy, "_csp_exempt"),
            (HEADER_REPORT_ONLY, self._policy_report_only, "_csp_exempt_ro"),
        ):
            if policy and header not in response and not getattr(response, exempt, False):
                response[header] = policy
        return response
