"""The seed corpus: real and reference inputs every mutation starts from.

Captures: ``tests/data/public`` (real traffic: AnyConnect, DTLS 0x0100 and 1.2, ICMPv6
Packet Too Big, MSS/retransmission), ``pcaps/`` and ``pcaps/scenarios/`` (the project's
reference captures, once they exist), and the analyzer tests' synthetic failure captures
(``tests/helpers/synth.py``: ICMP 3/4 quoting 1418-byte segments, a black hole, unanswered
DTLS), each also written as pcapng so both containers are mutated. Text: the ASA syslog and DART samples
in ``tests/data``, the ASA configs in ``configs/asa``, the scenarios in ``configs/scenarios``.

Seeds are read in sorted order, so the corpus (and with it a campaign) is deterministic.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from tests.fuzz import capture as cf
from tests.helpers.paths import PUBLIC, ROOT

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".gz")
#: Captures larger than this are not mutated whole (a campaign input must stay cheap).
MAX_SEED_BYTES = 256 * 1024


@dataclass(frozen=True)
class Seed:
    name: str
    raw: bytes  # uncompressed
    path: Path | None = None


def _name(p: Path) -> str:
    """``public/x.pcap`` for the third-party captures, the path in the checkout for the rest."""
    return str(p.relative_to(PUBLIC.parent) if p.is_relative_to(PUBLIC) else p.relative_to(ROOT))


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files under ``folder`` in sorted order; the third-party captures only from PUBLIC itself
    (they sit inside ``tests/data``, and a seed read twice would weigh twice in a campaign)."""
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.name.endswith(suffixes)
        and (folder == PUBLIC or not p.is_relative_to(PUBLIC))
    )


def _synthetic() -> list[Seed]:
    """The analyzer tests' failure captures, as pcap and pcapng (built with Scapy)."""
    from tests.fuzz.write import pcap_of, pcapng_of
    from tests.helpers import synth

    builds = {
        "inside-icmp-ok": synth.inside_icmp_ok(),
        "inside-black-hole": synth.inside_black_hole(),
        "outside-dtls-blocked": synth.outside_dtls_blocked(attempts=3, reconnect_after=5.0),
        "outside-dtls-ok": synth.outside_dtls_ok(),
    }
    out = []
    for name, pkts in builds.items():
        out.append(Seed(f"synth/{name}.pcap", pcap_of(pkts)))
        out.append(Seed(f"synth/{name}.pcapng", pcapng_of(pkts)))
    return out


@functools.cache
def captures() -> tuple[Seed, ...]:
    """Every capture seed (parsed successfully and small enough)."""
    seeds = []
    for folder in (PUBLIC, ROOT / "pcaps", ROOT / "tests" / "data"):
        for p in _files(folder, CAPTURE_SUFFIXES):
            raw = cf.unwrap(p.read_bytes())
            if len(raw) <= MAX_SEED_BYTES and cf.parse(raw) is not None:
                seeds.append(Seed(_name(p), raw, p))
    seeds += _synthetic()
    return tuple(seeds)


@functools.cache
def texts(kind: str) -> tuple[Seed, ...]:
    """Text seeds: 'syslog', 'dart', 'asa-config', 'scenario' or 'keylog'."""
    if kind == "syslog":
        paths = [p for p in _files(ROOT / "tests" / "data", (".log",))]
    elif kind == "dart":
        paths = [p for p in _files(ROOT / "tests" / "data", (".txt",)) if "dart" in p.name.lower()]
    elif kind == "asa-config":
        paths = _files(ROOT / "configs" / "asa", (".cfg", ".txt"))
    elif kind == "scenario":
        paths = _files(ROOT / "configs" / "scenarios", (".yaml", ".yml"))
    elif kind == "keylog":
        paths = (
            _files(ROOT / "tests" / "data", (".keylog",))
            + _files(PUBLIC, (".keylog",))
            + _files(ROOT / "pcaps", ("sslkeylog.txt",))
        )
    else:
        raise ValueError(kind)
    return tuple(Seed(_name(p), p.read_bytes(), p) for p in paths)


@functools.cache
def keyed_captures() -> tuple[tuple[Seed, bytes], ...]:
    """Captures of TLS sessions with the key log beside them that decrypts them."""
    out = []
    for cap in captures():
        if cap.path is None:
            continue
        for keylog in (cap.path.with_suffix(".keylog"), cap.path.parent / "sslkeylog.txt"):
            if keylog.is_file() and (keylog.suffix == ".keylog" or cap.path.stem == "outside"):
                out.append((cap, keylog.read_bytes()))
                break
    return tuple(out)


def _cstp(ptype: int, payload: bytes = b"") -> bytes:
    return b"STF\x01" + len(payload).to_bytes(2, "big") + bytes([ptype, 0]) + payload


@functools.cache
def cstp_streams() -> tuple[Seed, ...]:
    """Decrypted CSTP streams, one per side (OpenConnect cstp.c; DESIGN.md section 3): the XML
    auth exchange (Content-Length and chunked), the CONNECT and its 200 CONNECTED, then CSTP
    packets (DPD, keepalive, data carrying a 1347-byte IP packet)."""
    ip = bytes.fromhex("4500054300004000400600000a0000020a000001") + b"\x00" * 1327
    client = (
        b"POST / HTTP/1.1\r\nHost: vpn.example.com\r\nContent-Length: 14\r\n\r\n<config-auth/>"
        b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nX-CSTP-MTU: 1406\r\nX-CSTP-Base-MTU: 1500\r\n"
        b"X-DTLS-Master-Secret: " + b"ab" * 48 + b"\r\n\r\n" + _cstp(3) + _cstp(7) + _cstp(0, ip)
    )
    server = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n<auth/>\r\n0\r\n\r\n"
        b"HTTP/1.1 200 CONNECTED\r\nX-CSTP-MTU: 1347\r\nX-DTLS-MTU: 1418\r\n"
        b"X-CSTP-Base-MTU: 1500\r\nX-DTLS-Port: 443\r\nX-DTLS-Session-ID: "
        + b"9b" * 32
        + b"\r\n\r\n"
        + _cstp(4)
        + _cstp(0, ip)
        + _cstp(5, b"\xb0")
    )
    # The cstp-stream target's input format: side, piece size (0: all at once), stream.
    return (Seed("cstp/client", b"c\x00" + client), Seed("cstp/server", b"s\x00" + server))
