"""Seals: signed checkpoints that make the ledgers tamper-evident to someone who does not
trust the server.

The rows of both ledgers form one log, in the order seals take them in: each seal appends
the rows committed since the previous seal (by transaction snapshot, as the projector
reads them: order ledger rows by id, then stock ledger rows by id). The log is a Merkle
tree as Certificate Transparency builds it (RFC 9162), whose leaves are the rows' chain
hashes (history.chain). A seal stores the tree's size and head, links to the previous seal
by its hash, and is signed with Ed25519. Signed tree heads, inclusion proofs (this row is in
that tree) and consistency proofs (this later tree extends that one) let an auditor check,
offline, that what they were shown is what was sealed, and that nothing sealed has changed.

A seal keeps the tree's frontier, so sealing reads only the new rows, and a proof reads only
the rows of the seals it spans."""

import base64
import hashlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import BooleanField, CharField, F, Func, Value
from django.utils import timezone

from config.errors import LedgerArchived
from config.tracing import traced
from history import merkle
from history.chain import GENESIS, seal_message, timestamp_text
from history.models import LedgerSeal, OrderLedgerEntry, StockLedgerEntry
from history.projector import committed_between_sql

logger = logging.getLogger(__name__)

NOTHING_SEEN = "1:1:"  # the snapshot before any transaction
_SEAL_LOCK = 0x5EA1  # advisory lock: one sealer at a time
LEDGERS = (OrderLedgerEntry, StockLedgerEntry)  # in the order a seal takes their rows


# --- The signing key --------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    public: bytes  # raw, 32 bytes
    key_id: str  # SHA-256 of the raw public key, hex

    @property
    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )


@cache
def signing_key() -> SigningKey:
    """The key seals are signed with: LEDGER_SIGNING_KEY (PEM), else the file
    LEDGER_SIGNING_KEY_FILE, else (when allowed) a new key written to that file."""
    pem = settings.LEDGER_SIGNING_KEY.encode()
    path = Path(settings.LEDGER_SIGNING_KEY_FILE)
    if not pem and path.exists():
        pem = path.read_bytes()
    if not pem:
        if not settings.LEDGER_SIGNING_KEY_GENERATE:
            raise ImproperlyConfigured(
                "Set LEDGER_SIGNING_KEY (an Ed25519 private key in PEM) or "
                "LEDGER_SIGNING_KEY_FILE: the ledger's seals are signed with it."
            )
        pem = _generate(path)
    private = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(private, Ed25519PrivateKey):
        raise ImproperlyConfigured("LEDGER_SIGNING_KEY must be an Ed25519 private key.")
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return SigningKey(private, public, hashlib.sha256(public).hexdigest())


