"""The seed corpus: real and reference inputs every mutation starts from.

Captures: ``../shared/captures/public`` (real traffic: AnyConnect, DTLS 0x0100 and 1.2, ICMPv6
Packet Too Big, MSS/retransmission), ``pcaps/`` and ``pcaps/scenarios/`` (the project's
reference captures, once they exist), and the analyzer tests' synthetic failure captures
(``tests/synth.py``: ICMP 3/4 quoting 1418-byte segments, a black hole, unanswered DTLS), each
also written as pcapng so both containers are mutated. Text: the ASA syslog and DART samples
in ``tests/data``, the ASA configs in ``configs/asa``, the scenarios in ``configs/scenarios``.

Seeds are read in sorted order, so the corpus (and with it a campaign) is deterministic.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from tests.fuzz import capture as cf

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = ROOT.parent / "shared" / "captures" / "public"
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".gz")
#: Captures larger than this are not mutated whole (a campaign input must stay cheap).
MAX_SEED_BYTES = 256 * 1024


@dataclass(frozen=True)
class Seed:
    name: str
    raw: bytes  # uncompressed


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name.endswith(suffixes))


def _synthetic() -> list[Seed]:
    """The analyzer tests' failure captures, as pcap and pcapng (built with Scapy)."""
    import sys
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import synth
    finally:
        sys.path.pop(0)
    from tests.fuzz.write import pcap_of, pcapng_of

    builds = {"inside-icmp-ok": synth.inside_icmp_ok(), "inside-black-hole": synth.inside_black_hole(),
              "outside-dtls-blocked": synth.outside_dtls_blocked(attempts=3, reconnect_after=5.0),
              "outside-dtls-ok": synth.outside_dtls_ok()}
    out = []
    for name, pkts in builds.items():
        out.append(Seed(f"synth/{name}.pcap", pcap_of(pkts)))
        out.append(Seed(f"synth/{name}.pcapng", pcapng_of(pkts)))
    return out


@functools.cache
def captures() -> tuple[Seed, ...]:
    """Every capture seed (parsed successfully and small enough)."""
    seeds = []
    for folder in (PUBLIC, ROOT / "pcaps"):
        for p in _files(folder, CAPTURE_SUFFIXES):
            raw = cf.unwrap(p.read_bytes())
            if len(raw) <= MAX_SEED_BYTES and cf.parse(raw) is not None:
                seeds.append(Seed(str(p.relative_to(folder.parent)), raw))
    seeds += _synthetic()
    return tuple(seeds)


@functools.cache
def texts(kind: str) -> tuple[Seed, ...]:
    """Text seeds: 'syslog', 'dart', 'asa-config' or 'scenario'."""
    if kind == "syslog":
        paths = [p for p in _files(ROOT / "tests" / "data", (".log",))]
    elif kind == "dart":
        paths = [p for p in _files(ROOT / "tests" / "data", (".txt",)) if "dart" in p.name.lower()]
    elif kind == "asa-config":
        paths = _files(ROOT / "configs" / "asa", (".cfg", ".txt"))
    elif kind == "scenario":
        paths = _files(ROOT / "configs" / "scenarios", (".yaml", ".yml"))
    else:
        raise ValueError(kind)
    return tuple(Seed(str(p.relative_to(ROOT)), p.read_bytes()) for p in paths)
