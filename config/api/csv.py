import csv
from collections.abc import Callable, Sequence

from django.http import StreamingHttpResponse

# A spreadsheet reads a cell that starts with one of these as a formula (OWASP, CSV
# injection): `=HYPERLINK(...)` in a reason would reach the auditor's spreadsheet live.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
QUOTED_PREFIXES = (*FORMULA_PREFIXES, "'")


class _EchoBuffer:
    def write(self, value):
        return value


def csv_cell(value):
    """One CSV cell: times as ISO-8601, hashes in hex, and text that a spreadsheet would
    take for a formula prefixed with a single quote, as OWASP recommends. Text that starts
    with a quote gets one more, so a reader gets the exact text back by removing one
    leading quote from any text cell that has one (tools/verify_export.py does). Only text
    is touched: a number such as the delta -5 stays a number."""
    if isinstance(value, str):
        return "'" + value if value.startswith(QUOTED_PREFIXES) else value
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def csv_stream_response(
    queryset,
    columns: Sequence[str],
    filename: str,
    *,
    on_close: Callable[..., object] | None = None,
) -> StreamingHttpResponse:
    """Stream the rows with a server-side cursor, so an export of millions of rows keeps
    memory flat. Times are written as ISO-8601; text cells are neutralised (`csv_cell`).
    `on_close(rows=n)` is called once the stream ends, is closed early (the client went
    away) or fails, with the number of data rows handed to the server: a row counts as
    sent as soon as it may have left, even if the client went away while it was written."""
    writer = csv.writer(_EchoBuffer())

    def rows():
        sent = 0
        try:
            yield writer.writerow(columns)
            for row in queryset.values_list(*columns).iterator(chunk_size=2000):
                line = writer.writerow([csv_cell(value) for value in row])
                sent += 1
                yield line
        finally:
            if on_close is not None:
                on_close(rows=sent)

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
