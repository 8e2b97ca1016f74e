import pytest
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db


def test_a_known_token_costs_no_query_after_the_first_request(
    api, make_order, product, django_assert_max_num_queries
):
    # given
    order = make_order(lines={product.sku: 1})
    api.get(f"/api/v1/orders/{order.pk}/")

    # when / then: served from the order cache, with the token and roles cached too
    with django_assert_max_num_queries(0):
        response = api.get(f"/api/v1/orders/{order.pk}/")
    assert response.status_code == 200


def test_a_deleted_token_is_refused_once_its_cache_entry_expires(
    api, make_order, product, monkeypatch
):
    # given: the token was used, then deleted
    import time

    from config.api import authentication

    order = make_order(lines={product.sku: 1})
    assert api.get(f"/api/v1/orders/{order.pk}/").status_code == 200
    Token.objects.filter(user=api.user).delete()

    # when / then: accepted while cached, refused after AUTH_CACHE_SECONDS
    assert api.get(f"/api/v1/orders/{order.pk}/").status_code == 200
    later = time.monotonic() + 31
    monkeypatch.setattr(authentication, "_clock", lambda: later)
    assert api.get(f"/api/v1/orders/{order.pk}/").status_code == 401


def test_an_unknown_token_is_401(client):
    response = client.get("/api/v1/orders/", HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
