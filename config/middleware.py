import re
import uuid

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
