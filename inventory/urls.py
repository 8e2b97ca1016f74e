from django.urls import path

from inventory import apis

urlpatterns = [
    path("products/", apis.ProductListCreateApi.as_view(), name="product-list"),
    path("products/<str:sku>/", apis.ProductDetailApi.as_view(), name="product-detail"),
]
