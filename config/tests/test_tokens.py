"""The token services (config.tokens): the token string, its lifetime, a taken prefix."""

import secrets
from types import SimpleNamespace

import pytest

from config import tokens
from config.errors import DomainValidationError
from config.models import ApiToken
from config.roles import Role
from config.tokens import api_token_create, api_tokens_revoke, token_parse
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("key", "parsed"),
    [
        ("ot_abcd1234_" + "s" * 43, ("abcd1234", "s" * 43)),
        ("ot_abcd1234_with_under_scores-and-dashes-0123456789", ("abcd1234", None)),
        ("ot_abcd1234_short", None),
        ("ot_ABCD1234_" + "s" * 43, None),
        ("ot_abc_" + "s" * 43, None),
        ("xx_abcd1234_" + "s" * 43, None),
        ("0" * 40, None),
    ],
)
def test_token_strings_parse(key, parsed):
    # when
    result = token_parse(key)

    # then
    if parsed is None:
        assert result is None
    elif parsed[1] is None:  # the secret may hold '_' (base64url)
        assert result == ("abcd1234", key.split("_", 2)[2])
    else:
        assert result == parsed


def test_a_taken_prefix_is_drawn_again(monkeypatch):
    # given: a token holds the prefix 'aaaaaaaa', and the next draw would repeat it
    user = UserFactory(role=Role.INTEGRATOR)
    first = api_token_create(user=user, name="first")
    ApiToken.objects.filter(pk=first.token.pk).update(prefix="aaaaaaaa")
    draws = iter("a" * 8 + "b" * 8)
    monkeypatch.setattr(
        tokens,
        "secrets",
        SimpleNamespace(choice=lambda _: next(draws), token_urlsafe=secrets.token_urlsafe),
    )

    # when
    issued = api_token_create(user=user, name="second")

    # then
    assert issued.token.prefix == "bbbbbbbb"
    assert issued.key.startswith("ot_bbbbbbbb_")


@pytest.mark.parametrize("days", [0, -1, 366])
def test_a_lifetime_outside_1_to_the_maximum_is_refused(days):
    # when / then
    with pytest.raises(DomainValidationError, match="from 1 to 365 days"):
        api_token_create(user=UserFactory(), name="x", days=days)
    assert not ApiToken.objects.exists()


def test_revoking_only_touches_the_given_users_tokens():
    # given
    alice, bob = UserFactory(), UserFactory()
    mine, theirs = api_token_create(user=alice, name="a"), api_token_create(user=bob, name="b")

    # when
    revoked = api_tokens_revoke(token_ids=[mine.token.pk, theirs.token.pk], user=alice)

    # then
    assert revoked == 1
    assert ApiToken.objects.get(pk=mine.token.pk).revoked_at is not None
    assert ApiToken.objects.get(pk=theirs.token.pk).revoked_at is None
