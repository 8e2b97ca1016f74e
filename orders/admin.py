from collections.abc import Callable

from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from config.admin_errors import DomainErrorsShown
from config.errors import DomainError, DomainValidationError, VersionConflict
from history.admin_cells import BadgesMedia, badge, order_total_cell, short_time
from history.audit import admin_audit, reason_code_check
from history.forms import ReasonCodeChoiceField
from history.selectors import ledger_rows_audited, order_timeline
from history.timeline import chain_panel
from inventory.models import ReservationStatus
from inventory.selectors import order_reservation_list
from orders import services
from orders.forms import (
    OrderAdminForm,
    OrderCloseForm,
    OrderLineForm,
    OrderLineFormSet,
    stale_order_message,
)
from orders.models import Customer, Order, OrderLine, OrderStatus
from orders.selectors import order_chain_problems, order_stock_movements
from orders.timeline import attach_stock_movements, line_charts

ORDER_TONES = {
    OrderStatus.OPEN: "info",
    OrderStatus.FULFILLED: "good",
    OrderStatus.CANCELLED: "quiet",
}
CANCEL_REASON = "Cancelled in admin"
FULFIL_REASON = "Fulfilled in admin"


class OrderActionForm(ActionForm):
    """The changelist's action bar, with the reason code the cancel and fulfil actions
    record."""

    reason_code = ReasonCodeChoiceField(required=False)


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "email", "created_at")
    search_fields = ("name", "email")


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    form = OrderLineForm
    formset = OrderLineFormSet
    fields = ("product", "quantity")
    autocomplete_fields = ("product",)
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderLine]:
        return super().get_queryset(request).select_related("product")

    def get_extra(self, request: HttpRequest, obj: Order | None = None, **kwargs) -> int:
        return 0 if obj else 1

    def get_readonly_fields(self, request: HttpRequest, obj: Order | None = None) -> tuple:
        if obj is not None and obj.status != OrderStatus.OPEN:
            return ("product", "quantity")
        return ()

    def has_add_permission(self, request: HttpRequest, obj: Order | None) -> bool:
        editable = obj is None or obj.status == OrderStatus.OPEN
        return editable and super().has_add_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(BadgesMedia, DomainErrorsShown, admin.ModelAdmin):
    """Every save goes through `orders.services`, so the admin writes the same ledger rows
    and outbox events as the API. The form carries the version it was rendered with, and a
    save against a newer version is refused rather than overwriting someone's change."""

    form = OrderAdminForm
    inlines = (OrderLineInline,)
    list_display = (
        "id",
        "reference",
        "customer",
        "status_badge",
        "version",
        "total_quantity",
        "updated",
    )
    list_display_links = ("id", "reference")
    list_filter = ("status", "customer", "updated_at")
    list_select_related = ("customer",)
    search_fields = ("reference", "customer__name", "lines__product__sku")
    search_help_text = "Search by reference, customer name or line sku."
    autocomplete_fields = ("customer",)
    actions = ("cancel_orders", "fulfil_orders")
    action_form = OrderActionForm

    def get_queryset(self, request: HttpRequest) -> QuerySet[Order]:
        # From the projector's snapshot (a join on its primary key), not a sum over the
        # lines of every order on the page; "—" until the projector has seen the order.
        # The snapshot's version tells whether it has caught up with the order.
        return (
            super()
            .get_queryset(request)
            .annotate(
                total_quantity=F("ordersnapshot__total_quantity"),
                snapshot_version=F("ordersnapshot__last_version"),
            )
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, order: Order) -> str:
        return badge(order.get_status_display(), tone=ORDER_TONES.get(order.status, "quiet"))

    @admin.display(description="total quantity", ordering="total_quantity")
    def total_quantity(self, order: Order) -> int | str:
        return order_total_cell(
            total=order.total_quantity,
            snapshot_version=getattr(order, "snapshot_version", None),
            version=order.version,
        )

    @admin.display(description="updated", ordering="updated_at")
    def updated(self, order: Order) -> str:
        return short_time(order.updated_at)

    def get_fieldsets(self, request: HttpRequest, obj: Order | None = None) -> list:
        if obj is None:
            return [(None, {"fields": ["customer", "reference", "reason", "reason_code"]})]
        main = ["customer", "reference", "status", "version", "created_at", "updated_at"]
        if not self.has_change_permission(request, obj):
            return [(None, {"fields": main})]
        fieldsets = [(None, {"fields": [*main, "expected_version"]})]
        if obj.status == OrderStatus.OPEN:
            fieldsets.append(("Reason for the change", {"fields": ["reason", "reason_code"]}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Order | None = None) -> tuple:
        if obj is None:
            return ()
        return ("customer", "reference", "status", "version", "created_at", "updated_at")

    def has_delete_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False

    def domain_error_message(self, error: DomainError) -> str:
        # The form's version check is only advisory: the service re-checks under the row
        # lock, and a conflict found there reads like the form's own.
        if isinstance(error, VersionConflict):
            return stale_order_message(current=error.current)
        return super().domain_error_message(error)

    def save_model(self, request: HttpRequest, obj: Order, form, change: bool) -> None:
        """Nothing to do yet: the services write the order together with its lines, which
        only `save_related` sees."""

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        lines = _lines_formset(formsets)
        audit = admin_audit(
            request,
            reason=form.cleaned_data.get("reason", "").strip(),
            reason_code=form.cleaned_data.get("reason_code", ""),
        )
        if change:
            quantities = lines.quantities()
            if not quantities:
                return
            order = services.order_set_quantities(
                order_id=form.instance.pk,
                quantities=quantities,
                expected_version=form.cleaned_data["expected_version"],
                audit=audit,
            )
        else:
            order = services.order_create(
                customer_id=form.instance.customer_id,
                reference=form.instance.reference,
                lines=lines.quantities(),
                audit=audit,
            )
        _copy_saved_state(order, onto=form.instance)

    def construct_change_message(
        self, request: HttpRequest, form, formsets, add: bool = False
    ) -> list[dict]:
        name = str(OrderLine._meta.verbose_name)
        message: list[dict] = [{"added": {}}] if add else []
        for line in _lines_formset(formsets).filled_forms():
            if not line.has_changed():
                continue
            sku = line.cleaned_data["product"].sku
            if line.instance.pk is None:
                message.append({"added": {"name": name, "object": sku}})
            else:
                message.append({"changed": {"name": name, "object": sku, "fields": ["quantity"]}})
        return message

    @admin.action(description="Cancel selected orders", permissions=["change"])
    def cancel_orders(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        self._each_order(
            request, queryset, services.order_cancel, CANCEL_REASON, done="Cancelled", verb="cancel"
        )

    @admin.action(description="Fulfil selected orders", permissions=["change"])
    def fulfil_orders(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        self._each_order(
            request, queryset, services.order_fulfil, FULFIL_REASON, done="Fulfilled", verb="fulfil"
        )

    def _each_order(
        self,
        request: HttpRequest,
        queryset: QuerySet[Order],
        service: Callable[..., Order],
        reason: str,
        *,
        done: str,
        verb: str,
    ) -> None:
        """Call `service` for each selected order in its own transaction, then report the
        ones it did and the ones it refused."""
        audit = admin_audit(request, reason=reason, reason_code=request.POST.get("reason_code", ""))
        try:
            reason_code_check(audit)
        except DomainValidationError as exc:
            self.message_user(request, f"Could not {verb} any order: {exc.detail}", messages.ERROR)
            return
        succeeded, failed = [], []
        for order_id in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                service(order_id=order_id, audit=audit)
            except DomainError as exc:
                failed.append(f"#{order_id}: {exc.detail}")
            else:
                succeeded.append(f"#{order_id}")
        if succeeded:
            self.message_user(
                request,
                f"{done} {len(succeeded)} order(s): {', '.join(succeeded)}.",
                messages.SUCCESS,
            )
        if failed:
            self.message_user(
                request,
                f"Could not {verb} {len(failed)} order(s): {'; '.join(failed)}",
                messages.ERROR,
            )

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_timeline"
        timeline = path(
            "<path:object_id>/timeline/",
            self.admin_site.admin_view(self.timeline_view),
            name=name,
        )
        close = path(
            "<path:object_id>/close/",
            self.admin_site.admin_view(self.close_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_close",
        )
        return [timeline, close, *super().get_urls()]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None
    ) -> HttpResponse:
        order = self.get_object(request, unquote(object_id))
        if order is not None and self.has_view_permission(request, order):
            extra_context = {**(extra_context or {}), **self._stock_context(request, order)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _stock_context(self, request: HttpRequest, order: Order) -> dict:
        """The order's lines with the reservations they hold (and where), the link to the
        stock movements the order caused, and the Cancel/Fulfil form for an open order."""
        reservations: dict[int, list] = {}
        fulfil_blockers = []
        for reservation in order_reservation_list(order_id=order.pk):
            reservations.setdefault(reservation.product_id, []).append(reservation)
            if reservation.status != ReservationStatus.ACTIVE:
                continue
            for allocation in reservation.allocations.all():
                short = allocation.shortfall(available=allocation.level_available or 0)
                if short:
                    place = f"{reservation.product.sku}@{allocation.location.code}"
                    fulfil_blockers.append(f"{place} is {short} short of its backorder")
        lines = order.lines.select_related("product").order_by("id")
        movements = reverse("admin:history_stockledgerentry_changelist")
        closable = order.status == OrderStatus.OPEN and self.has_change_permission(request, order)
        # What was typed into a refused Cancel/Fulfil form (close_view), shown again.
        typed = request.session.pop(self._close_session_key(order), None)
        return {
            "line_stock": [(line, reservations.get(line.product_id, [])) for line in lines],
            "stock_movements_url": f"{movements}?reference_type=order&reference_id={order.pk}",
            "close_form": OrderCloseForm(order=order, initial=typed) if closable else None,
            "fulfil_blockers": fulfil_blockers,
        }

    @staticmethod
    def _close_session_key(order: Order) -> str:
        return f"orders.close_form.{order.pk}"

    def _close_refused(self, request: HttpRequest, order: Order, form: OrderCloseForm, url: str):
        """Back to the order page, with the reason and code as typed (not the version: the
        page shows the order as it is now)."""
        request.session[self._close_session_key(order)] = {
            "reason": form.data.get(form.add_prefix("reason"), ""),
            "reason_code": form.data.get(form.add_prefix("reason_code"), ""),
        }
        return HttpResponseRedirect(url)

    def close_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The change page's Cancel and Fulfil buttons: one call to `order_cancel` or
        `order_fulfil` with the version the page was rendered at."""
        order = self.get_object(request, unquote(object_id))
        if order is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if request.method != "POST" or not self.has_change_permission(request, order):
            raise PermissionDenied
        change_url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[order.pk]
        )
        form = OrderCloseForm(request.POST, order=order)
        if not form.is_valid():
            errors = "; ".join(str(error) for errors in form.errors.values() for error in errors)
            self.message_user(request, f"Nothing was changed: {errors}", messages.ERROR)
            return self._close_refused(request, order, form, change_url)
        cancel = form.cleaned_data["action"] == OrderCloseForm.CANCEL
        service = services.order_cancel if cancel else services.order_fulfil
        audit = admin_audit(
            request,
            reason=form.cleaned_data["reason"].strip(),
            reason_code=form.cleaned_data["reason_code"],
        )
        try:
            closed = service(
                order_id=order.pk,
                expected_version=form.cleaned_data["expected_version"],
                audit=audit,
            )
        except DomainError as exc:
            self.message_user(request, self.domain_error_message(exc), messages.ERROR)
            return self._close_refused(request, order, form, change_url)
        done = "Cancelled" if cancel else "Fulfilled"
        self.log_change(request, closed, [{"changed": {"fields": ["status"]}}])
        self.message_user(
            request, f"{done} order {closed} (now version {closed.version}).", messages.SUCCESS
        )
        return HttpResponseRedirect(change_url)

    def history_view(self, request: HttpRequest, object_id: str, extra_context=None):
        """Django's own change history is replaced by the Timeline (the order's ledger)."""
        name = f"admin:{self.opts.app_label}_{self.opts.model_name}_timeline"
        return HttpResponseRedirect(reverse(name, args=[object_id]))

    def timeline_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        order = self.get_object(request, unquote(object_id))
        if order is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, order):
            raise PermissionDenied
        entries = ledger_rows_audited(order_timeline(order_id=order.pk))
        audit, shown = chain_panel(
            request,
            rows=entries,
            problems=[problem for _, problem in order_chain_problems(order_ids=[order.pk])],
            proof_url=reverse("order-proof", kwargs={"order_id": order.pk}),
        )
        other_movements = attach_stock_movements(shown, order_stock_movements(order_id=order.pk))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Timeline of {order}",
            "opts": self.opts,
            "original": order,
            "entries": shown,
            "charts": line_charts(entries),
            "other_movements": other_movements,
            "audit": audit,
            "csv_url": reverse("order-history", kwargs={"order_id": order.pk}) + "?format=csv",
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/orders/order/timeline.html", context)


def _lines_formset(formsets) -> OrderLineFormSet:
    return next(formset for formset in formsets if isinstance(formset, OrderLineFormSet))


def _copy_saved_state(saved: Order, *, onto: Order) -> None:
    """The admin's log entry and redirect use its own instance, not the service's."""
    for field in ("id", "version", "status", "created_at", "updated_at"):
        setattr(onto, field, getattr(saved, field))
    onto._state.adding = False
    onto._state.db = saved._state.db
