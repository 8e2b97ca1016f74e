from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from config.errors import DomainError


class DomainErrorsShown:
    """Mix into a ModelAdmin whose saves call the services: a DomainError raised while
    saving rolls the admin's transaction back and comes back to the form as a message,
    instead of a 500."""

    def domain_error_message(self, error: DomainError) -> str:
        return f"Nothing was saved: {error.detail}"

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as error:
            self.message_user(request, self.domain_error_message(error), messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())
