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


SYSTEM = Audit(actor="system", source=Source.SYSTEM)
