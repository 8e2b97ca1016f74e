"""Idempotency-Key for POST and PATCH, after the IETF httpapi Idempotency-Key draft.

The stored response is written in the same transaction as the write it guards, so a key
is either unused or bound to a committed outcome: a retry after a crash re-executes, a
retry after success replays. Keys are per user. While the first request with a key is
still running, a second one gets 409 instead of waiting (a PostgreSQL advisory lock).

Old records are purged by `history.services.idempotency_records_purge` (a beat task)."""

import hashlib
from dataclasses import dataclass

import orjson
from django.db import connection, transaction
from django.http import HttpResponse
from rest_framework.exceptions import ValidationError

from config.api.common import IDEMPOTENCY_KEY_FORMAT
from config.errors import DomainError, ErrorCode
from history.models import IdempotencyRecord

HEADER = "Idempotency-Key"
_REPLAYED_HEADERS = ("Content-Type", "ETag", "Location")


class KeyInFlight(DomainError):
    code = ErrorCode.IDEMPOTENCY_IN_FLIGHT
    status = 409
    title = "Request in flight"


class KeyReused(DomainError):
    code = ErrorCode.IDEMPOTENCY_KEY_REUSED
    status = 422
    title = "Idempotency-Key reused"


class _Replay(Exception):
    def __init__(self, record: IdempotencyRecord):
        self.record = record


@dataclass
class _KeyState:
    key: str
    fingerprint: str = ""
    claimed: bool = False


def _fingerprint(request) -> str:
    raw = request._request.body
    try:
        body = orjson.dumps(orjson.loads(raw), option=orjson.OPT_SORT_KEYS) if raw else b""
    except orjson.JSONDecodeError:
        body = raw
    digest = hashlib.sha256()
    for part in (request.method, request.get_full_path(), request.headers.get("If-Match", "")):
        digest.update(part.encode() + b"\0")
    digest.update(body)
    return digest.hexdigest()


def _lock_id(user_id: int, key: str) -> int:
    digest = hashlib.blake2b(f"{user_id}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class IdempotentMixin:
    # Mix into an APIView before APIView. Requests with the header are run inside one
    # transaction together with the storing of their response. (A comment, not a docstring:
    # drf-spectacular would publish a docstring as every operation's description.)

    idempotent_methods = ("POST", "PATCH")

    def dispatch(self, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        # A method the view does not serve is a 405, whatever its key says.
        serves = hasattr(self, request.method.lower())
        if key is None or request.method not in self.idempotent_methods or not serves:
            self._idempotency = None
            return super().dispatch(request, *args, **kwargs)
        self._idempotency = _KeyState(key=key)
        with transaction.atomic():
            response = super().dispatch(request, *args, **kwargs)
            state = self._idempotency
            if response.status_code >= 500:
                # No stored response, so no committed write either: a retry re-executes.
                transaction.set_rollback(True)
            elif state.claimed:
                response.render()
                IdempotencyRecord.objects.create(
                    user_id=self.request.user.pk,
                    key=state.key,
                    fingerprint=state.fingerprint,
                    status_code=response.status_code,
                    response_body=response.content,
                    response_headers={h: response[h] for h in _REPLAYED_HEADERS if h in response},
                )
        return response

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        state = self._idempotency
        if state is None:
            return
        if not IDEMPOTENCY_KEY_FORMAT.match(state.key):
            raise ValidationError({HEADER: ["Must be 1 to 255 printable ASCII characters."]})
        state.fingerprint = _fingerprint(request)
        user_id = request.user.pk
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_lock_id(user_id, state.key)])
            if not cursor.fetchone()[0]:
                raise KeyInFlight(
                    "A request with this Idempotency-Key is still being processed. "
                    "Retry after it has finished."
                )
        record = IdempotencyRecord.objects.filter(user_id=user_id, key=state.key).first()
        if record is None:
            state.claimed = True
            return
        if record.fingerprint != state.fingerprint:
            raise KeyReused(
                "This Idempotency-Key was already used with a different request. "
                "Use a new key for a new request."
            )
        raise _Replay(record)

    def handle_exception(self, exc):
        if isinstance(exc, _Replay):
            record = exc.record
            response = HttpResponse(bytes(record.response_body), status=record.status_code)
            for name, value in record.response_headers.items():
                response[name] = value
            response["Idempotent-Replayed"] = "true"
            return response
        return super().handle_exception(exc)
