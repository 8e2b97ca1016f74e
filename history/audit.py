import re
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from config.errors import DomainValidationError, ErrorCode
from history.models import Source

# What the ledger records for a change given no code (never accepted from a client).
UNSPECIFIED = "unspecified"
_CODE_FORMAT = re.compile(r"[a-z][a-z0-9_]{0,31}")


@dataclass(frozen=True, slots=True)
class Audit:
    """Who made a change, through which door, and why. Every ledger row carries one."""

    actor: str
    source: Source
    reason: str = ""
    correlation_id: str = ""
    idempotency_key: str = ""
    reason_code: str = ""

    @property
    def recorded_reason_code(self) -> str:
        """The code the ledger records: the one given, else `system` for the system's own
        changes and `unspecified` for a person's or an integrator's."""
        if self.reason_code:
            return self.reason_code
        return "system" if self.source == Source.SYSTEM else UNSPECIFIED


SYSTEM = Audit(actor="system", source=Source.SYSTEM)


def reason_codes() -> tuple[str, ...]:
    """The vocabulary of reason codes: REASON_CODES, then REASON_CODES_EXTRA."""
    codes = tuple(dict.fromkeys([*settings.REASON_CODES, *settings.REASON_CODES_EXTRA]))
    bad = [code for code in codes if code == UNSPECIFIED or not _CODE_FORMAT.fullmatch(code)]
    if bad:
        raise ImproperlyConfigured(
            f"Invalid reason codes {bad}: a code is 1-32 lowercase letters, digits or '_', "
            f"starting with a letter, and not {UNSPECIFIED!r}."
        )
    return codes


def reason_code_label(code: str) -> str:
    return code.replace("_", " ").capitalize()


def reason_code_required(source: Source, *, movement: str | None = None) -> bool:
    """Whether a change through this door (or this stock movement, whatever the door) must
    carry a reason code: REASON_CODE_REQUIRED_DOORS and REASON_CODE_REQUIRED_MOVEMENTS."""
    return str(source) in settings.REASON_CODE_REQUIRED_DOORS or (
        movement is not None and str(movement) in settings.REASON_CODE_REQUIRED_MOVEMENTS
    )


def reason_code_check(audit: Audit, *, movement: str | None = None) -> None:
    """The reason-code rule, checked by every service before it writes: a given code must
    be in the vocabulary, and a door or stock movement that requires one must get one."""
    codes = reason_codes()
    if audit.reason_code:
        if audit.reason_code not in codes:
            raise DomainValidationError(
                f"Unknown reason code {audit.reason_code!r}; use one of: {', '.join(codes)}.",
                field="reason_code",
                code=ErrorCode.UNKNOWN_REASON_CODE,
            )
        return
    if reason_code_required(audit.source, movement=movement):
        what = f"A stock {movement}" if movement else f"A change through the {audit.source}"
        raise DomainValidationError(
            f"{what} needs a reason code, one of: {', '.join(codes)}.",
            field="reason_code",
            code=ErrorCode.REASON_CODE_REQUIRED,
        )


def admin_audit(request, *, reason: str = "", reason_code: str = "") -> Audit:
    """The audit of a change made in the Django admin by the logged-in user."""
    return Audit(
        actor=request.user.get_username(),
        source=Source.ADMIN,
        reason=reason,
        reason_code=reason_code,
        correlation_id=getattr(request, "correlation_id", ""),
    )


def api_audit(request, *, reason: str = "", reason_code: str = "") -> Audit:
    """The audit of a change made through the API (a DRF request)."""
    return Audit(
        actor=request.user.get_username(),
        source=Source.API,
        reason=reason,
        reason_code=reason_code,
        correlation_id=getattr(request._request, "correlation_id", ""),
        idempotency_key=request.headers.get("Idempotency-Key", ""),
    )
