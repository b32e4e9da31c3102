"""Finding ids and their typed classes: one class per id, and the JSON keys they declare.

The ids (``FINDING_TYPES``) are a contract scripts and scenarios match on; each id's class
declares its fields, so a producer cannot write a key the class does not know. These tests
check the table against the classes, the prose against the declared fields, and real
reports against both.
"""

from __future__ import annotations

import re
import sys
from dataclasses import replace

import pytest

from labkit.analyze import AnalyzeOptions, analyze
from labkit.findings import (
    FINDING_CLASSES,
    FINDING_TYPES,
    Evidence,
    Finding,
    MtuMismatch,
    SynMss,
    VpnReconnect,
    own_fields,
)
from tests.helpers.paths import ROOT

SCENARIOS = ROOT / "pcaps" / "scenarios"
COMMON_KEYS = ["id", "severity", "summary", "evidence", "wireshark_filter"]


def _all_subclasses(cls: type) -> set[type]:
    """Subclasses, each as its module names it: ``slots=True`` makes each dataclass anew, and
    the class it replaced lingers among the subclasses."""
    out = set()
    for sub in cls.__subclasses__():
        if getattr(sys.modules[sub.__module__], sub.__name__, None) is sub:
            out |= {sub} | _all_subclasses(sub)
    return out


def test_every_id_has_its_class_and_every_class_its_id() -> None:
    classes = {c.id: c for c in FINDING_CLASSES}
    assert len(classes) == len(FINDING_CLASSES), "two classes claim one id"
    assert set(classes) == set(FINDING_TYPES)
    assert _all_subclasses(Finding) == set(FINDING_CLASSES), "a Finding subclass with no id"
    for fid, (severity, meaning) in FINDING_TYPES.items():
        assert (classes[fid].default_severity, classes[fid].meaning) == (severity, meaning)


def test_the_fields_the_prose_names_are_declared() -> None:
    """``meaning`` names a few fields ("(fields: mtu, reason)"): each is a declared field."""
    for cls in FINDING_CLASSES:
        m = re.search(r"\(fields: ([a-z_, ]+)\)", cls.meaning)
        named = [n.strip() for n in m.group(1).split(",")] if m else []
        assert set(named) <= set(own_fields(cls)), (cls.id, named, own_fields(cls))


def test_every_id_is_documented() -> None:
    doc = (ROOT / "docs" / "verdicts.md").read_text()
    assert not [fid for fid in FINDING_TYPES if f"`{fid}`" not in doc]


def test_the_base_class_is_no_finding() -> None:
    with pytest.raises(TypeError):
        Finding(summary="x")


def _scenario_report(name: str):
    files = sorted(str(p) for p in (SCENARIOS / name).iterdir() if ".pcap" in p.name)
    return analyze(files, AnalyzeOptions())


@pytest.mark.parametrize("name", ["dtls-blocked-icmp-blocked", "dtls-blocked-icmp-ok", "healthy"])
def test_json_keys_are_the_declared_fields_in_order(name: str) -> None:
    """Every key a report writes is a common key or a field its class declares, in the
    class's order (``wireshark_filters`` after them), and nothing the class holds as None."""
    report = _scenario_report(name)
    assert report.findings
    for f in report.findings:
        doc = f.to_json()
        keys = list(doc)
        assert keys[:5] == COMMON_KEYS
        declared = [*own_fields(type(f)), "wireshark_filters"]
        assert keys[5:] == [k for k in declared if k in doc], f.id
        assert [k for k in declared if getattr(f, k) is not None] == keys[5:]


def test_amended_merges_as_into_a_dict() -> None:
    """A later stage's fields: one already shown keeps its place, new ones come last in the
    order given, exactly as ``{**fields, **changes}`` orders them."""
    report = _scenario_report("dtls-blocked-icmp-blocked")
    mm = next(f for f in report.findings if isinstance(f, MtuMismatch))
    for changes in (
        {"also_from": ["asa-syslog"], "tunnel_mtu": 1300},
        {"tunnel_mtu": 1300, "also_from": ["asa-syslog"], "wireshark_filters": {"a": "b"}},
    ):
        got = mm.amended(changes)
        assert list(got.to_json()) == list({**mm.to_json(), **changes})
        assert got.to_json() == {**mm.to_json(), **changes}
    # A finding that lacked the tunnel MTU: the log's numbers come after its own fields.
    bare = MtuMismatch(summary="s", packet_size=1418)
    got = bare.amended({"also_from": ["asa-syslog"], "tunnel_mtu": 1347})
    assert list(got.fields) == ["packet_size", "also_from", "tunnel_mtu"]
    assert got.tunnel_mtu == 1347  # the typed field, not a copy beside it


def test_amended_refuses_an_undeclared_field() -> None:
    f = VpnReconnect(summary="s", evidence=(Evidence("x.log", 3, None),), gap_s=1.5)
    with pytest.raises(ValueError, match="no field"):
        f.amended({"gap": 2})
    assert f.amended({"user": "u"}).fields == {"gap_s": 1.5, "user": "u"}


def test_a_none_field_is_left_out_never_written() -> None:
    f = SynMss(summary="s", mss=1378, direction="syn", ip_version=4, implied_mtu=1418, count=1)
    assert f.fields == {
        "mss": 1378,
        "direction": "syn",
        "ip_version": 4,
        "implied_mtu": 1418,
        "count": 1,
    }
    assert replace(f, role="inner").to_json()["role"] == "inner"


def test_severity_defaults_to_the_ids_and_is_checked() -> None:
    assert MtuMismatch(summary="s", packet_size=1418).is_problem
    assert not MtuMismatch(summary="s", packet_size=1418, severity="info").is_problem
    with pytest.raises(ValueError):
        MtuMismatch(summary="s", packet_size=1418, severity="fatal")  # type: ignore[arg-type]
