from datetime import UTC, datetime


def api_datetime(value: datetime) -> str:
    """A time as DRF's DateTimeField writes it: ISO-8601, UTC as `Z`. A naive time (plain
    SQL on SQLite, which stores UTC without an offset) is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
