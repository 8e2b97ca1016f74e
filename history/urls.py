from django.urls import path

from history import apis, seal_apis

urlpatterns = [
    path("adjustments/", apis.AdjustmentListApi.as_view(), name="adjustment-list"),
    path("seals/", seal_apis.SealListApi.as_view(), name="seal-list"),
    path("seals/key/", seal_apis.PublicKeyApi.as_view(), name="seal-key"),
    path("seals/consistency/", seal_apis.SealConsistencyApi.as_view(), name="seal-consistency"),
    path("seals/<id:number>/", seal_apis.SealDetailApi.as_view(), name="seal-detail"),
]
