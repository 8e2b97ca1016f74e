from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import DefaultContentNegotiation


class StrictContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, except that `?format=` given empty is a 400 like any other empty
    parameter (DRF would ignore it); an unknown format stays DRF's 404."""

    def select_renderer(self, request, renderers, format_suffix=None):
        name = self.settings.URL_FORMAT_OVERRIDE
        if name and name in request.query_params and not request.query_params[name].strip():
            raise ValidationError({name: ["Must not be empty."]})
        return super().select_renderer(request, renderers, format_suffix)
