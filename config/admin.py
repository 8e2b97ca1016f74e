"""Every user's API tokens, for staff (see and revoke) and auditors (see). Nobody creates,
edits or deletes a token here: a token's secret is shown once, by whoever issues it
(`manage.py issue_token`, POST /api/v1/tokens/), and only its digest is stored."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from config.models import ApiToken
from config.tokens import api_tokens_revoke


class RevokedFilter(admin.SimpleListFilter):
    title = "revoked"
    parameter_name = "revoked"

    def lookups(self, request, model_admin) -> list[tuple[str, str]]:
        return [("yes", "Revoked"), ("no", "Not revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiToken]):
        if self.value() in ("yes", "no"):
            return queryset.filter(revoked_at__isnull=self.value() == "no")
        return queryset


class ExpiredFilter(admin.SimpleListFilter):
    title = "expired"
    parameter_name = "expired"

    def lookups(self, request, model_admin) -> list[tuple[str, str]]:
        return [("yes", "Expired"), ("no", "Not expired")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiToken]):
        now = timezone.now()
        if self.value() == "yes":
            return queryset.filter(expires_at__lte=now)
        if self.value() == "no":
            return queryset.filter(expires_at__gt=now)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "user",
        "public_prefix",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "state",
    )
    list_filter = (RevokedFilter, ExpiredFilter)
    list_select_related = ("user",)
    search_fields = ("user__username", "name", "prefix")
    search_help_text = "A username, a token name or a token prefix."
    ordering = ("-id",)
    actions = ("revoke",)
    fields = (
        "user",
        "name",
        "public_prefix",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "state",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("config.revoke_apitoken")

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        selected = list(queryset.order_by().values_list("pk", flat=True))
        revoked = api_tokens_revoke(token_ids=selected)
        self.message_user(
            request,
            f"Revoked {revoked} token(s); they are refused from the next request on.",
            messages.SUCCESS if revoked else messages.WARNING,
        )
        if skipped := len(selected) - revoked:
            self.message_user(
                request, f"{skipped} selected token(s) were already revoked.", messages.INFO
            )

    @admin.display(description="token", ordering="prefix")
    def public_prefix(self, token: ApiToken) -> str:
        return f"ot_{token.prefix}_…"

    @admin.display(description="state")
    def state(self, token: ApiToken) -> str:
        if token.revoked_at is not None:
            return "revoked"
        return "expired" if token.is_expired() else "active"
