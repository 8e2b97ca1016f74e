from django.urls import path

from inventory import apis

urlpatterns = [
    path("products/", apis.ProductListCreateApi.as_view(), name="product-list"),
    path("products/<str:sku>/", apis.ProductDetailApi.as_view(), name="product-detail"),
    path("locations/", apis.LocationListCreateApi.as_view(), name="location-list"),
    path("locations/<str:code>/", apis.LocationDetailApi.as_view(), name="location-detail"),
    path("stock/receive/", apis.StockReceiveApi.as_view(), name="stock-receive"),
    path("stock/issue/", apis.StockIssueApi.as_view(), name="stock-issue"),
    path("stock/adjust/", apis.StockAdjustApi.as_view(), name="stock-adjust"),
    path("stock/count/", apis.StockCountApi.as_view(), name="stock-count"),
    path("stock/thresholds/", apis.StockThresholdsApi.as_view(), name="stock-thresholds"),
    path("transfers/", apis.TransferListCreateApi.as_view(), name="transfer-list"),
    path("transfers/<id:transfer_id>/", apis.TransferDetailApi.as_view(), name="transfer-detail"),
    path(
        "transfers/<id:transfer_id>/receive/",
        apis.TransferReceiveApi.as_view(),
        name="transfer-receive",
    ),
    path(
        "transfers/<id:transfer_id>/cancel/",
        apis.TransferCancelApi.as_view(),
        name="transfer-cancel",
    ),
    path("reservations/", apis.ReservationListCreateApi.as_view(), name="reservation-list"),
    path(
        "reservations/<id:reservation_id>/",
        apis.ReservationDetailApi.as_view(),
        name="reservation-detail",
    ),
    path(
        "reservations/<id:reservation_id>/confirm/",
        apis.ReservationConfirmApi.as_view(),
        name="reservation-confirm",
    ),
    path(
        "reservations/<id:reservation_id>/cancel/",
        apis.ReservationCancelApi.as_view(),
        name="reservation-cancel",
    ),
]
