"""history.merkle against the reference values of Certificate Transparency (the RFC 6962 /
RFC 9162 test tree of eight entries), then against itself for every tree shape: each
proof it makes verifies, and any change to a leaf, a proof, a size or a root does not."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from history import merkle

ENTRIES = [
    bytes.fromhex(value)
    for value in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
LEAVES = [merkle.leaf_hash(entry) for entry in ENTRIES]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = [  # (leaf index, tree size, audit path)
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
CONSISTENCY = [  # (first size, second size, proof)
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip


def _flip(value: bytes) -> bytes:
    return bytes([value[0] ^ 1]) + value[1:]


@pytest.mark.parametrize("size", range(9))
def test_tree_heads_match_the_reference(size):
    assert merkle.root(LEAVES[:size]).hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_proofs_match_the_reference_and_verify(index, size, path):
    # when
    proof = merkle.inclusion_proof(index, LEAVES[:size])

    # then
    assert [node.hex() for node in proof] == path
    root = bytes.fromhex(ROOTS[size])
    assert merkle.verify_inclusion(index, size, LEAVES[index], proof, root)
    assert not merkle.verify_inclusion(index, size, _flip(LEAVES[index]), proof, root)


@pytest.mark.parametrize(("first", "second", "path"), CONSISTENCY)
def test_consistency_proofs_match_the_reference_and_verify(first, second, path):
    # when
    proof = merkle.consistency_proof(first, LEAVES[:second])

    # then
    assert [node.hex() for node in proof] == path
    old, new = bytes.fromhex(ROOTS[first]), bytes.fromhex(ROOTS[second])
    assert merkle.verify_consistency(first, second, proof, old, new)
    assert not merkle.verify_consistency(first, second, proof, _flip(old), new)


def test_proofs_of_what_is_not_there_are_refused():
    with pytest.raises(ValueError, match="not in a tree of 3"):
        merkle.inclusion_proof(3, LEAVES[:3])
    with pytest.raises(ValueError, match="from 0 to 3"):
        merkle.consistency_proof(0, LEAVES[:3])
    with pytest.raises(ValueError, match="from 4 to 3"):
        merkle.consistency_proof(4, LEAVES[:3])
    assert not merkle.verify_inclusion(3, 3, LEAVES[0], [], bytes.fromhex(ROOTS[3]))
    assert not merkle.verify_consistency(0, 3, [], merkle.EMPTY_ROOT, bytes.fromhex(ROOTS[3]))


trees = st.lists(st.binary(max_size=12), min_size=1, max_size=70).map(
    lambda entries: [merkle.leaf_hash(entry) for entry in entries]
)


@given(leaves=trees, data=st.data())
def test_every_inclusion_proof_verifies_and_no_change_does(leaves, data):
    # given
    size, root = len(leaves), merkle.root(leaves)
    index = data.draw(st.integers(0, size - 1))

    # when
    proof = merkle.inclusion_proof(index, leaves)

    # then
    assert merkle.verify_inclusion(index, size, leaves[index], proof, root)
    assert not merkle.verify_inclusion(index, size, _flip(leaves[index]), proof, root)
    assert not merkle.verify_inclusion(index, size, leaves[index], proof, _flip(root))
    if proof:
        bent = data.draw(st.integers(0, len(proof) - 1))
        broken = [_flip(node) if n == bent else node for n, node in enumerate(proof)]
        assert not merkle.verify_inclusion(index, size, leaves[index], broken, root)
        assert not merkle.verify_inclusion(index, size, leaves[index], proof[:-1], root)


@given(leaves=trees, data=st.data())
def test_every_consistency_proof_verifies_and_no_rewritten_history_does(leaves, data):
    # given
    second = len(leaves)
    first = data.draw(st.integers(1, second))
    old, new = merkle.root(leaves[:first]), merkle.root(leaves)

    # when
    proof = merkle.consistency_proof(first, leaves)

    # then
    assert merkle.verify_consistency(first, second, proof, old, new)
    assert not merkle.verify_consistency(first, second, proof, old, _flip(new))
    if first < second:
        assert not merkle.verify_consistency(first, second, proof, _flip(old), new)
        # an old leaf rewritten after the first tree head was signed
        rewritten = [_flip(leaves[0]), *leaves[1:]]
        honest_looking = merkle.consistency_proof(first, rewritten)
        assert not merkle.verify_consistency(
            first, second, honest_looking, old, merkle.root(rewritten)
        )


@given(leaves=trees, data=st.data())
def test_a_tree_grown_from_its_frontier_has_the_full_trees_head_and_proofs(leaves, data):
    # given: the first `start` leaves known only by their frontier
    start = data.draw(st.integers(0, len(leaves) - 1))
    frontier = merkle.frontier_extend([], 0, leaves[:start])

    # when: the rest are appended
    grown = merkle.frontier_extend(frontier, start, leaves[start:])

    # then: the same head and the same proofs as from every leaf
    assert merkle.frontier_root(grown) == merkle.root(leaves)
    assert len(grown) == bin(len(leaves)).count("1")
    index = data.draw(st.integers(start, len(leaves) - 1))
    proof = merkle.inclusion_proof_after(index, frontier, start, leaves[start:])
    assert proof == merkle.inclusion_proof(index, leaves)
    if start:
        consistency = merkle.consistency_proof_after(frontier, start, leaves[start:])
        assert consistency == merkle.consistency_proof(start, leaves)


def test_a_frontier_cannot_prove_an_old_leaf():
    # given
    frontier = merkle.frontier_extend([], 0, LEAVES[:6])

    # when / then: leaf 4 is inside a frontier subtree whose leaves are not known
    with pytest.raises(ValueError, match="not among"):
        merkle.inclusion_proof_after(4, frontier, 6, LEAVES[6:8])
    assert merkle.frontier_root([]) == merkle.EMPTY_ROOT
