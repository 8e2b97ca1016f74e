from dataclasses import replace

from history.audit import Audit


def coded(audit: Audit, reason_code: str = "correction") -> Audit:
    """The audit with a reason code, for the changes that need one (stock adjust, count)."""
    return replace(audit, reason_code=reason_code)
