from django.urls import path

from history import apis

urlpatterns = [
    path("orders/<int:order_id>/history/", apis.OrderHistoryApi.as_view(), name="order-history"),
    path("adjustments/", apis.AdjustmentListApi.as_view(), name="adjustment-list"),
]
