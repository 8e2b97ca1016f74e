"""Merkle trees as Certificate Transparency logs build them (RFC 9162, section 2.1): the
tree head over a list of entries, inclusion proofs (this entry is in that tree) and
consistency proofs (that tree is an append-only extension of this earlier one), with their
verification.

The functions work on leaf hashes, `leaf_hash(entry bytes)`. Only the standard library is
used, so that an auditor's standalone verifier can rely on this very file. The seals of the
ledger are tree heads over its entries (issue 11)."""

import hashlib
from collections.abc import Callable, Iterable, Sequence
from functools import partial

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _root(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    n = hi - lo
    if n == 1:
        return leaves[lo]
    k = _split(n)
    return node_hash(_root(leaves, lo, lo + k), _root(leaves, lo + k, hi))


def root(leaves: Sequence[bytes]) -> bytes:
    """The tree head (MTH) over these leaf hashes."""
    return _root(leaves, 0, len(leaves)) if leaves else EMPTY_ROOT


Subtree = Callable[[int, int], bytes]  # (lo, hi) -> the root of leaves lo..hi-1


def _path(m: int, lo: int, hi: int, subtree: Subtree) -> list[bytes]:
    n = hi - lo
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(m, lo, lo + k, subtree), subtree(lo + k, hi)]
    return [*_path(m - k, lo + k, hi, subtree), subtree(lo, lo + k)]


def _subproof(m: int, lo: int, hi: int, whole: bool, subtree: Subtree) -> list[bytes]:
    n = hi - lo
    if m == n:
        return [] if whole else [subtree(lo, hi)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, lo, lo + k, whole, subtree), subtree(lo + k, hi)]
    return [*_subproof(m - k, lo + k, hi, False, subtree), subtree(lo, lo + k)]


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The audit path of leaf `index` in the tree over `leaves` (RFC 9162, 2.1.3.1)."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of {len(leaves)}")
    return _path(index, 0, len(leaves), partial(_root, leaves))


def consistency_proof(first: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The proof that the tree over `leaves` extends the tree over its first `first`
    leaves (RFC 9162, 2.1.4.1)."""
    if not 0 < first <= len(leaves):
        raise ValueError(f"no consistency proof from {first} to {len(leaves)} leaves")
    return _subproof(first, 0, len(leaves), True, partial(_root, leaves))


# --- A growing tree kept as its frontier ----------------------------------------------------
# The frontier of a tree of `size` leaves is the list of roots of its perfect subtrees, left
# to right, one per bit set in `size` (largest first). It is all a log needs to keep to add
# leaves and compute its new root without reading the old leaves; and every node a proof
# needs outside the leaves added after it is one of them.


def frontier_ranges(size: int) -> list[tuple[int, int]]:
    ranges, lo = [], 0
    for bit in reversed(range(size.bit_length())):
        if size >> bit & 1:
            ranges.append((lo, lo + (1 << bit)))
            lo += 1 << bit
    return ranges


def frontier_extend(frontier: Sequence[bytes], size: int, leaves: Iterable[bytes]) -> list[bytes]:
    """The frontier after appending these leaf hashes to a tree of `size` leaves."""
    stack = list(zip((hi - lo for lo, hi in frontier_ranges(size)), frontier, strict=True))
    for leaf in leaves:
        stack.append((1, leaf))
        while len(stack) > 1 and stack[-1][0] == stack[-2][0]:
            (width, left), (_, right) = stack[-2], stack[-1]
            stack[-2:] = [(width * 2, node_hash(left, right))]
    return [node for _, node in stack]


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    """The tree head of the tree with this frontier."""
    if not frontier:
        return EMPTY_ROOT
    result = frontier[-1]
    for node in reversed(frontier[:-1]):
        result = node_hash(node, result)
    return result


def _subtree_after(frontier: Sequence[bytes], start: int, leaves: Sequence[bytes]) -> Subtree:
    """Subtree roots of a tree whose first `start` leaves are known by their frontier and
    whose later leaves are `leaves`."""
    known = dict(zip(frontier_ranges(start), frontier, strict=True))

    def subtree(lo: int, hi: int) -> bytes:
        if hi <= start:
            try:
                return known[(lo, hi)]
            except KeyError:
                raise ValueError(
                    f"leaves {lo}..{hi - 1} are not a subtree of the frontier"
                ) from None
        if lo >= start:
            return _root(leaves, lo - start, hi - start)
        k = _split(hi - lo)
        return node_hash(subtree(lo, lo + k), subtree(lo + k, hi))

    return subtree


def inclusion_proof_after(
    index: int, frontier: Sequence[bytes], start: int, leaves: Sequence[bytes]
) -> list[bytes]:
    """The audit path of leaf `index` (at or after `start`) in the tree of `start +
    len(leaves)` leaves, knowing the first `start` leaves only by their frontier."""
    size = start + len(leaves)
    if not start <= index < size:
        raise ValueError(f"leaf {index} is not among leaves {start}..{size - 1}")
    return _path(index, 0, size, _subtree_after(frontier, start, leaves))


def consistency_proof_after(
    frontier: Sequence[bytes], start: int, leaves: Sequence[bytes]
) -> list[bytes]:
    """The proof that the tree of `start + len(leaves)` leaves extends the tree of `start`
    leaves (whose frontier this is)."""
    if start == 0:
        raise ValueError("no consistency proof from an empty tree")
    subtree = _subtree_after(frontier, start, leaves)
    return _subproof(start, 0, start + len(leaves), True, subtree)


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes
) -> bool:
    """Whether `proof` shows the leaf hash at `index` in the tree of `size` with that root
    (RFC 9162, 2.1.3.2)."""
    if not 0 <= index < size:
        return False
    fn, sn, result = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            result = node_hash(result, sibling)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and result == expected_root


def verify_consistency(
    first: int, second: int, proof: Sequence[bytes], first_root: bytes, second_root: bytes
) -> bool:
    """Whether `proof` shows the tree of `second` leaves to extend the tree of `first`
    (RFC 9162, 2.1.4.2)."""
    if not 0 < first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the old root is a node of the new tree
        path.insert(0, first_root)
    if not path:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    first_result = second_result = path[0]
    for node in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            first_result = node_hash(node, first_result)
            second_result = node_hash(node, second_result)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            second_result = node_hash(second_result, node)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and first_result == first_root and second_result == second_root
