"""JSON indented by two spaces, the same text as ``json.dumps(obj, indent=2)``, faster.

Python's C encoder does not indent (before 3.14), so ``indent=2`` falls back to the pure
encoder, a chain of nested generators that yields one chunk per value: on the report of a
busy capture (a million-packet head-end capture cites tens of thousands of frames) that is
a noticeable share of a whole ``labkit analyze`` run. Here each container is joined at once,
scalars go through the same C helpers the standard library uses, and users' scripts keep the
same bytes. Anything this encoder does not recognise, such as a type the standard encoder
rejects or a reference cycle, is handed to ``json.dumps`` itself, so errors stay the same too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import Any

_INDENT = "  "
_INFINITY = float("inf")


class _Unsupported(Exception):
    """A value or key the standard encoder treats in its own way (usually an error)."""


def _float(f: float) -> str:
    # Spelled as the standard encoder spells them (allow_nan is on by default there).
    if f != f:
        return "NaN"
    if f == _INFINITY:
        return "Infinity"
    if f == -_INFINITY:
        return "-Infinity"
    return float.__repr__(f)


def _bool(b: bool) -> str:
    return "true" if b else "false"


def _null(_: None) -> str:
    return "null"


#: Exact scalar types and their spelling; subclasses take the slower path in ``_other``.
_SCALARS: dict[type, Callable[[Any], str]] = {
    str: encode_basestring_ascii,
    int: int.__repr__,
    float: _float,
    bool: _bool,
    type(None): _null,
}


def dumps(obj: object) -> str:
    """``json.dumps(obj, indent=2)``, byte for byte."""
    try:
        return _value(obj, "\n")
    except (_Unsupported, RecursionError):
        return json.dumps(obj, indent=2)


def _value(o: object, nl: str) -> str:
    spell = _SCALARS.get(type(o))
    if spell is not None:
        return spell(o)
    if type(o) is dict:
        return _object(o, nl)
    if type(o) is list or type(o) is tuple:
        return _array(o, nl)
    return _other(o, nl)


def _other(o: object, nl: str) -> str:
    # The standard encoder's isinstance order, for subclasses of the JSON types.
    if isinstance(o, str):
        return encode_basestring_ascii(o)
    if isinstance(o, int):
        return int.__repr__(o)
    if isinstance(o, float):
        return _float(o)
    if isinstance(o, (list, tuple)):
        return _array(o, nl)
    if isinstance(o, dict):
        return _object(o, nl)
    raise _Unsupported


def _array(a: list[Any] | tuple[Any, ...], nl: str) -> str:
    if not a:
        return "[]"
    inner = nl + _INDENT
    scalars = _SCALARS
    parts = []
    for v in a:
        spell = scalars.get(type(v))
        parts.append(spell(v) if spell is not None else _value(v, inner))
    return "[" + inner + ("," + inner).join(parts) + nl + "]"


def _object(d: dict[Any, Any], nl: str) -> str:
    if not d:
        return "{}"
    inner = nl + _INDENT
    scalars = _SCALARS
    parts = []
    for k, v in d.items():
        key = k if type(k) is str else _key(k)
        spell = scalars.get(type(v))
        text = spell(v) if spell is not None else _value(v, inner)
        parts.append(encode_basestring_ascii(key) + ": " + text)
    return "{" + inner + ("," + inner).join(parts) + nl + "}"


def _key(k: object) -> str:
    # Keys the standard encoder turns into strings; any other key is its error.
    if isinstance(k, str):
        return k
    if isinstance(k, float):
        return _float(k)
    if k is True:
        return "true"
    if k is False:
        return "false"
    if k is None:
        return "null"
    if isinstance(k, int):
        return int.__repr__(k)
    raise _Unsupported
