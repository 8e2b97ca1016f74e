"""The chain's encoding (history/chain.py) against a literal reading of its specification,
for any field values: the faster code must give the very bytes version 1 defines."""

import hashlib
import struct
import uuid
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from history.chain import ORDER_FIELDS, ORDER_TAG, entry_hash, order_entry_hash, timestamp_text


def _spec_lp(value) -> bytes:
    if isinstance(value, datetime):
        text = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    else:
        text = str(value)
    data = text.encode("utf-8")
    return struct.pack(">I", len(data)) + data


def _spec_hash(tag: str, prev_hash: bytes, values) -> bytes:
    return hashlib.sha256(
        _spec_lp(tag) + prev_hash + b"".join(_spec_lp(value) for value in values)
    ).digest()


zones = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-14 * 60, 14 * 60)
)
moments = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 30), timezones=zones
)
values = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.text(max_size=40),
    st.uuids(),
    moments,
)


@given(moments)
def test_timestamps_are_the_specified_text(moment):
    assert timestamp_text(moment) == moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@given(st.lists(values, min_size=0, max_size=25), st.binary(min_size=32, max_size=32))
def test_a_rows_hash_is_the_specified_one(row_values, prev_hash):
    assert entry_hash(ORDER_TAG, prev_hash, row_values) == _spec_hash(
        ORDER_TAG, prev_hash, row_values
    )


def test_an_order_rows_hash_is_the_specified_one():
    row = dict.fromkeys(ORDER_FIELDS, "")
    row |= {
        "event_id": uuid.UUID(int=7),
        "order_id": 42,
        "version": 3,
        "delta": -5,
        "occurred_at": datetime(2026, 11, 28, 21, 30, 0, 1, tzinfo=UTC),
    }
    expected = _spec_hash(ORDER_TAG, bytes(32), [row[name] for name in ORDER_FIELDS])
    assert order_entry_hash(bytes(32), row) == expected
