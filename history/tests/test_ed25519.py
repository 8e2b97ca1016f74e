"""history.ed25519 (standard library only) against RFC 8032's test vectors and against the
`cryptography` package that signs the seals: what one signs, the other accepts, and no
changed key, message or signature passes."""

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from history import ed25519

RFC_8032 = [  # (public key, message, signature): section 7.1, TEST 1 and TEST 2
    ("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e"
     "39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f"
     "3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
]  # fmt: skip


def _flip(value: bytes, at: int = 0) -> bytes:
    return value[:at] + bytes([value[at] ^ 1]) + value[at + 1 :]


@pytest.mark.parametrize(("key", "message", "signature"), RFC_8032)
def test_the_rfc_vectors_verify_and_their_changes_do_not(key, message, signature):
    key, message, signature = (bytes.fromhex(v) for v in (key, message, signature))

    assert ed25519.verify(key, message, signature)
    assert not ed25519.verify(key, message + b"x", signature)
    assert not ed25519.verify(key, message, _flip(signature))
    assert not ed25519.verify(key, message, _flip(signature, 40))
    assert not ed25519.verify(_flip(key), message, signature)


def test_malformed_input_is_refused_not_raised():
    key, _, signature = (bytes.fromhex(v) for v in RFC_8032[0])
    order = 2**252 + 27742317777372353535851937790883648493
    too_big_s = signature[:32] + order.to_bytes(32, "little")

    assert not ed25519.verify(key[:31], b"", signature)
    assert not ed25519.verify(key, b"", signature[:63])
    assert not ed25519.verify(key, b"", too_big_s)
    assert not ed25519.verify(b"\xff" * 32, b"", signature)  # not a point


def _public(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@settings(max_examples=25, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=200))
def test_what_cryptography_signs_verifies_here(seed, message):
    # given
    private = Ed25519PrivateKey.from_private_bytes(seed)
    other = Ed25519PrivateKey.from_private_bytes(_flip(seed))
    signature = private.sign(message)

    # then
    assert ed25519.verify(_public(private), message, signature)
    assert not ed25519.verify(_public(other), message, signature)
    assert not ed25519.verify(_public(private), message + b"\x00", signature)
