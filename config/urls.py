from django.contrib import admin
from django.urls import include, path, re_path, register_converter
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config import health, metrics
from config.api import tokens
from config.api.converters import IdConverter
from config.api.problems import problem_response

register_converter(IdConverter, "id")


@csrf_exempt  # writes nothing; a CSRF refusal would be an HTML page, not a problem
def api_not_found(request, rest: str):
    # Under /api/ every answer is problem details, an unknown path's too (also with DEBUG).
    hint = " API paths end with a slash." if not request.path.endswith("/") else ""
    return problem_response(
        status=404, code="not_found", detail=f"No API endpoint at {request.path}.{hint}"
    )


api_v1 = [
    path("tokens/", tokens.ApiTokenListCreateApi.as_view(), name="token-list"),
    path("tokens/<id:token_id>/revoke/", tokens.ApiTokenRevokeApi.as_view(), name="token-revoke"),
    path("", include("orders.urls")),
    path("", include("history.urls")),
    path("", include("inventory.query_urls")),
    path("", include("inventory.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its script as a file, so it runs under the CSP's script-src.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    re_path(r"^api/(?P<rest>(?s:.*))$", api_not_found),  # (?s): a newline in the path too
]
