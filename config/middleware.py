import re
import uuid

from django.conf import settings

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
