"""The fast indented JSON is the standard library's text, byte for byte, errors included.

Scripts parse and diff ``labkit analyze --format json``; the encoder that writes it faster
must never change a byte, so the standard encoder is the judge here, on real reports and on
every JSON value shape (subclasses, odd keys, non-ASCII, NaN) a report could hold.
"""

from __future__ import annotations

import enum
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit import jsontext
from labkit.analyze import analyze

DATA = Path(__file__).parent / "data" / "public"


def _standard(obj: object) -> str:
    return json.dumps(obj, indent=2)


class _Str(str):
    pass


class _Int(int):
    pass


class _Level(enum.IntEnum):
    HIGH = 3


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.pcap*")))
def test_real_reports_are_the_standard_text(name):
    report = analyze([str(DATA / name)]).to_json()
    assert jsontext.dumps(report) == _standard(report)


_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
_keys = st.text() | st.integers() | st.floats() | st.booleans() | st.none()
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.lists(inner, max_size=5).map(tuple)
        | st.dictionaries(_keys, inner, max_size=5)
    ),
    max_leaves=40,
)


@settings(max_examples=300)
@given(_values)
def test_any_json_value_is_the_standard_text(value):
    assert jsontext.dumps(value) == _standard(value)


def test_subclasses_and_escapes_are_the_standard_text():
    value = {
        _Str("clé"): [_Int(5), _Level.HIGH, _Str('\u2028\ud800"\n')],
        1.5: (),
        None: {},
        True: [[]],
        "-0": -0.0,
    }
    assert jsontext.dumps(value) == _standard(value)


@pytest.mark.parametrize("bad", [{(1, 2): 1}, [object()], {"a": {1, 2}}])
def test_unencodable_values_raise_the_standard_error(bad):
    with pytest.raises(TypeError) as ours:
        jsontext.dumps(bad)
    with pytest.raises(TypeError) as standard:
        _standard(bad)
    assert str(ours.value) == str(standard.value)


def test_a_cycle_raises_the_standard_error():
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference detected"):
        jsontext.dumps(loop)
