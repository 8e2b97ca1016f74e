from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.idempotency import IdempotentMixin
from config.api.serializers import StrictSerializer
from inventory.models import SKU_PATTERN, Product
from inventory.selectors import product_get, product_list
from inventory.services import product_create


class ProductOutput(serializers.ModelSerializer):
    class Meta:
        model = Product
        fields = ["id", "sku", "name", "track_inventory", "created_at"]


class ProductListCreateApi(IdempotentMixin, ListAPIView):
    serializer_class = ProductOutput
    filterset_fields = ["sku"]

    class InputSerializer(StrictSerializer):
        sku = serializers.RegexField(SKU_PATTERN, max_length=64)
        name = serializers.CharField(max_length=200)
        track_inventory = serializers.BooleanField(default=True)

    def get_queryset(self):
        return product_list()

    @extend_schema(
        operation_id="products_create",
        request=InputSerializer,
        responses={201: ProductOutput},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="Retry-safe key: the same key and body replay the first response.",
            )
        ],
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        product = product_create(**serializer.validated_data)
        return Response(ProductOutput(product).data, status=status.HTTP_201_CREATED)


class ProductDetailApi(APIView):
    @extend_schema(operation_id="products_retrieve", responses={200: ProductOutput})
    def get(self, request, sku: str):
        return Response(ProductOutput(product_get(sku=sku)).data)
