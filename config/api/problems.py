"""RFC 9457 problem details for every API error, built on drf-standardized-errors.

Domain errors (config.errors) and DRF's own exceptions come out as
`application/problem+json` with `type`, `title`, `status`, `detail`, a stable `code`, and
`errors` (one entry per field error, with a JSON pointer) for validation errors."""

from http import HTTPStatus

import orjson
from django.http import HttpResponse
from drf_orjson_renderer.renderers import ORJSONRenderer
from drf_standardized_errors.formatter import ExceptionFormatter, flatten_errors
from drf_standardized_errors.handler import ExceptionHandler
from rest_framework import exceptions

from config.errors import DomainError, DomainValidationError

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:ordertrack:problem:"


def problem_response(*, status: int, code: str, detail: str) -> HttpResponse:
    """A problem-details response for the few answers given outside DRF's views (a body
    over the size limit, an unknown API path)."""
    body = {
        "type": PROBLEM_TYPE_PREFIX + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    return HttpResponse(orjson.dumps(body), status=status, content_type=PROBLEM_CONTENT_TYPE)


class ProblemException(exceptions.APIException):
    def __init__(
        self, *, status: int, title: str, detail: str, code: str, extra=None, headers=None
    ):
        super().__init__(detail=detail, code=code)
        self.status_code = status
        self.title = title
        self.extra = extra or {}
        self.headers = headers or {}


def problem_from_domain(exc: DomainError) -> exceptions.APIException:
    if isinstance(exc, DomainValidationError):
        field = exc.field or "non_field_errors"
        return exceptions.ValidationError({field: [exceptions.ErrorDetail(exc.detail, exc.code)]})
    headers = {}
    if "current_version" in exc.extra:
        headers["ETag"] = f'"{exc.extra["current_version"]}"'
    return ProblemException(
        status=exc.status,
        title=exc.title,
        detail=exc.detail,
        code=str(exc.code),
        extra=exc.extra,
        headers=headers,
    )


class ProblemExceptionHandler(ExceptionHandler):
    def convert_known_exceptions(self, exc: Exception) -> Exception:
        if isinstance(exc, DomainError):
            return problem_from_domain(exc)
        return super().convert_known_exceptions(exc)

    def get_response(self, exc, data):
        request = self.context.get("request")
        if request is not None:
            # A CSV download that fails still explains itself in JSON.
            request.accepted_renderer = ORJSONRenderer()
            request.accepted_media_type = PROBLEM_CONTENT_TYPE
        response = super().get_response(exc, data)
        response.content_type = PROBLEM_CONTENT_TYPE
        for name, value in getattr(exc, "headers", {}).items():
            response[name] = value
        return response


def _pointer(attr: str | None) -> str:
    if not attr or attr == "non_field_errors":
        return "#/"
    return "#/" + attr.replace(".", "/")


class ProblemFormatter(ExceptionFormatter):
    def run(self) -> dict:
        exc = self.exc
        status = exc.status_code
        if isinstance(exc, exceptions.ValidationError):
            errors = [
                {
                    "code": error.code,
                    "detail": error.detail,
                    "attr": error.attr,
                    "pointer": _pointer(error.attr),
                }
                for error in flatten_errors(exc.detail)
            ]
            first = errors[0] if errors else None
            detail = (
                f"{first['attr']}: {first['detail']}"
                if first and first["attr"] and first["attr"] != "non_field_errors"
                else (first["detail"] if first else "The request is invalid.")
            )
            if len(errors) > 1:
                detail += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
            return {
                "type": PROBLEM_TYPE_PREFIX + "validation_error",
                "title": "Invalid input",
                "status": status,
                "detail": detail,
                "code": "validation_error",
                "errors": errors,
            }
        code = getattr(exc.detail, "code", None) or "error"
        title = getattr(exc, "title", None) or HTTPStatus(status).phrase
        problem = {
            "type": PROBLEM_TYPE_PREFIX + code,
            "title": title,
            "status": status,
            "detail": str(exc.detail),
            "code": code,
        }
        problem.update(getattr(exc, "extra", {}))
        return problem
