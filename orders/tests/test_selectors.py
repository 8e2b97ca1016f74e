import pytest

from orders.apis import OrderOutput
from orders.selectors import order_get, order_representation
from tests.factories import CustomerFactory, ProductFactory

pytestmark = pytest.mark.django_db


def test_the_one_query_representation_equals_the_serializer_output(
    make_order, django_assert_num_queries
):
    # given
    order = make_order(
        lines={ProductFactory().sku: 3, ProductFactory().sku: 0}, customer=CustomerFactory()
    )

    # when
    with django_assert_num_queries(1):
        fast = order_representation(order_id=order.pk)

    # then
    assert fast == OrderOutput(order_get(order_id=order.pk)).data
