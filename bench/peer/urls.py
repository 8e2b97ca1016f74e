from django.http import JsonResponse
from django.urls import include, path
from rest_framework.routers import DefaultRouter

from bench.peer.api import OrderViewSet

router = DefaultRouter()
router.register("orders", OrderViewSet, basename="order")

urlpatterns = [
    path("healthz", lambda request: JsonResponse({"status": "ok"})),
    path("api/v1/", include(router.urls)),
]
