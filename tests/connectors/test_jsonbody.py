"""``connectors.jsonbody.read_json``: any valid JSON gives a view that is safe to store, with
notes on what changed; what is not JSON is ``NotJson``."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.jsonbody import CUT, MAX_DEPTH, NotJson, read_json

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=25,
)


def _cut(value, depth=1):
    """The view the reader should give: containers below MAX_DEPTH levels replaced by CUT."""
    if isinstance(value, (list, dict)) and depth > MAX_DEPTH:
        return CUT
    if isinstance(value, list):
        return [_cut(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {k: _cut(v, depth + 1) for k, v in value.items()}
    return value


@settings(max_examples=300, deadline=None)
@given(value=values, depth=st.sampled_from([0, MAX_DEPTH - 3, MAX_DEPTH + 5]))
def test_json_reads_as_json_loads_with_containers_below_64_levels_cut(value, depth):
    text = "[" * depth + json.dumps(value) + "]" * depth
    view, notes = read_json(text.encode())
    expected = _cut(json.loads(text))
    assert view == expected
    assert bool(notes) == (expected != json.loads(text))
    json.dumps(view).encode("utf-8")  # always storable


def test_unusual_values_are_kept_as_text_with_notes():
    view, notes = read_json(
        b'{"t": "a\\ud800", "n": 1' + b"0" * 5000 + b', "x": NaN, "f": 1e999, '
        b'"d": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    )
    assert view["t"] == "a\ufffd" and view["n"] == "1" + "0" * 5000
    assert view["x"] == "NaN" and view["f"] == "1e999"
    assert len(notes) == 5
    json.dumps(view).encode("utf-8")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[1,]",
        b'{"a" 1}',
        b"[1 2]",
        b"[" * 5000 + b"]" * 4999,
        b'"\\x"',
        b"{1: 2}",
        b"[1] x",
        b"\xff",
        b'["a\x01"]',
        b"[" * 100 + b"}" + b"]" * 99,
    ],
)
def test_what_is_not_json_is_refused(body):
    with pytest.raises(NotJson):
        read_json(body)
