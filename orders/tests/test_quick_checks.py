"""The quick checks in front of the single commands' serializers (orders.apis): whatever
they accept, the serializer accepts, with the same validated data; whatever they pass on,
the serializer judges and words. A pure check: no database."""

from hypothesis import given, settings
from hypothesis import strategies as st

from orders.apis import OrderAdjustApi, OrderDetailApi, adjust_well_formed, patch_well_formed

_ints = st.sampled_from(
    [0, 1, -1, 10**8, 10**8 + 1, -(10**8), -(10**8) - 1, 2**31, 2**63, True, False]
)
_odd_texts = st.sampled_from(
    [
        " A-1",
        "A-1 ",
        "",
        " ",
        "x" * 64,
        "x" * 65,
        "é",
        "a\x00b",
        "y" * 500,
        "y" * 501,
        "\t",
        "\ud800",
    ]
)
_texts = st.one_of(st.from_regex(r"[A-Z0-9 -]{1,8}", fullmatch=True), _odd_texts)
_values = st.one_of(
    _ints, _odd_texts, st.none(), st.booleans(), st.just(1.0), st.just("12"), st.just([])
)
_valid_sku = st.from_regex(r"[A-Z0-9-]{1,8}", fullmatch=True)
_reason = st.from_regex(r"[a-z]{0,5}( [a-z]{1,5})?", fullmatch=True)
_reason_code = st.sampled_from(["damaged", "customer_request", "unspecified", "nope", ""])


def _mostly(draw, valid, odd=_values):
    return draw(valid) if draw(st.integers(0, 9)) else draw(odd)


def _perturbed(draw, body: dict, fields: list[str]) -> dict:
    """Now and then an unknown, a wrong or a missing field."""
    if not draw(st.integers(0, 9)):
        body[draw(st.sampled_from([*fields, "qty"]))] = draw(_values)
    if body and not draw(st.integers(0, 9)):
        body.pop(draw(st.sampled_from(sorted(body))))
    return body


def _reason_parts(draw, body: dict) -> None:
    if draw(st.integers(0, 4)):
        body["reason"] = _mostly(draw, _reason, _texts)
    if draw(st.booleans()):
        body["reason_code"] = _mostly(draw, _reason_code)


@st.composite
def _adjust_bodies(draw):
    if not draw(st.integers(0, 19)):
        return draw(_values)
    body = {"sku": _mostly(draw, _valid_sku, _texts), "delta": _mostly(draw, st.integers())}
    _reason_parts(draw, body)
    return _perturbed(draw, body, ["sku", "delta", "reason", "reason_code"])


@st.composite
def _lines(draw) -> dict:
    line = {"sku": _mostly(draw, st.sampled_from(["A-1", "B-2", "C-3"]), _texts)}
    line["quantity"] = _mostly(draw, st.integers(0, 10**8 + 1))
    return _perturbed(draw, line, ["sku", "quantity"])


@st.composite
def _patch_bodies(draw):
    if not draw(st.integers(0, 19)):
        return draw(_values)
    body = {"lines": draw(st.lists(_lines(), min_size=0, max_size=4))}
    _reason_parts(draw, body)
    return _perturbed(draw, body, ["lines", "reason", "reason_code"])


def _accepted_alike(quick, serializer) -> None:
    if quick is not None:
        assert serializer.is_valid(), serializer.errors
        assert quick == dict(serializer.validated_data)


@settings(max_examples=1000, deadline=None)
@given(body=_adjust_bodies())
def test_what_the_adjust_check_accepts_the_serializer_accepts_unchanged(body):
    # when
    quick = adjust_well_formed(body)

    # then
    _accepted_alike(quick, OrderAdjustApi.InputSerializer(data=body))


@settings(max_examples=1000, deadline=None)
@given(body=_patch_bodies())
def test_what_the_patch_check_accepts_the_serializer_accepts_unchanged(body):
    # when
    quick = patch_well_formed(body)

    # then
    _accepted_alike(quick, OrderDetailApi.PatchInput(data=body))


def test_the_quick_checks_accept_the_usual_bodies():
    adjust = {"sku": "A-1", "delta": -2, "reason": "restock", "reason_code": "damaged"}
    assert adjust_well_formed(adjust) == adjust
    assert adjust_well_formed({"sku": "A-1", "delta": 0, "reason": "x"}) == {
        "sku": "A-1",
        "delta": 0,
        "reason": "x",
    }
    lines = [{"sku": "A-1", "quantity": 5}, {"sku": "B-2", "quantity": 0}]
    assert patch_well_formed({"lines": lines}) == {"lines": {"A-1": 5, "B-2": 0}}
    assert patch_well_formed({"lines": lines, "reason": ""}) == {
        "lines": {"A-1": 5, "B-2": 0},
        "reason": "",
    }


def test_the_quick_checks_leave_doubtful_bodies_to_the_serializer():
    assert adjust_well_formed({"sku": "A-1", "delta": 1}) is None  # reason is required
    assert adjust_well_formed({"sku": "A-1", "delta": 1.0, "reason": "x"}) is None
    assert adjust_well_formed({"sku": " A-1", "delta": 1, "reason": "x"}) is None
    assert patch_well_formed({"lines": [{"sku": "A", "quantity": 1}] * 2}) is None
    assert patch_well_formed({"lines": []}) is None
    assert patch_well_formed({"lines": [{"sku": "A", "quantity": True}]}) is None
