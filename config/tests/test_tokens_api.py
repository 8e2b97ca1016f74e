"""/api/v1/tokens/: every role lists, creates and revokes its own API tokens, and only its
own; a new token is shown once, in the answer that creates it, and only a signed-in session
creates one (a token cannot issue tokens)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from config.models import ApiToken
from tests.problems import assert_problem

pytestmark = pytest.mark.django_db

TOKENS = "/api/v1/tokens/"
FIELDS = {"id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"}


def _with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _signed_in(user, *, enforce_csrf_checks: bool = False) -> APIClient:
    client = APIClient(enforce_csrf_checks=enforce_csrf_checks)
    client.force_login(user)
    return client


@pytest.mark.parametrize("role", ["integrator", "order_staff", "auditor"])
def test_every_role_creates_a_token_shown_once_that_works(api_client_for, role):
    # given
    client = api_client_for(role)

    # when
    response = _signed_in(client.user).post(TOKENS, {"name": "nightly export"}, format="json")

    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == FIELDS | {"token"}
    assert body["name"] == "nightly export"
    assert body["token"].startswith(f"ot_{body['prefix']}_")
    assert body["revoked_at"] is None and body["last_used_at"] is None
    token = ApiToken.objects.get(pk=body["id"])
    assert token.user == client.user
    assert token.expires_at - token.created_at == timedelta(days=90)
    assert _with(body["token"]).get(TOKENS).status_code == 200


def test_a_token_may_be_given_a_lifetime_within_the_maximum(api, settings):
    # given
    settings.API_TOKEN_MAX_DAYS = 30
    session = _signed_in(api.user)

    # when
    ok = session.post(TOKENS, {"name": "short", "days": 30}, format="json")
    too_long = session.post(TOKENS, {"name": "long", "days": 31}, format="json")
    zero = session.post(TOKENS, {"name": "none", "days": 0}, format="json")

    # then
    assert ok.status_code == 201
    token = ApiToken.objects.get(pk=ok.json()["id"])
    assert token.expires_at - token.created_at == timedelta(days=30)
    body = assert_problem(too_long, 400, "validation_error")
    assert body["errors"][0]["attr"] == "days"
    assert "from 1 to 30 days" in body["detail"]
    assert_problem(zero, 400, "validation_error")
    assert ApiToken.objects.filter(user=api.user).count() == 2  # the fixture's and 'short'


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "x" * 101}, {"name": "a", "days": "7"}, {"name": "a", "key": "k"}],
)
def test_a_creation_is_validated_strictly(api, body):
    # when
    response = _signed_in(api.user).post(TOKENS, body, format="json")

    # then
    assert_problem(response, 400, "validation_error")
    assert ApiToken.objects.filter(user=api.user).count() == 1


def test_the_list_shows_only_my_tokens_and_never_a_secret(api_client_for):
    # given
    mine, theirs = api_client_for("integrator"), api_client_for("integrator")
    created = _signed_in(mine.user).post(TOKENS, {"name": "second"}, format="json").json()

    # when
    response = mine.get(TOKENS)

    # then: newest first, cursor-paginated
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"next", "previous", "results"}
    assert [t["name"] for t in body["results"]] == ["second", "test"]
    assert all(set(t) == FIELDS for t in body["results"])
    assert created["token"] not in response.content.decode()
    assert mine.token.digest not in response.content.decode()
    assert theirs.token.prefix not in response.content.decode()


def test_the_list_is_cursor_paginated(api):
    # given
    session = _signed_in(api.user)
    for n in range(3):
        session.post(TOKENS, {"name": f"t{n}"}, format="json")

    # when
    first = api.get(TOKENS, {"page_size": 2}).json()
    second = api.get(first["next"]).json()

    # then
    assert [t["name"] for t in first["results"] + second["results"]] == ["t2", "t1", "t0", "test"]


def test_revoking_my_token_refuses_it_from_the_next_request(api):
    # given
    other = _signed_in(api.user).post(TOKENS, {"name": "ci"}, format="json").json()

    # when
    response = api.post(f"{TOKENS}{other['id']}/revoke/", {}, format="json")

    # then
    assert response.status_code == 200
    assert response.json()["revoked_at"] is not None
    assert_problem(_with(other["token"]).get(TOKENS), 401, "token_revoked")
    assert api.get(TOKENS).status_code == 200  # the caller's own token is untouched


def test_revoking_twice_keeps_the_first_time(api):
    # given: revoked once (the token revoked itself; the user goes on with a session)
    first = api.post(f"{TOKENS}{api.token.pk}/revoke/").json()["revoked_at"]
    client = APIClient()
    client.force_login(api.user)

    # when
    response = client.post(f"{TOKENS}{api.token.pk}/revoke/")

    # then
    assert response.status_code == 200
    assert response.json()["revoked_at"] == first


def test_an_auditor_revokes_their_own_token(api_client_for):
    # given
    auditor = api_client_for("auditor")

    # when
    response = auditor.post(f"{TOKENS}{auditor.token.pk}/revoke/")

    # then
    assert response.status_code == 200
    assert_problem(auditor.get(TOKENS), 401, "token_revoked")


def test_another_users_token_is_404_and_stays_valid(api_client_for):
    # given
    mine, theirs = api_client_for("order_staff"), api_client_for("integrator")

    # when
    response = mine.post(f"{TOKENS}{theirs.token.pk}/revoke/")

    # then
    assert_problem(response, 404, "not_found")
    assert ApiToken.objects.get(pk=theirs.token.pk).revoked_at is None
    assert theirs.get(TOKENS).status_code == 200


@pytest.mark.parametrize("token_id", ["999999", str(2**63), str(2**70)])
def test_an_unknown_token_id_is_404(api, token_id):
    # when
    response = api.post(f"{TOKENS}{token_id}/revoke/")

    # then
    assert_problem(response, 404, "not_found")


def test_revoke_refuses_a_body_it_does_not_know(api):
    # when
    response = api.post(f"{TOKENS}{api.token.pk}/revoke/", {"reason": "x"}, format="json")

    # then
    assert_problem(response, 400, "validation_error")
    assert ApiToken.objects.get(pk=api.token.pk).revoked_at is None


def test_anonymous_and_roleless_callers_manage_no_tokens(api_client_for):
    # given
    roleless = api_client_for(None)

    # then
    assert_problem(APIClient().get(TOKENS), 401, "not_authenticated")
    assert_problem(APIClient().post(TOKENS, {"name": "x"}, format="json"), 401)
    assert_problem(roleless.get(TOKENS), 403, "permission_denied")
    assert_problem(roleless.post(TOKENS, {"name": "x"}, format="json"), 403)


def test_a_revoked_token_cannot_make_new_ones(api):
    # given
    ApiToken.objects.filter(pk=api.token.pk).update(revoked_at=timezone.now())

    # when
    response = api.post(TOKENS, {"name": "escape"}, format="json")

    # then
    assert_problem(response, 401, "token_revoked")
    assert ApiToken.objects.filter(user=api.user).count() == 1


@pytest.mark.parametrize("role", ["integrator", "order_staff", "auditor"])
def test_a_token_cannot_issue_tokens(api_client_for, role):
    # given
    client = api_client_for(role)

    # when
    response = client.post(TOKENS, {"name": "persistence"}, format="json")

    # then
    body = assert_problem(response, 403, "token_cannot_issue_tokens")
    assert "issue_token" in body["detail"]
    assert ApiToken.objects.filter(user=client.user).count() == 1
    assert client.get(TOKENS).status_code == 200  # listing with a token is fine


def test_a_session_creation_needs_the_csrf_token(api_client_for):
    # given: a signed-in staff member whose browser a hostile page makes post
    staff = api_client_for("order_staff")
    session = _signed_in(staff.user, enforce_csrf_checks=True)

    # when
    response = session.post(TOKENS, {"name": "csrf"}, format="json")

    # then
    body = assert_problem(response, 403, "permission_denied")
    assert "CSRF" in body["detail"]
    assert ApiToken.objects.filter(user=staff.user).count() == 1
