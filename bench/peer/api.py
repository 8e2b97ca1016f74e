"""A ModelViewSet with ModelSerializers, the lines nested and writable by sku."""

from django.db.models import Prefetch
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from bench.peer.models import Order, OrderLine, Product


def _lines() -> Prefetch:
    return Prefetch("lines", queryset=OrderLine.objects.select_related("product").order_by("id"))


class OrderLineSerializer(serializers.ModelSerializer):
    sku = serializers.SlugRelatedField(
        source="product", slug_field="sku", queryset=Product.objects.all()
    )

    class Meta:
        model = OrderLine
        fields = ["sku", "quantity"]


class OrderSerializer(serializers.ModelSerializer):
    lines = OrderLineSerializer(many=True, required=False)

    class Meta:
        model = Order
        fields = ["id", "customer", "reference", "status", "created_at", "updated_at", "lines"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def update(self, instance: Order, validated_data: dict) -> Order:
        lines = validated_data.pop("lines", None)
        instance = super().update(instance, validated_data)
        if lines is not None:
            current = {line.product_id: line for line in instance.lines.all()}
            for item in lines:
                line = current.get(item["product"].id)
                if line is None:
                    OrderLine.objects.create(order=instance, **item)
                elif line.quantity != item["quantity"]:
                    line.quantity = item["quantity"]
                    line.save(update_fields=["quantity"])
        return instance


class AdjustSerializer(serializers.Serializer):
    sku = serializers.CharField()
    delta = serializers.IntegerField()
    reason = serializers.CharField(required=False, allow_blank=True)


class OrderViewSet(viewsets.ModelViewSet):
    serializer_class = OrderSerializer

    def get_queryset(self):
        queryset = Order.objects.prefetch_related(_lines()).order_by("id")
        if self.request.method not in ("GET", "HEAD", "OPTIONS"):
            # Writes lock the order for the request's transaction (ATOMIC_REQUESTS).
            queryset = queryset.select_for_update(of=("self",))
        return queryset

    @action(detail=True, methods=["post"])
    def adjust(self, request, pk=None):
        order = self.get_object()
        data = AdjustSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        sku, delta = data.validated_data["sku"], data.validated_data["delta"]
        line = next((line for line in order.lines.all() if line.product.sku == sku), None)
        if line is None:
            raise NotFound(f"no line for {sku}")
        line.quantity += delta
        if line.quantity < 0:
            raise serializers.ValidationError({"delta": "the quantity would be negative"})
        line.save(update_fields=["quantity"])
        order.save(update_fields=["updated_at"])
        return Response(self.get_serializer(order).data)
