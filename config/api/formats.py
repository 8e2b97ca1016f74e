from datetime import datetime


def api_datetime(value: datetime) -> str:
    """A time as DRF's DateTimeField writes it: ISO-8601, UTC as `Z`."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
