"""The admin login limiter (django-axes) through the real admin login view: the
AXES_FAILURE_LIMIT-th (5th) failed login of one username from one address locks that pair
out (429) for the cool-off; the next attempt is refused even with the right password."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.urls import reverse

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

LOGIN = reverse("admin:login")
PASSWORD = "pw-for-tests-1"  # tests.factories.UserFactory's
HERE, THERE = "192.0.2.60", "192.0.2.61"


@pytest.fixture
def staff():
    return UserFactory(username="stella", role="order_staff")


def login(client, username: str, password: str, address: str = HERE):
    return client.post(
        LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=address
    )


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_the_sixth_failed_admin_login_is_locked_out_even_with_the_right_password(client, staff):
    # given: five failures
    failures = [login(client, "stella", "wrong").status_code for _ in range(5)]

    # when
    response = login(client, "stella", PASSWORD)

    # then: the form again after each of the first four; the fifth failure locks the pair
    assert failures == [200, 200, 200, 200, 429]
    assert response.status_code == 429
    assert "Account locked" in response.content.decode()
    assert not logged_in(client)


def test_the_fifth_failure_is_still_a_failure_and_a_right_password_then_works(client, staff):
    # given
    for _ in range(4):
        login(client, "stella", "wrong")

    # when
    response = login(client, "stella", PASSWORD)

    # then
    assert response.status_code == 302
    assert logged_in(client)


def test_a_successful_login_clears_the_count(client, staff):
    # given: four failures, then a login
    for _ in range(4):
        login(client, "stella", "wrong")
    assert login(client, "stella", PASSWORD).status_code == 302
    client.logout()

    # when: four more failures
    for _ in range(4):
        login(client, "stella", "wrong")

    # then
    assert login(client, "stella", PASSWORD).status_code == 302


def test_the_lockout_is_per_username_and_address(client, staff):
    # given: stella is locked out from HERE
    UserFactory(username="otto", role="order_staff")
    for _ in range(5):
        login(client, "stella", "wrong")
    assert login(client, "stella", PASSWORD).status_code == 429

    # then: stella from THERE, and otto from HERE, may log in
    assert login(client, "stella", PASSWORD, THERE).status_code == 302
    client.logout()
    assert login(client, "otto", PASSWORD).status_code == 302


def test_a_forged_forwarded_for_header_does_not_escape_the_lockout(client, staff):
    # given
    for _ in range(5):
        login(client, "stella", "wrong")

    # when: no proxy in front (NUM_PROXIES=0), so the header is not believed
    response = client.post(
        LOGIN,
        {"username": "stella", "password": PASSWORD, "next": "/admin/"},
        REMOTE_ADDR=HERE,
        HTTP_X_FORWARDED_FOR="198.51.100.1",
    )

    # then
    assert response.status_code == 429


def test_after_the_cool_off_the_pair_may_log_in_again(client, staff, settings):
    # given: locked out
    for _ in range(5):
        login(client, "stella", "wrong")
    assert login(client, "stella", PASSWORD).status_code == 429

    # when: the cool-off has passed since the last failure
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.get().attempt_time
        - settings.AXES_COOLOFF_TIME
        - timedelta(seconds=1)
    )

    # then
    assert login(client, "stella", PASSWORD).status_code == 302


def test_the_failure_limit_is_a_setting(client, staff, settings):
    # given
    settings.AXES_FAILURE_LIMIT = 2

    # when
    failures = [login(client, "stella", "wrong").status_code for _ in range(2)]

    # then
    assert failures == [200, 429]
    assert login(client, "stella", PASSWORD).status_code == 429


def test_superusers_see_attempts_and_lockouts_in_the_admin(client, admin_client, staff):
    # given
    for _ in range(5):
        login(client, "stella", "wrong")

    # when
    response = admin_client.get(reverse("admin:axes_accessattempt_changelist"))

    # then
    assert response.status_code == 200
    page = response.content.decode()
    assert "stella" in page and HERE in page


def test_a_superuser_unlocks_a_pair_by_deleting_its_attempt(client, admin_client, staff):
    # given: stella is locked out
    for _ in range(5):
        login(client, "stella", "wrong")
    attempt = AccessAttempt.objects.get(username="stella")

    # when
    admin_client.post(
        reverse("admin:axes_accessattempt_changelist"),
        {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"},
    )

    # then
    assert not AccessAttempt.objects.exists()
    assert login(client, "stella", PASSWORD).status_code == 302
