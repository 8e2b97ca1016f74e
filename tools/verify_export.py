#!/usr/bin/env python3
"""Check a ledger export offline: is it complete and unaltered, as the server sealed it?

    python3 tools/verify_export.py --csv order-12-history.csv --proof order-12-proof.json \\
        --public-key seal-key.json

Needs Python 3.11 and nothing else: no Django, no database, no network. It uses the
project's own stdlib-only files for the encoding (history/chain.py), the Merkle proofs
(history/merkle.py), the signatures (history/ed25519.py) and the chain check
(history/verification.py); `make audit-kit` packs all of them into one file,
`dist/verify_export.pyz`, to hand to an auditor.

- `--csv`: a CSV export with the hash columns (an order's history, a stock history, or the
  adjustments feed): every row must hash to its `hash`, and each order's (stock level's)
  rows must link one to the next from the genesis value.
- `--proof` (repeatable): the proof document of an aggregate
  (`GET /api/v1/orders/{id}/proof/`, `GET /api/v1/stock/{sku}/proof/?location=...`): the
  seal's signature must verify with the public key, the sealed row must be in the seal's
  tree (inclusion proof), and that tree must be extended by the latest seal (consistency
  proof). The export is then complete up to that row: every row of the aggregate up to it is
  in the export, unaltered.
- `--public-key`: the key document (`GET /api/v1/seals/key/`), a PEM public key, or the
  key in hex. Get it once, from a source you trust, and keep it.

Exit status 0 when everything verifies, 1 when anything does not (each problem is named),
2 on bad input."""

import argparse
import base64
import csv
import hashlib
import json
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a file from a checkout: the repository's root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from history import ed25519, merkle
from history.chain import (
    ORDER_FIELDS,
    STOCK_FIELDS,
    order_entry_hash,
    seal_message,
    stock_entry_hash,
)
from history.verification import chain_problems

_SPKI_ED25519_PREFIX = bytes.fromhex("302a300506032b6570032100")
_INTEGERS = {
    "id", "order_id", "version", "delta", "quantity_before", "quantity_after",
    "delta_on_hand", "delta_reserved", "delta_in_transit", "delta_backorder",
    "on_hand_after", "reserved_after", "in_transit_after", "backorder_after",
}  # fmt: skip


class BadInput(Exception):
    pass


def public_key(text: str) -> bytes:
    """32 raw bytes, from the key document (JSON), a PEM public key or hex, or a file
    holding one of these."""
    path = Path(text)
    if len(text) < 4096 and path.is_file():
        text = path.read_text()
    text = text.strip()
    try:
        if text.startswith("{"):
            return bytes.fromhex(json.loads(text)["public_key"])
        if text.startswith("-----BEGIN PUBLIC KEY-----"):
            body = "".join(line for line in text.splitlines() if not line.startswith("-----"))
            der = base64.b64decode(body)
            if len(der) != 44 or not der.startswith(_SPKI_ED25519_PREFIX):
                raise BadInput("the PEM key is not an Ed25519 public key")
            return der[-32:]
        key = bytes.fromhex(text)
    except (ValueError, KeyError) as exc:
        raise BadInput(f"cannot read the public key: {exc}") from None
    if len(key) != 32:
        raise BadInput("an Ed25519 public key is 32 bytes")
    return key


def _cell(name: str, text: str):
    if text.startswith("'"):  # the server quotes text a spreadsheet would run (config/api/csv.py)
        text = text[1:]
    if name in _INTEGERS:
        return int(text)
    if name in ("prev_hash", "hash"):
        return bytes.fromhex(text)
    if name == "occurred_at":
        return datetime.fromisoformat(text)
    return text


def read_export(path: Path) -> tuple[str, dict[object, list[dict]]]:
    """The export's kind ("order" or "stock") and its rows per aggregate, in id order."""
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        columns = set(reader.fieldnames or ())
        kind = "order" if "order_id" in columns else "stock"
        fields = ORDER_FIELDS if kind == "order" else STOCK_FIELDS
        missing = {"id", "prev_hash", "hash", *fields} - columns
        if missing:
            raise BadInput(f"{path} lacks the columns {', '.join(sorted(missing))}")
        chains: dict[object, list[dict]] = defaultdict(list)
        try:
            for row in reader:
                row = {name: _cell(name, value) for name, value in row.items()}
                key = row["order_id"] if kind == "order" else (row["sku"], row["location_code"])
                chains[key].append(row)
        except ValueError as exc:
            raise BadInput(f"{path}, line {reader.line_num}: {exc}") from None
    for rows in chains.values():
        rows.sort(key=lambda row: row["id"])
    return kind, chains


def _name(kind: str, key) -> str:
    return f"order {key}" if kind == "order" else f"stock {key[0]}@{key[1]}"


