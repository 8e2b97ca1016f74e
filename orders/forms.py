"""Forms for the order admin. They only validate and collect input; `orders.admin` hands
the result to `orders.services`, which does every write."""

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.utils.html import format_html

from history.audit import reason_code_required
from history.forms import ReasonCodeChoiceField, admin_reason_code_validate
from history.models import Source
from inventory.models import Product
from orders.models import MAX_LINE_QUANTITY, Order, OrderLine


class OrderAdminForm(forms.ModelForm):
    reason = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Why the quantities change. Required when you change a quantity; "
        "it is recorded in the order's ledger.",
    )
    reason_code = ReasonCodeChoiceField(required=False)
    # The version the page was rendered with: the save is refused if the order moved on.
    expected_version = forms.IntegerField(required=False, widget=forms.HiddenInput)

    class Meta:
        model = Order
        fields = ["customer", "reference"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["expected_version"].initial = self.instance.version
        else:
            self.fields["reason"].help_text = "Optional; recorded in the order's ledger."
        if "reason_code" in self.fields and reason_code_required(Source.ADMIN):
            self.fields[
                "reason_code"
            ].help_text = (
                "Why, as a code. Required with every change; recorded in the order's ledger."
            )

    def clean(self) -> dict:
        cleaned_data = super().clean()
        if self.instance.pk is None:
            return cleaned_data
        expected = cleaned_data.get("expected_version")
        if expected != self.instance.version:
            raise ValidationError(
                stale_order_message(current=self.instance.version), code="stale_version"
            )
        return cleaned_data


def stale_order_message(*, current: int) -> str:
    return (
        "Nothing was saved: someone else changed this order while you were editing it. "
        f"It is now at version {current}. Reload the page to see their change, then "
        "reapply yours."
    )


class _ProductLabel(forms.Widget):
    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    def render(self, name, value, attrs=None, renderer=None) -> str:
        return format_html("<p>{}</p>", self.label)


class _SavedLineProductField(forms.Field):
    """The product of a saved line: shown, never changeable, and cleaned without a query
    (a disabled ModelChoiceField would fetch the product again for every row)."""

    def __init__(self, product: Product) -> None:
        super().__init__(required=False, disabled=True, widget=_ProductLabel(str(product)))
        self.product = product

    def clean(self, value) -> Product:
        return self.product


class OrderLineForm(forms.ModelForm):
    class Meta:
        model = OrderLine
        fields = ["product", "quantity"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None and "product" in self.fields:
            self.fields["product"] = _SavedLineProductField(self.instance.product)
        if "quantity" in self.fields:
            quantity = self.fields["quantity"]
            quantity.validators.append(MaxValueValidator(MAX_LINE_QUANTITY))
            quantity.widget.attrs["max"] = MAX_LINE_QUANTITY


class OrderLineFormSet(forms.BaseInlineFormSet):
    """The order's lines. Lines are never deleted (a quantity of 0 drops one), and any
    quantity change needs a reason (and a reason code where the admin requires one), which
    live on the order form: the formset sees the whole POST as `self.data`."""

    def clean(self) -> None:
        super().clean()
        changed = any(form.has_changed() for form in self.forms)
        if self.instance.pk is None:
            if not changed:
                raise ValidationError("An order needs at least one line.", code="no_lines")
            admin_reason_code_validate(self.data.get("reason_code", ""))
            return
        if changed:
            admin_reason_code_validate(self.data.get("reason_code", ""))
        if changed and not self.data.get("reason", "").strip():
            raise ValidationError(
                "Give a reason for the quantity change (the Reason field above); "
                "it is recorded in the order's ledger.",
                code="reason_required",
            )

    def filled_forms(self) -> list[forms.Form]:
        """Every row with a product and a quantity: all saved lines and any new line."""
        return [
            form
            for form in self.forms
            if "product" in form.cleaned_data and "quantity" in form.cleaned_data
        ]

    def quantities(self) -> dict[str, int]:
        """{sku: quantity} of every filled-in row, as the order services take it."""
        return {
            form.cleaned_data["product"].sku: form.cleaned_data["quantity"]
            for form in self.filled_forms()
        }


class OrderCloseForm(forms.Form):
    """The order page's Cancel and Fulfil buttons: which one was pressed (`action`), why,
    and the version the page was rendered at (the service refuses the change if the order has moved
    on since)."""

    CANCEL, FULFIL = "cancel", "fulfil"
    HTML_ID = "order-close"

    action = forms.ChoiceField(choices=[(CANCEL, "Cancel order"), (FULFIL, "Fulfil order")])
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Why the order is cancelled or fulfilled; recorded in the order's ledger.",
    )
    reason_code = ReasonCodeChoiceField(required=False)
    expected_version = forms.IntegerField(widget=forms.HiddenInput)

    def __init__(self, *args, order: Order | None = None, **kwargs) -> None:
        kwargs.setdefault("prefix", "close")  # apart from the change form's own reason
        super().__init__(*args, **kwargs)
        if order is not None:
            self.fields["expected_version"].initial = order.version
        # Rendered inside the change form's <form>, but submitted by its own (HTML `form`).
        for field in self.fields.values():
            field.widget.attrs["form"] = self.HTML_ID
        if reason_code_required(Source.ADMIN):
            self.fields["reason_code"].help_text = "Required; recorded in the order's ledger."
