"""Checking the hash chains: does every row of an order (a stock level) still hash to what
it stored, and do the rows still link, one to the next, from the genesis value to the head
the order (level) holds? When not, say which rows and how: a row edited in place, a row
missing (deleted, or the row before it edited and re-hashed), a row inserted beside the
chain, rows out of order, a tail cut off.

`chain_problems` works on one aggregate's rows and needs nothing but the standard library
(the standalone verifier uses it on an export). `chains_problems` walks many aggregates,
streamed in key order by `orders.selectors.order_chain_problems` and
`inventory.selectors.stock_chain_problems`."""

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import pairwise

from history.chain import GENESIS

Row = Mapping[str, object]


def chain_problems(
    rows: Sequence[Row], *, entry_hash: Callable[[bytes, Row], bytes], head: bytes | None
) -> list[str]:
    """What is wrong with one aggregate's chain. `rows` are its ledger rows in id order,
    each with `id`, `prev_hash`, `hash` and the hashed fields; `head` is the hash the
    aggregate says its chain ends at (None: not known, as in an export)."""
    problems = []
    for row in rows:
        # An archived month's rows of the aggregate come as one row that links like its
        # first and ends like its last (history.archive); their hashes are checked there.
        if "archived_to" not in row and entry_hash(row["prev_hash"], row) != row["hash"]:
            problems.append(
                f"row {row['id']} (version {row['version']}) was edited: its content no "
                "longer hashes to its stored hash"
            )
    known = {row["hash"] for row in rows}
    following = defaultdict(list)
    for row in rows:
        following[row["prev_hash"]].append(row)
    starts = [GENESIS]
    for row in rows:
        if row["prev_hash"] != GENESIS and row["prev_hash"] not in known:
            starts.append(row["prev_hash"])
            problems.append(
                f"a row is missing before {_row_name(row)}: it links "
                f"to {row['prev_hash'].hex()[:16]}…, which no row has (deleted, or the row "
                "before it edited and re-hashed)"
            )
    chain, on_chain = [], set()
    for start in starts:
        link = start
        while nexts := [row for row in following[link] if row["id"] not in on_chain]:
            if len(nexts) > 1:
                ids = ", ".join(str(row["id"]) for row in nexts)
                problems.append(f"rows {ids} all link to the same row: all but one were inserted")
            row = min(nexts, key=lambda r: r["id"])
            chain.append(row)
            on_chain.add(row["id"])
            link = row["hash"]
    for row in rows:
        if row["id"] not in on_chain:
            problems.append(f"{_row_name(row)} was inserted beside the chain")
    for before, after in pairwise(chain):
        if after["id"] < before["id"]:
            problems.append(
                f"rows {before['id']} and {after['id']} are out of order: the chain has row "
                f"{before['id']} first"
            )
    end = chain[-1]["hash"] if chain else GENESIS
    if head is not None and head != end:
        last = f"row {chain[-1]['id']}" if chain else "the genesis value"
        problems.append(
            f"the chain ends at {last}, but its head is {head.hex()[:16]}…: rows after it are "
            "missing (a tail cut off)"
            if head not in known
            else f"the chain ends at {last}, but its head is an earlier row: rows were added "
            "after the head"
        )
    return problems


def _row_name(row: Row) -> str:
    if "archived_to" in row:
        return f"the archived rows {row['id']} to {row['archived_to']}"
    return f"row {row['id']} (version {row['version']})"


def ledger_rows(queryset, *, key: Sequence[str], fields: Sequence[str]) -> Iterator[dict]:
    """The chain's view of ledger rows, streamed: id, the aggregate's key, the hashes (as
    bytes) and the hashed fields."""
    for row in queryset.values("id", *key, "prev_hash", "hash", *fields).iterator(2000):
        row["prev_hash"], row["hash"] = bytes(row["prev_hash"]), bytes(row["hash"])
        yield row


def chains_problems(heads, groups, entry_hash) -> Iterator[tuple[object, str]]:
    """(key, problem) for every broken chain: `heads` are (key, head) of the aggregates and
    `groups` (key, rows) of the ledger (itertools.groupby), both in key order."""
    group = next(groups, None)
    for key, head in heads:
        while group is not None and group[0] < key:
            for problem in chain_problems(list(group[1]), entry_hash=entry_hash, head=None):
                yield group[0], problem
            yield group[0], "ledger rows for an aggregate that does not exist"
            group = next(groups, None)
        rows = []
        if group is not None and group[0] == key:
            rows, group = list(group[1]), next(groups, None)
        for problem in chain_problems(rows, entry_hash=entry_hash, head=bytes(head)):
            yield key, problem
    while group is not None:
        yield group[0], "ledger rows for an aggregate that does not exist"
        group = next(groups, None)
