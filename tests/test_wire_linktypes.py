"""The link-type table (``labkit.wire.linktypes``) and its C twin in ``_columns.c``.

C cannot import the Python table, so ``_columns.c`` spells the link types it reads as
``LT_*`` macros and a ``switch`` on them. These tests hold the two to each other: the same
numbers under the same names, and the switch handles exactly the link types Python calls
supported (how each is read is compared, packet by packet, in ``test_analyze_native.py``).
"""

from __future__ import annotations

import re

from labkit.wire import linktypes
from tests.helpers.paths import ROOT

COLUMNS_C = (ROOT / "labkit" / "analyze" / "_columns.c").read_text()
#: C macro suffix -> the Python name, where the two differ by more than the prefix.
C_NAMES = {"SLL": "LINKTYPE_LINUX_SLL", "SLL2": "LINKTYPE_LINUX_SLL2"}


def c_linktypes(source: str) -> dict[str, int]:
    """``#define LT_NAME value`` lines of a C source -> {NAME: value}."""
    return {m[1]: int(m[2]) for m in re.finditer(r"^#define LT_(\w+) (\d+)$", source, re.M)}


def c_locate_cases(source: str) -> set[str]:
    """The ``case LT_*:`` labels of the C ``locate`` function's link-type switch."""
    body = source[source.index("\nlocate(") :]
    switch = body[body.index("switch (linktype)") : body.index("default:")]
    return set(re.findall(r"case LT_(\w+):", switch))


def python_value(c_name: str) -> int:
    name = C_NAMES.get(c_name) or (
        f"DLT_{c_name}" if c_name.startswith("RAW_") else f"LINKTYPE_{c_name}"
    )
    value: int = getattr(linktypes, name)
    return value


def test_c_link_types_have_the_python_numbers() -> None:
    defined = c_linktypes(COLUMNS_C)
    assert len(defined) == len(linktypes.SUPPORTED_LINKTYPES)
    assert {name: python_value(name) for name in defined} == defined


def test_c_switch_reads_exactly_the_supported_link_types() -> None:
    defined = c_linktypes(COLUMNS_C)
    cases = c_locate_cases(COLUMNS_C)
    assert {defined[name] for name in cases} == linktypes.SUPPORTED_LINKTYPES


def test_the_readers_of_the_c_source_see_a_drift() -> None:
    drifted = COLUMNS_C.replace("#define LT_SLL2 276", "#define LT_SLL2 277")
    assert c_linktypes(drifted)["SLL2"] == 277 != python_value("SLL2")
    fewer = COLUMNS_C.replace("case LT_NFLOG:", "case_removed:")
    assert "NFLOG" not in c_locate_cases(fewer) and "NFLOG" in c_locate_cases(COLUMNS_C)


def test_names_of_link_types() -> None:
    assert linktypes.linktype_name(105) == "105 (IEEE802_11)"
    assert linktypes.linktype_name(4242) == "4242"
    assert linktypes.RAW_LINKTYPES <= linktypes.SUPPORTED_LINKTYPES
