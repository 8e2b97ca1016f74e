from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from config.api.serializers import StrictSerializer
from history.models import AccessAction
from history.seal_apis import ProofOutput, proof_response
from inventory.models import CODE_PATTERN
from inventory.selectors import stock_level_proof


class StockLevelProofApi(APIView):
    class InputSerializer(StrictSerializer):
        location = serializers.RegexField(CODE_PATTERN, max_length=32)

    @extend_schema(
        operation_id="stock_proof",
        parameters=[OpenApiParameter("location", str, required=True, pattern=CODE_PATTERN)],
        responses=ProofOutput,
        description=(
            "The proof of one stock level's chain (the sku at `location`), as for an order: "
            "with the stock history CSV and the public key, tools/verify_export.py checks "
            "it offline. Recorded in the access log."
        ),
    )
    def get(self, request, sku: str):
        query = self.InputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        location = query.validated_data["location"]
        proof = stock_level_proof(sku=sku, location=location)
        return proof_response(
            request, proof, action=AccessAction.PROOF_STOCK, target=f"stock {sku}@{location}"
        )
