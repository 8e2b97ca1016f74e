from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


class StrictIntegerField(serializers.IntegerField):
    """An integer that must arrive as a JSON integer: "12", 12.0 and true are refused."""

    default_error_messages = {"invalid": "Must be a JSON integer, not {kind}."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid", kind=type(data).__name__ if data is not None else "null")
        return super().to_internal_value(data)


class NonZeroIntegerField(StrictIntegerField):
    """An integer the service refuses when zero (a delta that moves nothing). The rule and
    its message stay in the service; this field only says so in the schema."""


class NonZeroIntegerFieldSchema(OpenApiSerializerFieldExtension):
    target_class = NonZeroIntegerField

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        return {**schema, "not": {"enum": [0]}}


@extend_schema_field({"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1})
class FractionField(serializers.FloatField):
    """A number greater than 0 and at most 1."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not 0 < value <= 1:
            raise serializers.ValidationError("Must be greater than 0 and at most 1.")
        return value


class BoundedListField(serializers.ListField):
    """A list whose length is checked before any item is validated, so an oversized list
    costs no per-item work. A list that may not be empty says so in the schema too."""

    def __init__(self, **kwargs):
        if kwargs.get("allow_empty") is False:
            kwargs.setdefault("min_length", 1)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, list) and self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)
