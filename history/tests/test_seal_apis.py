"""The seals over HTTP: list, one, consistency proofs, the public key, and the proofs of
an order's and a stock level's chain, checked with the verifier's own functions."""

import hashlib
from datetime import datetime

import pytest
from rest_framework.test import APIClient

from history import ed25519, merkle
from history.audit import Audit
from history.chain import seal_message
from history.models import Source
from history.seals import ledger_seal
from orders.services import order_adjust, order_create
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)  # a seal sees only committed rows

AUDIT = Audit(actor="s", source=Source.API, reason_code="correction")


@pytest.fixture
def three_seals(db):
    ProductFactory(sku="SA-1", track_inventory=False)
    order = order_create(customer_id=None, reference="s", lines={"SA-1": 1}, audit=AUDIT)
    for step in range(3):
        for _ in range(step + 2):
            order_adjust(order_id=order.pk, deltas={"SA-1": 1}, audit=AUDIT)
        ledger_seal()
    return order


def _signed(seal: dict, key: bytes) -> bool:
    message = seal_message(
        number=seal["number"],
        tree_size=seal["tree_size"],
        root=bytes.fromhex(seal["root"]),
        previous_hash=bytes.fromhex(seal["previous_hash"]),
        sealed_at=datetime.fromisoformat(seal["sealed_at"]),
        key_id=seal["key_id"],
    )
    return (
        ed25519.verify(key, message, bytes.fromhex(seal["signature"]))
        and hashlib.sha256(message).hexdigest() == seal["seal_hash"]
    )


def test_the_public_key_needs_no_token_and_checks_every_listed_seal(three_seals, api_client_for):
    # given
    key = APIClient().get("/api/v1/seals/key/")

    # when
    listed = api_client_for("auditor").get("/api/v1/seals/")

    # then: newest first, linked, each signed by that key
    assert key.status_code == 200
    public = bytes.fromhex(key.json()["public_key"])
    seals = listed.json()["results"]
    assert [seal["number"] for seal in seals] == [3, 2, 1]
    assert [seal["tree_size"] for seal in seals] == [10, 6, 3]
    assert all(_signed(seal, public) for seal in seals)
    assert seals[0]["previous_hash"] == seals[1]["seal_hash"]


def test_a_consistency_proof_between_two_seals_verifies(three_seals, api_client_for):
    # when
    response = api_client_for("auditor").get("/api/v1/seals/consistency/?first=1&second=3")

    # then
    body = response.json()
    first, second = body["first"], body["second"]
    proof = [bytes.fromhex(node) for node in body["proof"]]
    assert merkle.verify_consistency(
        first["tree_size"],
        second["tree_size"],
        proof,
        bytes.fromhex(first["root"]),
        bytes.fromhex(second["root"]),
    )


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("first=3&second=1", 400),
        ("first=1&second=9", 404),
        ("first=1", 400),
        ("first=x&second=2", 400),
    ],
)
def test_a_bad_consistency_request_is_refused(three_seals, api_client_for, query, status):
    response = api_client_for("auditor").get(f"/api/v1/seals/consistency/?{query}")
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/problem+json")


def test_an_order_proof_proves_its_last_sealed_row_in_the_latest_tree(three_seals, api_client_for):
    # given: one more change, not sealed yet
    order_adjust(order_id=three_seals.pk, deltas={"SA-1": 1}, audit=AUDIT)

    # when
    proof = api_client_for("integrator").get(f"/api/v1/orders/{three_seals.pk}/proof/").json()

    # then
    sealed, seal = proof["sealed_entry"], proof["seal"]
    assert (proof["unsealed_entries"], seal["number"]) == (1, 3)
    assert proof["head"]["version"] == sealed["version"] + 1
    assert merkle.verify_inclusion(
        sealed["leaf_index"],
        seal["tree_size"],
        merkle.leaf_hash(bytes.fromhex(sealed["hash"])),
        [bytes.fromhex(node) for node in proof["inclusion_proof"]],
        bytes.fromhex(seal["root"]),
    )


def test_proofs_of_what_does_not_exist_or_is_not_sealed(db, api_client_for):
    # given
    ProductFactory(sku="SA-2", track_inventory=False)
    order = order_create(customer_id=None, reference="n", lines={"SA-2": 1}, audit=AUDIT)
    client = api_client_for("auditor")

    # when
    unsealed = client.get(f"/api/v1/orders/{order.pk}/proof/")
    missing = client.get("/api/v1/orders/999999/proof/")
    no_location = client.get("/api/v1/stock/SA-2/proof/")
    anonymous = APIClient().get(f"/api/v1/orders/{order.pk}/proof/")

    # then
    assert unsealed.status_code == 200
    assert (unsealed.json()["seal"], unsealed.json()["unsealed_entries"]) == (None, 1)
    assert missing.status_code == 404
    assert no_location.status_code == 400
    assert anonymous.status_code == 401
