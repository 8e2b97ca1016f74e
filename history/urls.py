from django.urls import path

from history import apis

urlpatterns = [
    path("adjustments/", apis.AdjustmentListApi.as_view(), name="adjustment-list"),
]
