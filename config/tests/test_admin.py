"""API tokens in the admin: staff (and superusers) list every user's tokens and revoke them,
auditors look, nobody adds or edits one or sees a secret."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from config.models import ApiToken
from config.tokens import api_token_create
from tests.factories import UserFactory
from tests.problems import assert_problem

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:config_apitoken_changelist"
REVOKE = "revoke"


@pytest.fixture
def tokens():
    alice = UserFactory(username="alice", role="integrator")
    bob = UserFactory(username="bob", role="auditor")
    erp = api_token_create(user=alice, name="erp-sync")
    export = api_token_create(user=bob, name="nightly-export")
    old = api_token_create(user=alice, name="old-script")
    past = timezone.now() - timedelta(days=400)
    ApiToken.objects.filter(pk=old.token.pk).update(
        created_at=past, expires_at=past + timedelta(days=90)
    )
    gone = api_token_create(user=bob, name="laptop")
    ApiToken.objects.filter(pk=gone.token.pk).update(revoked_at=timezone.now())
    return {"erp": erp, "export": export, "old": old, "gone": gone}


def names(response) -> list[str]:
    return sorted(token.name for token in response.context["cl"].result_list)


def action_choices(response) -> list[str]:
    form = response.context["action_form"]
    return [] if form is None else [name for name, _ in form.fields["action"].choices]


@pytest.mark.parametrize("role", ["order_staff", "superuser"])
def test_staff_see_every_users_tokens_and_may_revoke(client, tokens, role):
    # given
    if role == "superuser":
        client.force_login(UserFactory(is_superuser=True, is_staff=True))
    else:
        client.force_login(UserFactory(role=role))

    # when
    response = client.get(reverse(CHANGELIST))

    # then
    assert response.status_code == 200
    assert names(response) == ["erp-sync", "laptop", "nightly-export", "old-script"]
    assert REVOKE in action_choices(response)
    assert "delete_selected" not in action_choices(response)
    page = response.content.decode()
    for issued in tokens.values():
        assert issued.key not in page
        assert issued.token.digest not in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"q": "alice"}, ["erp-sync", "old-script"]),
        ({"q": "nightly"}, ["nightly-export"]),
        ({"revoked": "yes"}, ["laptop"]),
        ({"revoked": "no"}, ["erp-sync", "nightly-export", "old-script"]),
        ({"expired": "yes"}, ["old-script"]),
        ({"expired": "no", "revoked": "no"}, ["erp-sync", "nightly-export"]),
    ],
)
def test_staff_search_and_filter_tokens(admin_client, tokens, query, expected):
    # when
    response = admin_client.get(reverse(CHANGELIST), query)

    # then
    assert names(response) == expected


def test_staff_search_by_prefix(admin_client, tokens):
    # when
    response = admin_client.get(reverse(CHANGELIST), {"q": tokens["export"].token.prefix})

    # then
    assert names(response) == ["nightly-export"]


def test_staff_revoke_tokens_with_the_action_and_they_are_refused_at_once(client, tokens):
    # given
    client.force_login(UserFactory(role="order_staff"))
    erp, gone = tokens["erp"], tokens["gone"]
    revoked_before = ApiToken.objects.get(pk=gone.token.pk).revoked_at

    # when
    response = client.post(
        reverse(CHANGELIST),
        {"action": REVOKE, "_selected_action": [erp.token.pk, gone.token.pk]},
        follow=True,
    )

    # then
    assert response.status_code == 200
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Revoked 1 token(s); they are refused from the next request on.",
        "1 selected token(s) were already revoked.",
    ]
    assert ApiToken.objects.get(pk=erp.token.pk).revoked_at is not None
    assert ApiToken.objects.get(pk=gone.token.pk).revoked_at == revoked_before
    assert_problem(
        client.get("/api/v1/orders/", HTTP_AUTHORIZATION=f"Token {erp.key}"), 401, "token_revoked"
    )


def test_auditors_see_tokens_but_cannot_revoke_them(client, tokens):
    # given
    client.force_login(UserFactory(role="auditor"))
    erp = tokens["erp"]

    # when
    page = client.get(reverse(CHANGELIST))
    post = client.post(reverse(CHANGELIST), {"action": REVOKE, "_selected_action": [erp.token.pk]})

    # then
    assert page.status_code == 200
    assert len(names(page)) == 4
    assert REVOKE not in action_choices(page)
    assert post.status_code in (200, 302)
    assert ApiToken.objects.get(pk=erp.token.pk).revoked_at is None


def test_integrators_have_no_admin(client, tokens):
    # given
    client.force_login(UserFactory(role="integrator"))

    # when
    response = client.get(reverse(CHANGELIST))

    # then: not staff: sent to the login page
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_nobody_adds_edits_or_deletes_a_token_in_the_admin(admin_client, tokens):
    # given
    token = tokens["erp"].token

    # when
    add_page = admin_client.get(reverse("admin:config_apitoken_add"))
    change_post = admin_client.post(
        reverse("admin:config_apitoken_change", args=[token.pk]),
        {"name": "renamed", "expires_at": "2099-01-01 00:00:00"},
    )
    delete_post = admin_client.post(
        reverse("admin:config_apitoken_delete", args=[token.pk]), {"post": "yes"}
    )
    view_page = admin_client.get(reverse("admin:config_apitoken_change", args=[token.pk]))

    # then: the superuser too; the token's page is read-only and shows no secret
    assert [add_page.status_code, change_post.status_code, delete_post.status_code] == [
        403,
        403,
        403,
    ]
    assert ApiToken.objects.get(pk=token.pk).name == "erp-sync"
    assert view_page.status_code == 200
    page = view_page.content.decode()
    assert f"ot_{token.prefix}_" in page
    assert tokens["erp"].key not in page and token.digest not in page
    assert 'name="_save"' not in page


def test_the_roles_hold_the_token_permissions():
    # then
    def codenames(role: str) -> set[str]:
        return set(
            Group.objects.get(name=role)
            .permissions.filter(content_type__app_label="config")
            .values_list("codename", flat=True)
        )

    assert codenames("order_staff") == {"view_apitoken", "revoke_apitoken"}
    assert codenames("auditor") == {"view_apitoken"}
    assert codenames("integrator") == set()
