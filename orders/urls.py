from django.urls import path

from orders import apis, bulk_apis, proof_apis

urlpatterns = [
    path("orders/", apis.OrderListCreateApi.as_view(), name="order-list"),
    path("orders/<id:order_id>/", apis.OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<id:order_id>/adjust/", apis.OrderAdjustApi.as_view(), name="order-adjust"),
    path("orders/<id:order_id>/cancel/", apis.OrderCancelApi.as_view(), name="order-cancel"),
    path("orders/<id:order_id>/fulfil/", apis.OrderFulfilApi.as_view(), name="order-fulfil"),
    path("orders/<id:order_id>/history/", apis.OrderHistoryApi.as_view(), name="order-history"),
    path("orders/<id:order_id>/proof/", proof_apis.OrderProofApi.as_view(), name="order-proof"),
    path("adjustments/bulk/", bulk_apis.AdjustmentsBulkApi.as_view(), name="adjustments-bulk"),
    path("customers/", apis.CustomerListCreateApi.as_view(), name="customer-list"),
    path("customers/<id:customer_id>/", apis.CustomerDetailApi.as_view(), name="customer-detail"),
]