def seal_problems(seal: dict, key: bytes) -> list[str]:
    """Is this seal document signed by `key`, and do its fields hash to its seal hash?"""
    try:
        message = seal_message(
            number=seal["number"],
            tree_size=seal["tree_size"],
            root=bytes.fromhex(seal["root"]),
            previous_hash=bytes.fromhex(seal["previous_hash"]),
            sealed_at=datetime.fromisoformat(seal["sealed_at"].replace("Z", "+00:00")),
            key_id=seal["key_id"],
        )
        signature = bytes.fromhex(seal["signature"])
    except (KeyError, ValueError, TypeError) as exc:
        return [f"seal {seal.get('number')}: unreadable ({exc})"]
    problems = []
    if seal["key_id"] != hashlib.sha256(key).hexdigest():
        problems.append(f"seal {seal['number']}: signed by another key ({seal['key_id'][:16]}…)")
    elif not ed25519.verify(key, message, signature):
        problems.append(f"seal {seal['number']}: the signature does not verify")
    if hashlib.sha256(message).hexdigest() != seal.get("seal_hash"):
        problems.append(f"seal {seal['number']}: its fields do not hash to its seal hash")
    return problems


def proof_report(proof: dict, kind: str, chains: dict, key: bytes) -> tuple[list[str], list[str]]:
    """(problems, findings) of one proof document against the export."""
    aggregate = proof.get("aggregate", {})
    if aggregate.get("type") != kind:
        return [f"the proof is of a {aggregate.get('type')}, the export of {kind} rows"], []
    chain_key = (
        aggregate.get("order_id")
        if kind == "order"
        else (aggregate.get("sku"), aggregate.get("location_code"))
    )
    name = _name(kind, chain_key)
    rows = chains.get(chain_key, [])
    sealed, seal = proof.get("sealed_entry"), proof.get("seal")
    if sealed is None or seal is None:
        return [], [f"{name}: no seal covers any of its rows yet; nothing proven against a seal"]
    problems = seal_problems(seal, key)
    leaf = bytes.fromhex(sealed["hash"])
    nodes = [bytes.fromhex(node) for node in proof.get("inclusion_proof", [])]
    if not merkle.verify_inclusion(
        sealed["leaf_index"], seal["tree_size"], merkle.leaf_hash(leaf), nodes,
        bytes.fromhex(seal["root"]),
    ):  # fmt: skip
        problems.append(f"{name}: row {sealed['id']} is not in seal {seal['number']}'s tree")
    latest = proof.get("latest_seal")
    if latest and latest["number"] != seal["number"]:
        problems += seal_problems(latest, key)
        path = [bytes.fromhex(node) for node in proof.get("consistency_proof", [])]
        if not merkle.verify_consistency(
            seal["tree_size"], latest["tree_size"], path,
            bytes.fromhex(seal["root"]), bytes.fromhex(latest["root"]),
        ):  # fmt: skip
            problems.append(
                f"seal {latest['number']} does not extend seal {seal['number']}: the log was "
                "rewritten between them"
            )
    position = next((n for n, row in enumerate(rows) if row["hash"] == leaf), None)
    if position is None:
        problems.append(
            f"{name}: the export lacks row {sealed['id']}, the last row seal {seal['number']} "
            "covers: it is incomplete or altered"
        )
        return problems, []
    later = len(rows) - position - 1
    findings = [
        f"{name}: its rows up to row {sealed['id']} (version {sealed['version']}) are covered "
        f"by seal {seal['number']} (tree size {seal['tree_size']}, sealed at "
        f"{seal['sealed_at']})"
        + (f"; {later} later row(s) chain on from it but are not sealed yet" if later else "")
    ]
    return problems, findings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", required=True, type=Path, help="the CSV export")
    parser.add_argument("--proof", action="append", default=[], type=Path, help="a proof (JSON)")
    parser.add_argument("--public-key", required=True, help="key document, PEM, hex, or a file")
    args = parser.parse_args(argv)
    try:
        key = public_key(args.public_key)
        kind, chains = read_export(args.csv)
        proofs = [json.loads(path.read_text()) for path in args.proof]
    except (BadInput, OSError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    entry_hash = order_entry_hash if kind == "order" else stock_entry_hash
    problems, findings = [], []
    for chain_key, rows in sorted(chains.items()):
        for problem in chain_problems(rows, entry_hash=entry_hash, head=None):
            problems.append(f"{_name(kind, chain_key)}: {problem}")
    for proof in proofs:
        found, notes = proof_report(proof, kind, chains, key)
        problems += found
        findings += notes
    rows = sum(map(len, chains.values()))
    for line in findings:
        print(line)
    if problems:
        for problem in problems:
            print(f"BROKEN: {problem}")
        print(f"NOT VERIFIED: {len(problems)} problem(s) in {rows} row(s) of {args.csv}")
        return 1
    print(
        f"VERIFIED: {rows} row(s) of {len(chains)} chain(s), each complete from its first row "
        "and unaltered" + (", against a signed seal" if proofs else " (no proof given)")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
