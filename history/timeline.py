"""What the admin's timelines of an order and of a stock level show about their ledger
beside the rows, the same on both: the chain's verified/broken badge, the link to its proof,
and the reason-code filter."""

from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib import messages
from django.http import HttpRequest

from history.forms import TimelineReasonCodeForm


@dataclass(frozen=True, slots=True)
class ChainPanel:
    problems: list[str]  # empty: the chain verifies
    proof_url: str
    filter_form: TimelineReasonCodeForm
    reason_code: str  # "" for every row
    shown: int
    total: int

    @property
    def verified(self) -> bool:
        return not self.problems


def chain_panel(
    request: HttpRequest, *, rows: Sequence, problems: list[str], proof_url: str
) -> tuple[ChainPanel, list]:
    """The panel, and the rows the reason-code filter (GET `reason_code`) keeps. An unknown
    code filters nothing and says so in a message."""
    form = TimelineReasonCodeForm(request.GET)
    code = ""
    if form.is_valid():
        code = form.cleaned_data["reason_code"]
    else:
        messages.warning(
            request,
            f"Unknown reason code {request.GET.get('reason_code', '')!r}: showing every row.",
        )
        form = TimelineReasonCodeForm()
    shown = [row for row in rows if row.reason_code == code] if code else list(rows)
    panel = ChainPanel(problems, proof_url, form, code, len(shown), len(rows))
    return panel, shown
