from datetime import UTC, datetime


def api_datetime(value: datetime) -> str:
    """A time as DRF's DateTimeField writes it: ISO-8601, UTC as `Z`."""
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
