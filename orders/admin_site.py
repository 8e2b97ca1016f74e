"""The admin site: its models grouped the way staff work (Orders, Stock, Audit, Settings),
"View site" leading to the API docs, and a dashboard on the index for staff and auditors.

Installed as the default site (`OrderTrackAdminConfig` in INSTALLED_APPS, in place of
django.contrib.admin), so `admin.site` and every `@admin.register` use it unchanged. This
module is imported while the apps load: no model imports at the top.

The dashboard (orders.dashboard) on the bench database (ordertrack_bench_http: 70,000
order ledger rows, all within the last 30 days; 50,000 outbox events; the ledgers
partitioned by month), 2026-11-28, quiet machine: GET /admin/ by a staff user through the
test client, median of 20 after one warm-up, 74-86 ms (two runs), 19 queries. Of that,
`dashboard_get` is 32 ms, its largest part (40% under cProfile) the six projections' lag
counts (a count and a checkpoint read each: history.projector.projection_lag); the chart reads the
DailyChangeCounts projection (about 1 ms). The admin page itself (session, permissions,
the app list, the templates) is the rest. Measured with:
BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/ordertrack_bench_http \
    DJANGO_SETTINGS_MODULE=config.settings.bench .venv/bin/python -m orders.admin_site
"""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.template.response import TemplateResponse
from django.urls import reverse_lazy

# (title, app label of its CSS class and caption link, models as "app_label.model_name"),
# in the order staff use them. A registered model missing here joins the group of its
# app label below, so nothing disappears from the index.
GROUPS = (
    (
        "Orders",
        "orders",
        ("orders.order", "orders.customer", "history.ordersnapshot"),
    ),
    (
        "Stock",
        "inventory",
        (
            "inventory.stocklevel",
            "inventory.reservation",
            "inventory.transfer",
            "inventory.product",
            "inventory.location",
            "history.skustocktotals",
            "history.skudemand",
            "history.skudailyadjustments",
        ),
    ),
    (
        "Audit",
        "history",
        (
            "history.orderledgerentry",
            "history.stockledgerentry",
            "history.ledgerseal",
            "history.accesslogentry",
            "history.outboxevent",
            "history.projectioncheckpoint",
        ),
    ),
    (
        "Settings",
        "config",
        ("config.apitoken", "auth.user", "auth.group"),
    ),
)
GROUP_OF_APP = {"orders": "Orders", "inventory": "Stock", "history": "Audit"}
OTHER_GROUP = "Settings"


class OrderTrackAdminSite(admin.AdminSite):
    site_header = "OrderTrack: orders and inventory"
    site_title = "OrderTrack admin"
    index_title = "Dashboard"
    site_url = reverse_lazy("swagger-ui")

    def get_app_list(self, request, app_label=None) -> list[dict]:
        """The index and the sidebar show the groups; an app's own page (`app_label`) keeps
        Django's list of that app's models."""
        if app_label is not None:
            return super().get_app_list(request, app_label)
        apps = self._build_app_dict(request)
        found = {
            f"{label}.{model['model']._meta.model_name}": (app, model)
            for label, app in apps.items()
            for model in app["models"]
        }
        placed: dict[str, list[tuple[dict, dict]]] = {name: [] for name, _, _ in GROUPS}
        for name, _, keys in GROUPS:
            placed[name] += [found.pop(key) for key in keys if key in found]
        for key in sorted(found, key=lambda key: str(found[key][1]["name"])):
            placed[GROUP_OF_APP.get(key.split(".")[0], OTHER_GROUP)].append(found[key])
        return [
            {
                "name": name,
                "app_label": label,
                "app_url": members[0][0]["app_url"],
                "has_module_perms": True,
                "models": [model for _, model in members],
            }
            for name, label, _ in GROUPS
            if (members := placed[name])
        ]

    def index(self, request, extra_context=None) -> TemplateResponse:
        from config.roles import Role, user_has_role
        from history.models import OutboxEvent
        from orders.dashboard import dashboard_get

        extra_context = dict(extra_context or {})
        if user_has_role(request.user, frozenset({Role.STAFF, Role.AUDITOR})):
            outbox_admin = self.get_model_admin(OutboxEvent)
            retry_allowed = outbox_admin.has_retry_permission(request)
            extra_context["dashboard"] = dashboard_get(retry_allowed=retry_allowed)
        return super().index(request, extra_context)


class OrderTrackAdminConfig(AdminConfig):
    default_site = "orders.admin_site.OrderTrackAdminSite"


if __name__ == "__main__":  # the measurement in the docstring
    import statistics
    import time

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection, transaction
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from config.roles import Role

    times = []
    with transaction.atomic():  # the user and its session are rolled back at the end
        user = get_user_model().objects.create(username="dashboard-bench", is_staff=True)
        user.groups.add(Group.objects.get(name=Role.STAFF))
        client = Client(HTTP_HOST="localhost")
        client.force_login(user)
        client.get("/admin/")  # warm: templates, URL resolvers
        for _ in range(20):
            start = time.perf_counter()
            response = client.get("/admin/")
            times.append(time.perf_counter() - start)
            assert response.status_code == 200, response.status_code
        with CaptureQueriesContext(connection) as queries:
            client.get("/admin/")
        transaction.set_rollback(True)
    print(
        f"GET /admin/ (dashboard): median {statistics.median(times) * 1000:.1f} ms, "
        f"min {min(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms over 20, "
        f"{len(queries)} queries"
    )
