"""Form fields shared by the admin pages that record a change."""

from django import forms
from django.core.exceptions import ValidationError

from config.errors import DomainValidationError
from history.audit import UNSPECIFIED, Audit, reason_code_check, reason_code_label, reason_codes
from history.models import Source


def reason_code_choices() -> list[tuple[str, str]]:
    return [("", "---------"), *((code, reason_code_label(code)) for code in reason_codes())]


class ReasonCodeChoiceField(forms.ChoiceField):
    """A select over the reason-code vocabulary, read from the settings when rendered."""

    def __init__(self, **kwargs):
        kwargs.setdefault("label", "Reason code")
        kwargs.setdefault(
            "help_text", "Why, as a code from the vocabulary; recorded in the ledger."
        )
        super().__init__(choices=reason_code_choices, **kwargs)


def admin_reason_code_validate(reason_code: str, *, movement: str | None = None) -> None:
    """The services' reason-code rule (history.audit.reason_code_check) for the admin door,
    as a form error, so a refused code comes back on the form with its input kept."""
    try:
        reason_code_check(
            Audit(actor="", source=Source.ADMIN, reason_code=reason_code), movement=movement
        )
    except DomainValidationError as exc:
        raise ValidationError(exc.detail, code=str(exc.code)) from exc


def _timeline_reason_code_choices() -> list[tuple[str, str]]:
    codes = ((code, reason_code_label(code)) for code in reason_codes())
    return [("", "All reason codes"), *codes, (UNSPECIFIED, reason_code_label(UNSPECIFIED))]


class TimelineReasonCodeForm(forms.Form):
    """The reason-code filter of the admin's timelines: one code of the vocabulary, or
    `unspecified` (the rows given none); empty shows every row."""

    reason_code = forms.ChoiceField(
        required=False, label="Reason code", choices=_timeline_reason_code_choices
    )
