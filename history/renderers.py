from rest_framework.renderers import BaseRenderer


class CSVRenderer(BaseRenderer):
    """Selects `?format=csv`; the views stream the body themselves."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes) else b""
