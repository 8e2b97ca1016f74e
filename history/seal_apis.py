"""The seals over HTTP: the public key that checks them, the list, one seal, and the
consistency proof between two. Everything an auditor needs besides an export and its
proof, to check the ledger on their own machine (tools/verify_export.py)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.pagination import StrictCursorPagination
from config.api.serializers import StrictSerializer
from config.errors import DomainValidationError, NotFound
from history.models import AccessAction, LedgerSeal
from history.seals import consistency, public_key_document, seal_document
from history.services import access_log_record


def _hex(**kwargs) -> serializers.CharField:
    return serializers.CharField(help_text="lowercase hex", **kwargs)


class SealOutput(serializers.Serializer):
    """A seal as `history.seals.seal_document` writes it (documentation only)."""

    number = serializers.IntegerField()
    tree_size = serializers.IntegerField()
    batch_size = serializers.IntegerField()
    root = _hex()
    previous_hash = _hex()
    seal_hash = _hex()
    sealed_at = serializers.CharField(help_text="UTC, YYYY-MM-DDTHH:MM:SS.ffffffZ")
    key_id = _hex()
    algorithm = serializers.CharField()
    signature = _hex()


class SealPagination(StrictCursorPagination):
    ordering = "-number"
    page_size = 50
    max_page_size = 500


class PublicKeyApi(APIView):
    """Public, like any public key: a verifier needs it before it trusts anything else."""

    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="seals_public_key",
        responses=inline_serializer(
            "SealPublicKey",
            {
                "algorithm": serializers.CharField(),
                "key_id": _hex(),
                "public_key": _hex(),
                "public_key_base64": serializers.CharField(),
                "pem": serializers.CharField(),
            },
        ),
        description="The Ed25519 public key that checks every seal's signature.",
    )
    def get(self, request):
        return Response(public_key_document())


class SealListApi(ListAPIView):
    pagination_class = SealPagination
    serializer_class = SealOutput

    def get_queryset(self):
        return LedgerSeal.objects.all()

    @extend_schema(operation_id="seals_list", description="Every seal, newest first.")
    def get(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([seal_document(seal) for seal in page])


class SealDetailApi(APIView):
    @extend_schema(operation_id="seals_retrieve", responses=SealOutput)
    def get(self, request, number: int):
        seal = LedgerSeal.objects.filter(number=number).first()
        if seal is None:
            raise NotFound("Seal", number)
        return Response(seal_document(seal))


class SealConsistencyApi(APIView):
    class InputSerializer(StrictSerializer):
        first = serializers.IntegerField(min_value=1, max_value=2**62)
        second = serializers.IntegerField(min_value=1, max_value=2**62)

    @extend_schema(
        operation_id="seals_consistency",
        parameters=[
            OpenApiParameter("first", OpenApiTypes.INT, required=True),
            OpenApiParameter("second", OpenApiTypes.INT, required=True),
        ],
        responses=inline_serializer(
            "SealConsistency",
            {
                "first": SealOutput(),
                "second": SealOutput(),
                "proof": serializers.ListField(child=_hex()),
            },
        ),
        description=(
            "The RFC 9162 consistency proof that seal `second`'s tree extends seal `first`'s: "
            "nothing sealed by `first` was changed or removed by the time of `second`."
        ),
    )
    def get(self, request):
        query = self.InputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        numbers = query.validated_data["first"], query.validated_data["second"]
        if numbers[0] > numbers[1]:
            raise DomainValidationError("first must not come after second.", field="first")
        seals = {seal.number: seal for seal in LedgerSeal.objects.filter(number__in=numbers)}
        for number in numbers:
            if number not in seals:
                raise NotFound("Seal", number)
        first, second = seals[numbers[0]], seals[numbers[1]]
        return Response(
            {
                "first": seal_document(first),
                "second": seal_document(second),
                "proof": [node.hex() for node in consistency(first, second)],
            }
        )


class ProofEntryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.IntegerField()
    hash = _hex()


class ProofOutput(serializers.Serializer):
    """An aggregate's proof, as `history.seals.chain_proof` writes it (documentation only)."""

    aggregate = serializers.DictField()
    head = ProofEntryOutput(allow_null=True, help_text="The chain's last row.")
    sealed_entry = inline_serializer(
        "ProofSealedEntry",
        {
            "id": serializers.IntegerField(),
            "version": serializers.IntegerField(),
            "hash": _hex(),
            "leaf_index": serializers.IntegerField(),
        },
        allow_null=True,
        help_text="The chain's last row that a seal covers.",
    )
    unsealed_entries = serializers.IntegerField(help_text="Rows after it, not sealed yet.")
    seal = SealOutput(allow_null=True, help_text="The seal that added the sealed entry.")
    inclusion_proof = serializers.ListField(child=_hex())
    latest_seal = SealOutput(allow_null=True)
    consistency_proof = serializers.ListField(
        child=_hex(), help_text="From `seal` to `latest_seal` (RFC 9162)."
    )


def proof_response(request, proof: dict, *, action: AccessAction, target: str) -> Response:
    """A proof, once its request is in the access log."""
    access_log_record(
        actor=request.user.get_username(),
        action=action,
        target=target,
        filters=dict(request.query_params.items()),
        rows=None,
        correlation_id=getattr(request._request, "correlation_id", ""),
    )
    return Response(proof)
