"""Stock and demand read endpoints. `stock/history/` and `stock/low/` come before
`stock/<sku>/`, and the sku converter leaves alone the words used by the stock command
routes, so that a POST to e.g. `stock/receive/` reaches its own view whatever the include
order."""

from django.urls import path, register_converter

from inventory import proof_apis, query_apis
from inventory.models import RESERVED_STOCK_PATHS


class StockSkuConverter:
    regex = rf"(?!(?:{'|'.join(RESERVED_STOCK_PATHS)})/)[^/]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(StockSkuConverter, "stock_sku")

urlpatterns = [
    path("demand/", query_apis.DemandListApi.as_view(), name="demand-list"),
    path("demand/<str:sku>/", query_apis.DemandDetailApi.as_view(), name="demand-detail"),
    path("stock/", query_apis.StockListApi.as_view(), name="stock-list"),
    path("stock/history/", query_apis.StockHistoryApi.as_view(), name="stock-history"),
    path("stock/low/", query_apis.StockLowListApi.as_view(), name="stock-low"),
    path("stock/<stock_sku:sku>/", query_apis.StockDetailApi.as_view(), name="stock-detail"),
    path(
        "stock/<stock_sku:sku>/proof/", proof_apis.StockLevelProofApi.as_view(), name="stock-proof"
    ),
    path(
        "stock/<stock_sku:sku>/forecast/",
        query_apis.StockForecastApi.as_view(),
        name="stock-forecast",
    ),
]
