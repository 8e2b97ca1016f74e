from drf_spectacular.utils import extend_schema
from rest_framework.views import APIView

from history.models import AccessAction
from history.seal_apis import ProofOutput, proof_response
from orders.selectors import order_proof


class OrderProofApi(APIView):
    @extend_schema(
        operation_id="orders_proof",
        responses=ProofOutput,
        description=(
            "The order's chain head, the last row a seal covers with that seal and its "
            "inclusion proof, and the consistency proof to the latest seal: with the order's "
            "history CSV and the public key, tools/verify_export.py checks it offline. "
            "Recorded in the access log."
        ),
    )
    def get(self, request, order_id: int):
        proof = order_proof(order_id=order_id)
        return proof_response(
            request, proof, action=AccessAction.PROOF_ORDER, target=f"order {order_id}"
        )
