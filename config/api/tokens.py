"""The caller's own API tokens: list, create (the token is shown once), revoke.

Every role may list and revoke its own tokens, auditors included; nobody sees another
user's here (staff do, in the admin). Only a signed-in session creates one: a token cannot
issue tokens, so a leaked token cannot mint others that outlive its revocation (operators
issue integrators' tokens with `manage.py issue_token`). No Idempotency-Key: replaying a
creation would mean storing the token it answered with, and a retried creation only leaves
an unused token that expires."""

from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.common import validated
from config.api.fields import StrictIntegerField
from config.api.permissions import HasAnyRole
from config.api.serializers import StrictSerializer
from config.models import ApiToken
from config.tokens import AuthenticatedToken, api_token_create, api_token_revoke


class ApiTokenOutput(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]


class ApiTokenCreatedOutput(ApiTokenOutput):
    token = serializers.CharField(
        read_only=True,
        help_text="The token, for `Authorization: Token <token>`. Shown only in this answer.",
    )

    class Meta(ApiTokenOutput.Meta):
        fields = [*ApiTokenOutput.Meta.fields, "token"]


@extend_schema_view(
    get=extend_schema(
        operation_id="tokens_list",
        description="Your own API tokens, newest first; never their secrets.",
    )
)
class ApiTokenListCreateApi(ListAPIView):
    permission_classes = [HasAnyRole]
    serializer_class = ApiTokenOutput

    class InputSerializer(StrictSerializer):
        name = serializers.CharField(max_length=100, help_text="What the token is for.")
        days = StrictIntegerField(
            min_value=1,
            required=False,
            help_text="Lifetime in days: API_TOKEN_TTL_DAYS (90) by default, at most "
            "API_TOKEN_MAX_DAYS (365).",
        )

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular, with no user
            return ApiToken.objects.none()
        return ApiToken.objects.filter(user=self.request.user)

    @extend_schema(
        operation_id="tokens_create",
        request=InputSerializer,
        responses={201: ApiTokenCreatedOutput},
        description=(
            "A new token for you, with your roles. The answer is the only time the token is "
            f"shown. Not idempotent: a retry creates another token (default lifetime "
            f"{settings.API_TOKEN_TTL_DAYS} days). Only with a signed-in session: a request "
            "authenticated by a token gets 403 `token_cannot_issue_tokens`, so that a leaked "
            "token cannot outlive its revocation through tokens it made (operators issue "
            "tokens with `manage.py issue_token`)."
        ),
    )
    def post(self, request):
        if isinstance(request.auth, AuthenticatedToken):
            raise PermissionDenied(
                "A token cannot issue tokens: sign in to the admin and use this endpoint "
                "with that session, or ask an operator to run `manage.py issue_token`.",
                code="token_cannot_issue_tokens",
            )
        data = validated(self.InputSerializer, request)
        issued = api_token_create(user=request.user, name=data["name"], days=data.get("days"))
        body = ApiTokenOutput(issued.token).data | {"token": issued.key}
        return Response(body, status=status.HTTP_201_CREATED)


class ApiTokenRevokeApi(APIView):
    permission_classes = [HasAnyRole]

    class InputSerializer(StrictSerializer):
        pass

    @extend_schema(
        operation_id="tokens_revoke",
        request=InputSerializer,
        responses={200: ApiTokenOutput},
        description=(
            "Revoke one of your tokens: it is refused from the next request on. Revoking a "
            "revoked token changes nothing. Another user's token is 404."
        ),
    )
    def post(self, request, token_id: int):
        validated(self.InputSerializer, request)
        token = api_token_revoke(token_id=token_id, user=request.user)
        return Response(ApiTokenOutput(token).data)
