"""The inventory admin. Stock quantities are read-only here: every change is an admin
action that calls `inventory.services` (with the user, the admin as source, and a reason),
so it writes the same ledger rows and outbox events as the API. Auditors see everything
and are offered no actions."""

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from config.admin_errors import DomainErrorsShown
from config.errors import DomainError
from history.admin import ReadOnlyAdmin
from history.admin_cells import BadgesMedia, badge, short_time
from history.audit import Audit, admin_audit
from history.models import SkuStockTotals, StockLedgerEntry
from history.selectors import ledger_rows_audited
from history.timeline import chain_panel
from inventory import services
from inventory.forms import (
    AdjustForm,
    CountForm,
    ReasonForm,
    ReceiveForm,
    ThresholdsForm,
    TransferForm,
)
from inventory.models import (
    Location,
    Product,
    Reservation,
    ReservationAllocation,
    ReservationStatus,
    StockLevel,
    Transfer,
    TransferStatus,
)
from inventory.selectors import stock_chain_problems
from inventory.timeline import stock_chart, timeline_rows

RESERVATION_TONES = {
    ReservationStatus.ACTIVE: "info",
    ReservationStatus.CONFIRMED: "good",
    ReservationStatus.CANCELLED: "quiet",
    ReservationStatus.EXPIRED: "warn",
}
TRANSFER_TONES = {
    TransferStatus.IN_TRANSIT: "info",
    TransferStatus.RECEIVED: "good",
    TransferStatus.CANCELLED: "quiet",
}
TOTALS_PAGE_SIZE = 100
# Far beyond any real page, and small enough that its offset fits PostgreSQL's bigint.
TOTALS_MAX_PAGE = 1_000_000


@admin.register(Product)
class ProductAdmin(DomainErrorsShown, admin.ModelAdmin):
    list_display = ("sku", "name", "track_inventory", "allow_backorder", "version", "created_at")
    list_filter = ("track_inventory", "allow_backorder")
    search_fields = ("sku", "name")

    def get_readonly_fields(self, request: HttpRequest, obj: Product | None = None) -> tuple:
        # Ledger rows keep the sku they were written with; renaming it would orphan them.
        return ("sku", "version", "created_at") if obj else ("version", "created_at")

    def save_model(self, request: HttpRequest, obj: Product, form, change: bool) -> None:
        if change:
            product = services.product_update(
                sku=obj.sku,
                name=obj.name,
                track_inventory=obj.track_inventory,
                allow_backorder=obj.allow_backorder,
                audit=admin_audit(request, reason="Changed in the admin"),
            )
            obj.version = product.version
            return
        product = services.product_create(
            sku=obj.sku,
            name=obj.name,
            track_inventory=obj.track_inventory,
            allow_backorder=obj.allow_backorder,
        )
        _adopt(product, onto=obj)


