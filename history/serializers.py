"""API fields shared by every write endpoint that records a change."""

from rest_framework import serializers

from history.audit import reason_codes


class ReasonCodeField(serializers.ChoiceField):
    """An optional `reason_code` from the vocabulary (history.audit.reason_codes). The
    choices are read again at each validation, so they follow the settings; the schema
    shows them as an enum. Whether a code is required is the services' rule."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault(
            "help_text",
            "Why, as a code from the vocabulary. Required through some doors and for stock "
            "adjustments and counts; recorded as `unspecified` when not given.",
        )
        super().__init__(choices=reason_codes(), **kwargs)

    def to_internal_value(self, data):
        self.choices = reason_codes()
        return super().to_internal_value(data)
