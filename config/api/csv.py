import csv
from collections.abc import Sequence

from django.http import StreamingHttpResponse

# A spreadsheet reads a cell that starts with one of these as a formula (OWASP, CSV
# injection): `=HYPERLINK(...)` in a reason would reach the auditor's spreadsheet live.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class _EchoBuffer:
    def write(self, value):
        return value


def csv_cell(value):
    """One CSV cell: times as ISO-8601, and text that a spreadsheet would take for a
    formula prefixed with a single quote, as OWASP recommends. Only text is touched: a
    number such as the delta -5 stays a number."""
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_PREFIXES) else value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def csv_stream_response(queryset, columns: Sequence[str], filename: str) -> StreamingHttpResponse:
    """Stream the rows with a server-side cursor, so an export of millions of rows keeps
    memory flat. Times are written as ISO-8601; text cells are neutralised (`csv_cell`)."""
    writer = csv.writer(_EchoBuffer())

    def rows():
        yield writer.writerow(columns)
        for row in queryset.values_list(*columns).iterator(chunk_size=2000):
            yield writer.writerow([csv_cell(value) for value in row])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
