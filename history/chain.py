"""The hash chains of the ledgers: how one ledger row is hashed, so that each row of an
order (or of a stock level) commits to every row before it.

Only the standard library is used, so that an auditor's standalone verifier
(`tools/verify_export.py`) runs this very file. The encoding is version 1 and never
changes; a different one would get a new tag.

The encoding, precisely (README, "Audit and verification"):

    hash = SHA-256( lp(tag) || prev_hash || lp(field_1) || ... || lp(field_n) )

- `lp(x)` is the UTF-8 bytes of the text `x`, preceded by their length as a 4-byte
  big-endian unsigned integer.
- `tag` is `ordertrack/order-ledger/v1` or `ordertrack/stock-ledger/v1`.
- `prev_hash` is the 32-byte hash of the previous row of the same order (stock level), or
  32 zero bytes (`GENESIS`) for its first row.
- The fields are those of `ORDER_FIELDS` or `STOCK_FIELDS`, in that order, as text:
  integers in base 10 with a leading `-` when negative, the event id as a lowercase
  hyphenated UUID, `occurred_at` in UTC as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (always six
  digits of microseconds), every other field as stored (an empty text when blank).

A seal (history.seals) signs `seal_message`, encoded the same way.
"""

import hashlib
import struct
from collections.abc import Mapping
from datetime import UTC, datetime

GENESIS = bytes(32)
ORDER_TAG = "ordertrack/order-ledger/v1"
STOCK_TAG = "ordertrack/stock-ledger/v1"

ORDER_FIELDS = (
    "event_id",
    "order_id",
    "version",
    "event_type",
    "sku",
    "delta",
    "quantity_before",
    "quantity_after",
    "actor",
    "source",
    "reason_code",
    "reason",
    "occurred_at",
    "correlation_id",
    "idempotency_key",
)
STOCK_FIELDS = (
    "event_id",
    "sku",
    "location_code",
    "version",
    "movement",
    "delta_on_hand",
    "delta_reserved",
    "delta_in_transit",
    "delta_backorder",
    "on_hand_after",
    "reserved_after",
    "in_transit_after",
    "backorder_after",
    "reference_type",
    "reference_id",
    "actor",
    "source",
    "reason_code",
    "reason",
    "occurred_at",
    "correlation_id",
    "idempotency_key",
)


def timestamp_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lp(value: object) -> bytes:
    text = timestamp_text(value) if isinstance(value, datetime) else str(value)
    data = text.encode()
    return struct.pack(">I", len(data)) + data


def entry_hash(tag: str, prev_hash: bytes, values) -> bytes:
    """The hash of a row whose field values (in the tag's field order) are `values`."""
    if len(prev_hash) != 32:
        raise ValueError("a previous hash is 32 bytes")
    return hashlib.sha256(b"".join([_lp(tag), prev_hash, *map(_lp, values)])).digest()


def order_entry_hash(prev_hash: bytes, row: Mapping[str, object]) -> bytes:
    return entry_hash(ORDER_TAG, prev_hash, [row[name] for name in ORDER_FIELDS])


def stock_entry_hash(prev_hash: bytes, row: Mapping[str, object]) -> bytes:
    return entry_hash(STOCK_TAG, prev_hash, [row[name] for name in STOCK_FIELDS])


SEAL_TAG = "ordertrack/seal/v1"


def seal_message(
    *,
    number: int,
    tree_size: int,
    root: bytes,
    previous_hash: bytes,
    sealed_at: datetime,
    key_id: str,
) -> bytes:
    """The bytes a seal's signature covers; its `seal_hash` is their SHA-256, and the next
    seal links to that. Encoded like a ledger row: lp(tag) then each field as text, the
    hashes in lowercase hex."""
    fields = (number, tree_size, root.hex(), previous_hash.hex(), sealed_at, key_id)
    return b"".join([_lp(SEAL_TAG), *map(_lp, fields)])
