from dataclasses import dataclass

from history.models import Source


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
        return "system" if self.source == Source.SYSTEM else "unspecified"


SYSTEM = Audit(actor="system", source=Source.SYSTEM)


def admin_audit(request, *, reason: str = "") -> Audit:
    """The audit of a change made in the Django admin by the logged-in user."""
    return Audit(
        actor=request.user.get_username(),
        source=Source.ADMIN,
        reason=reason,
        correlation_id=getattr(request, "correlation_id", ""),
    )


def api_audit(request, *, reason: str = "") -> Audit:
    """The audit of a change made through the API (a DRF request)."""
    return Audit(
        actor=request.user.get_username(),
        source=Source.API,
        reason=reason,
        correlation_id=getattr(request._request, "correlation_id", ""),
        idempotency_key=request.headers.get("Idempotency-Key", ""),
    )