@admin.register(Location)
class LocationAdmin(DomainErrorsShown, admin.ModelAdmin):
    list_display = ("code", "name", "type", "priority", "active")
    list_filter = ("type", "active")
    search_fields = ("code", "name")
    fields = ("code", "name", "type", "address", "priority", "active", "created_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Location | None = None) -> tuple:
        # Ledger rows and the services address a location by its code.
        return ("code", "created_at") if obj else ("created_at",)

    def has_delete_permission(self, request: HttpRequest, obj: Location | None = None) -> bool:
        return False  # the ledger refers to it; deactivate it instead

    def save_model(self, request: HttpRequest, obj: Location, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        location = services.location_create(
            code=obj.code,
            name=obj.name,
            type=obj.type,
            address=obj.address,
            active=obj.active,
            priority=obj.priority,
        )
        _adopt(location, onto=obj)


def _adopt(saved, *, onto) -> None:
    """The admin's log entry and redirect use its own instance, not the service's."""
    onto.pk = saved.pk
    onto.created_at = saved.created_at
    onto._state.adding = False
    onto._state.db = saved._state.db


class _ServiceActionsAdmin(admin.ModelAdmin):
    """Nothing is added, changed or deleted through a form: change permission only unlocks
    the actions, which call the services. Each action asks for its input (always a reason)
    on an intermediate page, then runs once per selected row in the row's own transaction:
    a refused row is reported and writes nothing, the others go ahead."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        # Without this, an action posted by a read-only user would just be ignored.
        posted_action = request.method == "POST" and "action" in request.POST
        if posted_action and not self.has_change_permission(request):
            raise PermissionDenied
        return super().changelist_view(request, extra_context)

    def describe(self, obj) -> str:
        return str(obj)

    def action_page(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        *,
        action: str,
        form_class: type[ReasonForm],
        intro: str,
        run: Callable[[Any, dict, Audit], str],
        done: Callable[[int], str],
    ) -> HttpResponse | None:
        """The intermediate page of an action (like Django's delete confirmation): shows
        the selected rows and the form; once the form is valid, `run` each row with the
        cleaned data and report. `run` returns a short note of what it did."""
        items = list(queryset.order_by("pk"))
        form = form_class(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            audit = admin_audit(
                request,
                reason=form.cleaned_data["reason"],
                reason_code=form.cleaned_data.get("reason_code", ""),
            )
            notes = []
            for item in items:
                try:
                    notes.append(run(item, form.cleaned_data, audit))
                except DomainError as exc:
                    self.message_user(
                        request,
                        f"{self.describe(item)}: nothing was written. {exc.detail}",
                        messages.ERROR,
                    )
            if notes:
                self.message_user(
                    request, f"{done(len(notes))}: {'; '.join(notes)}.", messages.SUCCESS
                )
            return None
        opts = self.opts
        context = {
            **self.admin_site.each_context(request),
            "title": getattr(self, action).short_description,
            "intro": intro,
            "opts": opts,
            "form": form,
            "action": action,
            "items": [(item, self.describe(item)) for item in items],
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media + form.media,
            "cancel_url": request.get_full_path(),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            [
                f"admin/{opts.app_label}/{opts.model_name}/action_form.html",
                f"admin/{opts.app_label}/action_form.html",
            ],
            context,
        )


def _reason_action(
    name: str,
    *,
    description: str,
    intro: str,
    run: Callable[[Any, Audit], object],
    done: Callable[[int], str],
):
    """An action of `_ServiceActionsAdmin` that asks only for a reason, then `run`s each
    selected row (a service call) and notes it as `#pk`."""

    @admin.action(description=description, permissions=["change"])
    def action(model_admin: _ServiceActionsAdmin, request: HttpRequest, queryset: QuerySet):
        def run_row(item, data: dict, audit: Audit) -> str:
            run(item, audit)
            return f"#{item.pk}"

        return model_admin.action_page(
            request,
            queryset,
            action=name,
            form_class=ReasonForm,
            intro=intro,
            run=run_row,
            done=done,
        )

    action.__name__ = action.__qualname__ = name
    return action


class LowStockFilter(admin.SimpleListFilter):
    title = "low stock"
    parameter_name = "low"

    def lookups(self, request, model_admin) -> list[tuple[str, str]]:
        return [("yes", "Available ≤ reorder point"), ("no", "Above reorder point")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[StockLevel]):
        if self.value() == "yes":
            return queryset.filter(available__lte=F("reorder_point"))
        if self.value() == "no":
            return queryset.filter(available__gt=F("reorder_point"))
        return queryset


def _place(level: StockLevel) -> str:
    return f"{level.product.sku}@{level.location.code}"


@admin.register(StockLevel)
class StockLevelAdmin(BadgesMedia, _ServiceActionsAdmin):
    # Fits 1366 px: in transit and the thresholds are on the detail page (and the thresholds
    # in the low badge's title).
    list_display = (
        "sku",
        "location",
        "on_hand",
        "reserved",
        "available",
        "backorder",
        "low_badge",
        "version",
        "timeline_link",
    )
    list_display_links = ("sku",)
    list_filter = (LowStockFilter, "location", ("product", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("product", "location")
    search_fields = ("product__sku",)
    search_help_text = "Search by sku."
    fields = (
        "product",
        "location",
        "on_hand",
        "reserved",
        "available",
        "in_transit",
        "backorder",
        "reorder_point",
        "safety_stock",
        "is_low",
        "version",
        "updated_at",
    )
    readonly_fields = fields
    actions = (
        "receive_stock",
        "adjust_stock",
        "count_stock",
        "transfer_stock",
        "set_thresholds",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[StockLevel]:
        return super().get_queryset(request).select_related("product", "location")

    def describe(self, level: StockLevel) -> str:
        return _place(level)

    @admin.display(description="sku", ordering="product__sku")
    def sku(self, level: StockLevel) -> str:
        return level.product.sku

    @admin.display(description="low", ordering="is_low", empty_value="")
    def low_badge(self, level: StockLevel) -> str:
        """A warning when low; nothing when fine."""
        if not level.is_low:
            return ""
        return badge(
            "low",
            tone="warn",
            title=f"Available {level.available} ≤ reorder point {level.reorder_point} "
            f"(safety stock {level.safety_stock}).",
        )

    @admin.display(description="timeline")
    def timeline_link(self, level: StockLevel) -> str:
        url = reverse("admin:inventory_stocklevel_timeline", args=[level.pk])
        return format_html('<a href="{}">Timeline</a>', url)

    # --- Actions ------------------------------------------------------------------------

    @admin.action(description="Receive stock", permissions=["change"])
    def receive_stock(self, request: HttpRequest, queryset: QuerySet[StockLevel]):
        def run(level: StockLevel, data: dict, audit: Audit) -> str:
            level = services.stock_receive(
                sku=level.product.sku,
                location=level.location.code,
                quantity=data["quantity"],
                audit=audit,
            )
            return f"{_place(level)} on hand {level.on_hand}"

        return self.action_page(
            request,
            queryset,
            action="receive_stock",
            form_class=ReceiveForm,
            intro="Add units to on hand at each stock level below.",
            run=run,
            done=lambda n: f"Received stock at {n} stock level(s)",
        )

    @admin.action(description="Adjust stock (±)", permissions=["change"])
    def adjust_stock(self, request: HttpRequest, queryset: QuerySet[StockLevel]):
        def run(level: StockLevel, data: dict, audit: Audit) -> str:
            level = services.stock_adjust(
                sku=level.product.sku,
                location=level.location.code,
                delta=data["delta"],
                audit=audit,
            )
            return f"{_place(level)} on hand {level.on_hand}"

        return self.action_page(
            request,
            queryset,
            action="adjust_stock",
            form_class=AdjustForm,
            intro="Correct on hand by the same amount at each stock level below.",
            run=run,
            done=lambda n: f"Adjusted stock at {n} stock level(s)",
        )

    @admin.action(description="Count stock", permissions=["change"])
    def count_stock(self, request: HttpRequest, queryset: QuerySet[StockLevel]):
        def run(level: StockLevel, data: dict, audit: Audit) -> str:
            before = level.on_hand
            level = services.stock_count(
                sku=level.product.sku,
                location=level.location.code,
                counted=data["counted"],
                audit=audit,
            )
            return f"{_place(level)} on hand {before} → {level.on_hand}"

        return self.action_page(
            request,
            queryset,
            action="count_stock",
            form_class=CountForm,
            intro="Record a physical count: on hand becomes the counted number at each stock "
            "level below, and the difference is recorded as a count.",
            run=run,
            done=lambda n: f"Counted stock at {n} stock level(s)",
        )

    @admin.action(description="Transfer stock", permissions=["change"])
    def transfer_stock(self, request: HttpRequest, queryset: QuerySet[StockLevel]):
        def run(level: StockLevel, data: dict, audit: Audit) -> str:
            destination = data["to_location"]
            transfer = services.transfer_create(
                sku=level.product.sku,
                from_location=level.location.code,
                to_location=destination.code,
                quantity=data["quantity"],
                audit=audit,
            )
            return f"{_place(level)} → {destination.code}: transfer #{transfer.pk}"

        return self.action_page(
            request,
            queryset,
            action="transfer_stock",
            form_class=TransferForm,
            intro="Ship units from each stock level below to another location. They leave "
            "on hand at once and are in transit at the destination until the transfer is "
            "received.",
            run=run,
            done=lambda n: f"Shipped {n} transfer(s)",
        )

    @admin.action(description="Set reorder point / safety stock", permissions=["change"])
    def set_thresholds(self, request: HttpRequest, queryset: QuerySet[StockLevel]):
        def run(level: StockLevel, data: dict, audit: Audit) -> str:
            before = (level.reorder_point, level.safety_stock)
            level = services.stock_set_thresholds(
                sku=level.product.sku,
                location=level.location.code,
                reorder_point=data["reorder_point"],
                safety_stock=data["safety_stock"],
                audit=audit,
            )
            # Thresholds have no ledger; the admin log keeps who changed them and why.
            self.log_change(
                request,
                level,
                f"Reorder point {before[0]} → {level.reorder_point}, safety stock "
                f"{before[1]} → {level.safety_stock}. Reason: {audit.reason}",
            )
            return f"{_place(level)} {level.reorder_point}/{level.safety_stock}"

        return self.action_page(
            request,
            queryset,
            action="set_thresholds",
            form_class=ThresholdsForm,
            intro="Set the reorder point and safety stock of each stock level below.",
            run=run,
            done=lambda n: f"Set reorder point / safety stock of {n} stock level(s)",
        )

    # --- Extra pages --------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path(
                "totals/",
                self.admin_site.admin_view(self.totals_view),
                name=f"{info}_totals",
            ),
            path(
                "<path:object_id>/timeline/",
                self.admin_site.admin_view(self.timeline_view),
                name=f"{info}_timeline",
            ),
            *super().get_urls(),
        ]

    def timeline_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Every ledger row of one (product, location), oldest first, with a chart."""
        level = self.get_object(request, unquote(object_id))
        if level is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, level):
            raise PermissionDenied
        entries = ledger_rows_audited(
            StockLedgerEntry.objects.filter(
                product_id=level.product_id, location_id=level.location_id
            ).order_by("version")
        )
        place = (level.product_id, level.location_id)
        proof_url = reverse("stock-proof", kwargs={"sku": level.product.sku})
        audit, shown = chain_panel(
            request,
            rows=entries,
            problems=[problem for _, problem in stock_chain_problems(places=[place])],
            proof_url=f"{proof_url}?{urlencode({'location': level.location.code})}",
        )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Stock timeline of {_place(level)}",
            "opts": self.opts,
            "original": level,
            "place": _place(level),
            "rows": timeline_rows(shown),
            "chart": stock_chart(entries),
            "audit": audit,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/inventory/stocklevel/timeline.html", context)

    def totals_view(self, request: HttpRequest) -> HttpResponse:
        """Stock per product summed over its locations, in one GROUP BY query per page (the
        page fetches one row more than it shows instead of counting)."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        levels = StockLevel.objects.all()
        location = request.GET.get("location", "").strip()
        if location:
            levels = levels.filter(location__code=location)
        query = request.GET.get("q", "").strip()
        if query:
            levels = levels.filter(product__sku__icontains=query)
        raw_page = request.GET.get("p", "1").strip()
        page = min(max(1, int(raw_page)), TOTALS_MAX_PAGE) if raw_page.isdecimal() else 1
        start = (page - 1) * TOTALS_PAGE_SIZE
        totals = list(
            levels.values("product_id", "product__sku", "product__name")
            .annotate(
                locations=Count("id"),
                total_on_hand=Sum("on_hand"),
                total_reserved=Sum("reserved"),
                total_available=Sum("available"),
                total_in_transit=Sum("in_transit"),
                total_backorder=Sum("backorder"),
                low_locations=Count("id", filter=Q(is_low=True)),
            )
            .order_by("product__sku")[start : start + TOTALS_PAGE_SIZE + 1]
        )
        changelist = reverse("admin:inventory_stocklevel_changelist")
        for row in totals:
            row["levels_url"] = f"{changelist}?product__id__exact={row['product_id']}"
        context = {
            **self.admin_site.each_context(request),
            "title": "Stock totals per product",
            "opts": self.opts,
            "totals": totals[:TOTALS_PAGE_SIZE],
            "page": page,
            "has_next": len(totals) > TOTALS_PAGE_SIZE,
            "location": location,
            "query": query,
            "locations": Location.objects.order_by("priority", "code").values_list(
                "code", flat=True
            ),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/inventory/stocklevel/totals.html", context)


class ReservationAllocationInline(admin.TabularInline):
    model = ReservationAllocation
    fields = ("location", "quantity", "backordered")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[ReservationAllocation]:
        return super().get_queryset(request).select_related("location")

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        # Allocations are part of the reservation: whoever may see it sees them.
        return request.user.has_perm("inventory.view_reservation") or request.user.has_perm(
            "inventory.change_reservation"
        )

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Reservation)
class ReservationAdmin(BadgesMedia, _ServiceActionsAdmin):
    list_display = (
        "id",
        "sku",
        "quantity",
        "status_badge",
        "expires",
        "reference",
        "order_link",
    )
    list_filter = ("status", ("product", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("product", "order")
    search_fields = ("reference", "product__sku")
    search_help_text = "Search by reference or sku."
    fields = (
        "product",
        "quantity",
        "status",
        "expires_at",
        "reference",
        "order",
        "version",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    inlines = (ReservationAllocationInline,)
    actions = ("confirm_reservations", "cancel_reservations")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Reservation]:
        return super().get_queryset(request).select_related("product", "order")

    def describe(self, reservation: Reservation) -> str:
        return (
            f"Reservation #{reservation.pk} ({reservation.quantity} of "
            f"{reservation.product.sku}, {reservation.get_status_display().lower()})"
        )

    @admin.display(description="sku", ordering="product__sku")
    def sku(self, reservation: Reservation) -> str:
        return reservation.product.sku

    @admin.display(description="status", ordering="status")
    def status_badge(self, reservation: Reservation) -> str:
        return badge(
            reservation.get_status_display(),
            tone=RESERVATION_TONES.get(reservation.status, "quiet"),
        )

    @admin.display(description="expires", ordering="expires_at")
    def expires(self, reservation: Reservation) -> str:
        return short_time(reservation.expires_at)

    @admin.display(description="order", ordering="order_id")
    def order_link(self, reservation: Reservation) -> str:
        if reservation.order_id is None:
            return "-"
        url = reverse("admin:orders_order_change", args=[reservation.order_id])
        return format_html('<a href="{}">{}</a>', url, reservation.order)

    confirm_reservations = _reason_action(
        "confirm_reservations",
        description="Confirm selected reservations",
        intro="Confirm (consume) each reservation below: its units leave on hand.",
        run=lambda r, audit: services.reservation_confirm(reservation_id=r.pk, audit=audit),
        done=lambda n: f"Confirmed {n} reservation(s)",
    )
    cancel_reservations = _reason_action(
        "cancel_reservations",
        description="Cancel selected reservations",
        intro="Cancel each reservation below: its units become available again.",
        run=lambda r, audit: services.reservation_cancel(reservation_id=r.pk, audit=audit),
        done=lambda n: f"Cancelled {n} reservation(s)",
    )


@admin.register(Transfer)
class TransferAdmin(BadgesMedia, _ServiceActionsAdmin):
    list_display = (
        "id",
        "sku",
        "from_location",
        "to_location",
        "quantity",
        "status_badge",
        "updated",
    )
    list_filter = ("status", "from_location", "to_location")
    list_select_related = ("product", "from_location", "to_location")
    search_fields = ("product__sku",)
    search_help_text = "Search by sku."
    fields = (
        "product",
        "from_location",
        "to_location",
        "quantity",
        "status",
        "reason",
        "version",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    actions = ("receive_transfers", "cancel_transfers")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Transfer]:
        return (
            super().get_queryset(request).select_related("product", "from_location", "to_location")
        )

    def describe(self, transfer: Transfer) -> str:
        return (
            f"Transfer #{transfer.pk} ({transfer.quantity} of {transfer.product.sku}, "
            f"{transfer.from_location.code} → {transfer.to_location.code}, "
            f"{transfer.get_status_display().lower()})"
        )

    @admin.display(description="sku", ordering="product__sku")
    def sku(self, transfer: Transfer) -> str:
        return transfer.product.sku

    @admin.display(description="status", ordering="status")
    def status_badge(self, transfer: Transfer) -> str:
        return badge(
            transfer.get_status_display(), tone=TRANSFER_TONES.get(transfer.status, "quiet")
        )

    @admin.display(description="updated", ordering="updated_at")
    def updated(self, transfer: Transfer) -> str:
        return short_time(transfer.updated_at)

    receive_transfers = _reason_action(
        "receive_transfers",
        description="Receive selected transfers",
        intro="Receive each transfer below: its units move from in transit to on hand at "
        "the destination.",
        run=lambda t, audit: services.transfer_receive(transfer_id=t.pk, audit=audit),
        done=lambda n: f"Received {n} transfer(s)",
    )
    cancel_transfers = _reason_action(
        "cancel_transfers",
        description="Cancel selected transfers",
        intro="Cancel each transfer below: its units return to on hand at the source.",
        run=lambda t, audit: services.transfer_cancel(transfer_id=t.pk, audit=audit),
        done=lambda n: f"Cancelled {n} transfer(s)",
    )


# The projector's totals are a history model; their admin lives here because it checks them
# against the live stock levels (history does not import inventory).
def _live_stock_sum(field: str) -> Coalesce:
    """The sum of `field` over the sku's stock levels now, as a subquery per row."""
    levels = (
        StockLevel.objects.filter(product__sku=OuterRef("sku"))
        .order_by()
        .values("product")
        .annotate(total=Sum(field))
        .values("total")
    )
    return Coalesce(Subquery(levels), 0)


def catching_up(value: int, *, live: int | None, what: str) -> str:
    """A projected figure, marked when it differs from the live one (the projector has not
    caught up yet); the live figure is in the title."""
    if live is None or live == value:
        return str(value)
    return format_html(
        '{} <span class="catching-up" title="Catching up: the projection says {}, the stock '
        'levels say {} {} now. It updates within seconds.">⟳ catching up</span>',
        value,
        value,
        live,
        what,
    )


@admin.register(SkuStockTotals)
class SkuStockTotalsAdmin(BadgesMedia, ReadOnlyAdmin):
    """The projector's totals per sku, each checked against the live stock levels in the
    same query: a figure that differs is marked as catching up."""

    list_display = (
        "sku",
        "on_hand_cell",
        "reserved_cell",
        "available",
        "in_transit",
        "backorder",
        "movements",
        "updated",
    )
    search_fields = ("=sku",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[SkuStockTotals]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                live_on_hand=_live_stock_sum("on_hand"),
                live_reserved=_live_stock_sum("reserved"),
            )
        )

    @admin.display(description="on hand", ordering="on_hand")
    def on_hand_cell(self, totals: SkuStockTotals) -> str:
        live = getattr(totals, "live_on_hand", None)
        return catching_up(totals.on_hand, live=live, what="on hand")

    @admin.display(description="reserved", ordering="reserved")
    def reserved_cell(self, totals: SkuStockTotals) -> str:
        live = getattr(totals, "live_reserved", None)
        return catching_up(totals.reserved, live=live, what="reserved")

    @admin.display(description="last updated", ordering="last_updated")
    def updated(self, totals: SkuStockTotals) -> str:
        return short_time(totals.last_updated)
