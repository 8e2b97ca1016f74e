from rest_framework import serializers


class StrictIntegerField(serializers.IntegerField):
    """An integer that must arrive as a JSON integer: "12", 12.0 and true are refused."""

    default_error_messages = {"invalid": "Must be a JSON integer, not {kind}."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid", kind=type(data).__name__ if data is not None else "null")
        return super().to_internal_value(data)


class BoundedListField(serializers.ListField):
    """A list whose length is checked before any item is validated, so an oversized list
    costs no per-item work."""

    def to_internal_value(self, data):
        if isinstance(data, list) and self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)
