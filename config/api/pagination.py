from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination


class StrictCursorPagination(CursorPagination):
    """Cursor pagination whose `page_size` must be a whole number from 1 (400 otherwise,
    where DRF would quietly fall back to the default); above `max_page_size` it is capped."""

    page_size_query_param = "page_size"

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isdecimal() or int(raw) < 1:
            raise ValidationError(
                {self.page_size_query_param: [f"Must be a whole number from 1, not {raw!r}."]}
            )
        return min(int(raw), self.max_page_size)


class IdCursorPagination(StrictCursorPagination):
    ordering = "-id"
    page_size = 50
    max_page_size = 500


class OldestFirstPagination(StrictCursorPagination):
    ordering = "id"
    page_size = 100
    max_page_size = 1000


class TimelinePagination(OldestFirstPagination):
    ordering = ("version", "id")