def _generate(path: Path) -> bytes:
    """A new key in `path`, readable by its owner only. Whoever links the file first wins,
    so concurrent processes end up with one key."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    try:
        os.link(draft, path)
        logger.warning(
            "No LEDGER_SIGNING_KEY set: generated a new Ed25519 key for the ledger seals in "
            "%s. Keep it: seals signed with it can only be checked with its public key.",
            path,
        )
    except FileExistsError:
        pem = path.read_bytes()
    finally:
        draft.unlink()
    return pem


def public_key_document() -> dict:
    key = signing_key()
    return {
        "algorithm": "Ed25519",
        "key_id": key.key_id,
        "public_key": key.public.hex(),
        "public_key_base64": base64.b64encode(key.public).decode(),
        "pem": key.public_pem,
    }


# --- Sealing ------------------------------------------------------------------------------------


def _batch_hashes(
    previous: str, current: str, archived: Mapping[str, str] | None = None
) -> list[bytes]:
    """The chain hashes of the rows committed after snapshot `previous` and by `current`,
    in log order. `archived` names, per ledger table, a table of (id, txid, hash) of its
    archived rows to count in (history.archive.archive_problems)."""
    where, params = committed_between_sql(previous, current)
    hashes: list[bytes] = []
    with connection.cursor() as cursor:
        for ledger in LEDGERS:
            table = ledger._meta.db_table
            if archived and table in archived:
                table = (
                    f"(SELECT id, txid, hash FROM {table} UNION ALL "
                    f"SELECT id, txid, hash FROM {archived[table]}) AS rows"
                )
            cursor.execute(f"SELECT hash FROM {table} WHERE {where} ORDER BY id", params)
            hashes.extend(bytes(row[0]) for row in cursor.fetchall())
    return hashes


def _frontier(seal: LedgerSeal | None) -> list[bytes]:
    if seal is None:
        return []
    data = bytes(seal.frontier)
    return [data[n : n + 32] for n in range(0, len(data), 32)]


@traced
def ledger_seal() -> LedgerSeal | None:
    """Seal the rows committed since the last seal; None when there are none. One sealer at
    a time (an advisory lock); safe to run from beat and by hand at once."""
    key = signing_key()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SEAL_LOCK])
            cursor.execute("SELECT pg_current_snapshot()::text")
            snapshot = cursor.fetchone()[0]
        previous = LedgerSeal.objects.order_by("-number").first()
        hashes = _batch_hashes(previous.snapshot if previous else NOTHING_SEEN, snapshot)
        if not hashes:
            return None
        start = previous.tree_size if previous else 0
        frontier = merkle.frontier_extend(_frontier(previous), start, map(merkle.leaf_hash, hashes))
        seal = LedgerSeal(
            number=previous.number + 1 if previous else 1,
            tree_size=start + len(hashes),
            batch_size=len(hashes),
            root=merkle.frontier_root(frontier),
            frontier=b"".join(frontier),
            previous_hash=bytes(previous.seal_hash) if previous else GENESIS,
            sealed_at=timezone.now(),
            snapshot=snapshot,
            snapshot_xmax=int(snapshot.split(":")[1]),
            key_id=key.key_id,
        )
        message = _message(seal)
        seal.seal_hash = hashlib.sha256(message).digest()
        seal.signature = key.private.sign(message)
        seal.save(force_insert=True)
    return seal


def _message(seal: LedgerSeal) -> bytes:
    return seal_message(
        number=seal.number,
        tree_size=seal.tree_size,
        root=bytes(seal.root),
        previous_hash=bytes(seal.previous_hash),
        sealed_at=seal.sealed_at,
        key_id=seal.key_id,
    )


def seal_document(seal: LedgerSeal) -> dict:
    """A seal as the API serves it and the standalone verifier reads it."""
    return {
        "number": seal.number,
        "tree_size": seal.tree_size,
        "batch_size": seal.batch_size,
        "root": bytes(seal.root).hex(),
        "previous_hash": bytes(seal.previous_hash).hex(),
        "seal_hash": bytes(seal.seal_hash).hex(),
        "sealed_at": timestamp_text(seal.sealed_at),
        "key_id": seal.key_id,
        "algorithm": "Ed25519",
        "signature": bytes(seal.signature).hex(),
    }


# --- Proofs ---------------------------------------------------------------------------------


def seal_before(seal: LedgerSeal) -> LedgerSeal | None:
    return LedgerSeal.objects.filter(number=seal.number - 1).first()


def sees(txid, snapshot) -> Func:
    """Whether the transaction `txid` had committed when `snapshot` was taken (both
    expressions): the test of which seal covers a ledger row."""
    return Func(
        Func(txid, template="%(expressions)s::text::xid8", output_field=CharField()),
        Func(snapshot, template="%(expressions)s::pg_snapshot", output_field=CharField()),
        function="pg_visible_in_snapshot",
        output_field=BooleanField(),
    )


def seal_covering(*, txid: int) -> LedgerSeal | None:
    """The first seal whose snapshot sees the transaction `txid`: the one that sealed its
    rows."""
    return (
        LedgerSeal.objects.filter(snapshot_xmax__gt=txid)
        .filter(sees(Value(txid), F("snapshot")))
        .order_by("snapshot_xmax", "number")  # xmax grows with the number: the index stops early
        .first()
    )


def _leaves_between(first: LedgerSeal | None, last: LedgerSeal) -> list[bytes]:
    """The leaf hashes the seals after `first` up to `last` added, in log order."""
    seals = LedgerSeal.objects.filter(
        number__gt=first.number if first else 0, number__lte=last.number
    ).order_by("number")
    leaves, previous = [], first.snapshot if first else NOTHING_SEEN
    for seal in seals.only("number", "snapshot"):
        leaves.extend(map(merkle.leaf_hash, _batch_hashes(previous, seal.snapshot)))
        previous = seal.snapshot
    return leaves


def consistency(first: LedgerSeal, second: LedgerSeal) -> list[bytes]:
    """The RFC 9162 consistency proof from seal `first`'s tree to seal `second`'s."""
    if second.number <= first.number:
        return []
    leaves = _leaves_between(first, second)
    if len(leaves) != second.tree_size - first.tree_size:
        raise _not_in_database(first.number + 1, second.number)
    return merkle.consistency_proof_after(_frontier(first), first.tree_size, leaves)


def _not_in_database(first: int, last: int) -> LedgerArchived:
    """A proof needs the rows of these seals, and some are not in the ledgers any more:
    archived (history.archive), or deleted (verify_ledger says which)."""
    seals = f"seal {first}" if first == last else f"seals {first} to {last}"
    return LedgerArchived(
        f"The proof needs every row {seals} covered, and some are no longer in the database: "
        "they are in an archived month (ledger_restore brings it back), or were deleted "
        "(verify_ledger names them)."
    )


@dataclass(frozen=True)
class EntryProof:
    seal: LedgerSeal
    leaf_index: int
    inclusion: list[bytes]
    latest: LedgerSeal
    consistency: list[bytes]


def entry_proof(*, entry_hash: bytes, txid: int) -> EntryProof | None:
    """Where a sealed ledger row sits in the log: the seal that added it, its leaf index and
    inclusion proof there, and the consistency proof from that seal to the latest. None if
    no seal covers it yet."""
    seal = seal_covering(txid=txid)
    if seal is None:
        return None
    previous = seal_before(seal)
    batch = _batch_hashes(previous.snapshot if previous else NOTHING_SEEN, seal.snapshot)
    if len(batch) != seal.batch_size:
        raise _not_in_database(seal.number, seal.number)
    start = previous.tree_size if previous else 0
    index = start + batch.index(entry_hash)
    leaves = [merkle.leaf_hash(h) for h in batch]
    inclusion = merkle.inclusion_proof_after(index, _frontier(previous), start, leaves)
    latest = LedgerSeal.objects.order_by("-number").first()
    return EntryProof(seal, index, inclusion, latest, consistency(seal, latest))


# --- Verification ---------------------------------------------------------------------------


def seal_problems(*, archived: Mapping[str, str] | None = None) -> Iterator[str]:
    """Rebuild every seal from the rows in the ledgers now (and in `archived`, see
    _batch_hashes) and say where they differ: rows sealed then and missing, changed or
    added now; a seal edited, unlinked from the one before, or whose signature fails."""
    key = signing_key()
    previous: LedgerSeal | None = None
    frontier: list[bytes] = []
    for seal in LedgerSeal.objects.order_by("number").iterator(100):
        name = f"seal {seal.number}"
        expected = previous.number + 1 if previous else 1
        if seal.number != expected:
            yield f"{name}: seal {expected} is missing before it"
        start = previous.tree_size if previous else 0
        hashes = _batch_hashes(
            previous.snapshot if previous else NOTHING_SEEN, seal.snapshot, archived
        )
        if len(hashes) != seal.batch_size or start + seal.batch_size != seal.tree_size:
            change = "deleted" if len(hashes) < seal.batch_size else "added"
            yield (
                f"{name}: sealed {seal.batch_size} rows, the ledgers now hold {len(hashes)} "
                f"of them: rows were {change} after it was sealed"
            )
        computed = merkle.frontier_extend(frontier, start, map(merkle.leaf_hash, hashes))
        stored = _frontier(seal)
        if merkle.frontier_root(computed) != bytes(seal.root):
            yield (
                f"{name}: the rows it covers no longer make its root: a sealed row was "
                "changed, removed or added"
            )
        if (
            merkle.frontier_root(stored) != bytes(seal.root)
            or len(stored) != seal.tree_size.bit_count()
        ):
            yield f"{name}: its stored frontier does not match its root"
        # Go on from what was sealed, so one break is reported once, not at every later seal.
        frontier = computed if merkle.frontier_root(computed) == bytes(seal.root) else stored
        message = _message(seal)
        if hashlib.sha256(message).digest() != bytes(seal.seal_hash):
            yield f"{name}: its fields no longer hash to its seal hash: the seal was edited"
        if bytes(seal.previous_hash) != (bytes(previous.seal_hash) if previous else GENESIS):
            yield f"{name}: it does not link to the seal before it"
        if seal.key_id != key.key_id:
            yield f"{name}: signed by key {seal.key_id[:16]}…, not the configured key"
        else:
            try:
                key.private.public_key().verify(bytes(seal.signature), message)
            except InvalidSignature:
                yield f"{name}: its signature does not verify"
        previous = seal


NO_LEDGER_ROWS = {
    "head": None,
    "sealed_entry": None,
    "unsealed_entries": 0,
    "seal": None,
    "inclusion_proof": [],
    "latest_seal": None,
    "consistency_proof": [],
}


def chain_proof(*, entries) -> dict | None:
    """The proof document of one aggregate's chain (`entries`: its ledger rows): the head,
    the last row a seal covers, that seal, the row's inclusion proof, and the consistency
    proof from that seal to the latest. The standalone verifier reads it with an export.
    None when the aggregate has no ledger rows."""
    fields = ("id", "version", "hash", "txid")
    head = entries.order_by("-id").values(*fields).first()
    if head is None:
        return None
    latest = LedgerSeal.objects.order_by("-number").first()
    sealed = None
    if latest is not None:
        seen = sees(F("txid"), Value(latest.snapshot))
        sealed = entries.filter(seen).order_by("-id").values(*fields).first()
    proof = entry_proof(entry_hash=bytes(sealed["hash"]), txid=sealed["txid"]) if sealed else None
    return {
        "head": _entry(head),
        "sealed_entry": {**_entry(sealed), "leaf_index": proof.leaf_index} if proof else None,
        "unsealed_entries": entries.filter(id__gt=sealed["id"]).count()
        if sealed
        else entries.count(),
        "seal": seal_document(proof.seal) if proof else None,
        "inclusion_proof": [node.hex() for node in proof.inclusion] if proof else [],
        "latest_seal": seal_document(proof.latest) if proof else None,
        "consistency_proof": [node.hex() for node in proof.consistency] if proof else [],
    }


def _entry(row: dict) -> dict:
    return {"id": row["id"], "version": row["version"], "hash": bytes(row["hash"]).hex()}
