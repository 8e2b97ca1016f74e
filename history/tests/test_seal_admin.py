"""The seals in the admin: staff and auditors read them, nobody changes them."""

import pytest
from django.urls import reverse

from history.audit import Audit
from history.models import LedgerSeal, Source
from history.seals import ledger_seal
from orders.services import order_create
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)  # a seal sees only committed rows


@pytest.mark.parametrize("role", ["auditor", "order_staff"])
def test_auditors_and_staff_read_the_seals_but_cannot_change_them(client, user_with_role, role):
    # given: one seal
    ProductFactory(sku="SEAL-ADM")
    audit = Audit(actor="a", source=Source.API)
    order_create(customer_id=None, reference="s", lines={"SEAL-ADM": 2}, audit=audit)
    seal = ledger_seal()
    client.force_login(user_with_role(role))
    change = reverse("admin:history_ledgerseal_change", args=[seal.pk])

    # when
    listed = client.get(reverse("admin:history_ledgerseal_changelist"))
    viewed = client.get(change)
    changed = client.post(change, {"tree_size": 99})

    # then: the full hashes are on the page, and nothing moved
    assert (listed.status_code, viewed.status_code, changed.status_code) == (200, 200, 403)
    assert list(listed.context["cl"].result_list) == [seal]
    page = viewed.content.decode()
    assert bytes(seal.root).hex() in page and bytes(seal.signature).hex() in page
    assert LedgerSeal.objects.get().tree_size == 1
