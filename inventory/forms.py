"""Forms for the inventory admin's action pages. They only validate and collect input;
`inventory.admin` hands the result to `inventory.services`, which does every write."""

from django import forms
from django.core.exceptions import ValidationError

from history.audit import reason_code_required
from history.forms import ReasonCodeChoiceField
from history.models import Source, StockMovementType
from inventory.models import MAX_STOCK_QUANTITY, Location


class ReasonForm(forms.Form):
    """The reason (and reason code) every stock command carries into the ledger (and the
    admin log). The code is required where the admin door or the form's stock movement
    requires one (history.audit.reason_code_required)."""

    movement: str | None = None

    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Why. Recorded with every change this makes.",
    )
    reason_code = ReasonCodeChoiceField(required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reason_code"].required = reason_code_required(
            Source.ADMIN, movement=self.movement
        )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError("Give a reason; it is recorded with the change.", "required")
        return reason


def _quantity(label: str, *, minimum: int, help_text: str) -> forms.IntegerField:
    return forms.IntegerField(
        label=label, min_value=minimum, max_value=MAX_STOCK_QUANTITY, help_text=help_text
    )


class ReceiveForm(ReasonForm):
    quantity = _quantity(
        "Quantity", minimum=1, help_text="Units received at each selected stock level."
    )
    field_order = ["quantity", "reason", "reason_code"]
    movement = StockMovementType.RECEIVE


class AdjustForm(ReasonForm):
    delta = forms.IntegerField(
        label="Change (±)",
        min_value=-MAX_STOCK_QUANTITY,
        max_value=MAX_STOCK_QUANTITY,
        help_text="Added to on hand at each selected stock level; negative to remove. "
        "Reserved units cannot be removed.",
    )
    field_order = ["delta", "reason", "reason_code"]
    movement = StockMovementType.ADJUST

    def clean_delta(self) -> int:
        delta = self.cleaned_data["delta"]
        if delta == 0:
            raise ValidationError("A change of 0 changes nothing.", "zero")
        return delta


class CountForm(ReasonForm):
    counted = _quantity(
        "Counted",
        minimum=0,
        help_text="The physical count: on hand at each selected stock level becomes this.",
    )
    field_order = ["counted", "reason", "reason_code"]
    movement = StockMovementType.COUNT


class TransferForm(ReasonForm):
    to_location = forms.ModelChoiceField(
        queryset=Location.objects.filter(active=True).order_by("priority", "code"),
        label="To location",
        help_text="Where the stock goes. It shows as in transit there until received.",
    )
    quantity = _quantity(
        "Quantity", minimum=1, help_text="Units shipped from each selected stock level."
    )
    field_order = ["to_location", "quantity", "reason", "reason_code"]
    movement = StockMovementType.TRANSFER_OUT


class ThresholdsForm(ReasonForm):
    reorder_point = _quantity(
        "Reorder point",
        minimum=0,
        help_text="Stock is low (stock.low is raised) when available falls to this or below.",
    )
    safety_stock = _quantity(
        "Safety stock", minimum=0, help_text="Units to keep in hand against surprises."
    )
    field_order = ["reorder_point", "safety_stock", "reason", "reason_code"]
