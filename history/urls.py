from django.urls import path

from history import apis

urlpatterns = [
    path("orders/<int:order_id>/history/", apis.OrderHistoryApi.as_view(), name="order-history"),
    path("adjustments/", apis.AdjustmentListApi.as_view(), name="adjustment-list"),
    path("demand/", apis.DemandListApi.as_view(), name="demand-list"),
    path("demand/<str:sku>/", apis.DemandDetailApi.as_view(), name="demand-detail"),
]
