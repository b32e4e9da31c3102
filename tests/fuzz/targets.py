"""Fuzz targets: what one input is run through, and what counts as a crash.

A target makes inputs from seeds (:meth:`Target.make`) and runs one (:meth:`Target.run`).
``run`` raises :class:`Crash` for anything labkit must never do with bad input: an exception
other than a documented user error (:class:`labkit.errors.LabkitError`), output that breaks a
promise (JSON that is not strict JSON, an ``--annotate`` copy that labkit itself cannot read
back frame for frame), or more work than the input justifies (the campaign's time limit,
:class:`Hang`). Each target drives labkit's real entry points, the ones the CLI calls.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labkit.errors import LabkitError
from tests.fuzz import capture as cf
from tests.fuzz import mutate as mu
from tests.fuzz import seeds as sd
from tests.fuzz.packet import PACKET_MUTATIONS, locate


class Crash(Exception):
    """labkit did something it must never do with this input."""


class Hang(BaseException):
    """The per-input time limit ran out (raised from a timer signal)."""


def _strict_json(text: str) -> None:
    def bad(const: str) -> None:
        raise Crash(f"JSON output contains {const}, which is not JSON (RFC 8259)")

    json.loads(text, parse_constant=bad)


# --- captures -----------------------------------------------------------------------------------


def make_capture(rng: random.Random) -> tuple[bytes, str, str]:
    """A damaged capture: (bytes, seed name, mutation names)."""
    seed = rng.choice(sd.captures())
    cap = cf.parse(seed.raw)
    names = []
    if rng.random() < 0.5:
        cap, name = (mu.mutate_packets if rng.random() < 0.6 else mu.mutate_records)(rng, cap)
        names.append(name)
    raw, lay = cf.serialize(cap)
    if not names or rng.random() < 0.4:
        raw, name = rng.choice(mu.RAW_MUTATIONS)(rng, raw, lay)
        names.append(name)
    if rng.random() < 0.2:
        raw, name = mu.gzip_damage(rng, raw)
        names.append(name)
    return raw, seed.name, "+".join(names)


def boundary_inputs() -> list[tuple[bytes, str, str]]:
    """Every seed cut at every record/block boundary (and 1 byte into the next record)."""
    out = []
    for seed in sd.captures():
        raw, lay = cf.serialize(cf.parse(seed.raw))
        for b in lay.boundaries[:-1]:
            out.append((raw[:b], seed.name, f"cut-at-boundary:{b}"))
        # Inside the first record's header and at the very end, in gzip too.
        out.append((raw[: lay.boundaries[0] + 1], seed.name, "cut-into-first-record"))
        gz = cf.gzip_bytes(raw)
        for cut in sorted({10, len(gz) // 2, len(gz) - 4}):
            out.append((gz[:cut], seed.name, f"gzip-cut:{cut}"))
    return out


def run_capture(data: bytes, work: Path, annotate: bool) -> None:
    """``labkit analyze FILE [--annotate OUT] [--format json]`` in process."""
    from labkit.analyze import analyze
    from labkit.analyze.annotate import write_annotated
    from labkit.analyze.render import to_json, to_text
    from labkit.pcapio.reader import open_capture

    path = work / "input.cap"
    path.write_bytes(data)
    report = analyze([path])
    to_text(report)
    _strict_json(to_json(report))
    if not (annotate and report.analyzable):
        return
    out = work / "annotated.pcapng"
    out.unlink(missing_ok=True)
    write_annotated(report, [path], out)
    frames = report.files[0].packets
    with open_capture(out) as cap:
        got = sum(len(c) for c in cap.chunks())
        if cap.warnings:
            raise Crash(f"--annotate wrote a copy labkit cannot read cleanly: {cap.warnings[0]}")
    if got != frames:
        raise Crash(f"--annotate copy has {got} frames, the input {frames}")


# --- Scapy layers -------------------------------------------------------------------------------

MAX_LAYER_INPUT = 65535


def make_layer_input(rng: random.Random) -> tuple[bytes, str, str]:
    """Packet bytes for a Scapy dissector, tagged with the layer to start from."""
    seed = rng.choice(sd.captures())
    cap = cf.parse(seed.raw)
    pkts = [p for _, p in cap.packets if locate(p.data, p.linktype) is not None]
    p = rng.choice(pkts)
    lay = locate(p.data, p.linktype)
    name = rng.choice(sorted(PACKET_MUTATIONS))
    data = PACKET_MUTATIONS[name](rng, p.data, lay)
    start = rng.choice(("link", "link", "dtls", "cstp", "anyconnect-dtls"))
    if start == "dtls":
        data = mu.dtls_datagram(rng) if rng.random() < 0.7 else data[lay.l4 + 8 :]
    elif start in ("cstp", "anyconnect-dtls"):
        inner = data[lay.l3 :]
        if start == "cstp":  # several CSTP packets in one record, lengths that may lie
            data = b""
            for _ in range(rng.choice((1, 2, 5, 2000))):
                n = rng.choice((len(inner), 0, 0xFFFF, len(inner) + 1))
                data += (
                    b"STF\x01"
                    + n.to_bytes(2, "big")
                    + bytes([rng.choice((0, 3, 4, 5, 7, 8, 9, 255)), 0])
                    + inner[: rng.randrange(len(inner) + 1)]
                )
        else:
            data = bytes([rng.choice((0, 3, 7, 255))]) + inner
    if rng.random() < 0.3 and data:
        b = bytearray(data)
        for _ in range(rng.randrange(1, 8)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        data = bytes(b)
    tag = f"{start}:{p.linktype}"
    # At most what one datagram or one TLS record stream piece carries.
    return tag.encode() + b"\n" + data[:MAX_LAYER_INPUT], seed.name, f"layers:{start}:{name}"


def run_layers(data: bytes, work: Path, annotate: bool) -> None:
    """Dissect with labkit's Scapy layers, then summarize, show and rebuild the packet."""
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import CookedLinux, Ether, Loopback
    from scapy.packet import Raw

    import labkit.layers as L

    tag, _, body = data.partition(b"\n")
    start, _, lt = tag.decode().partition(":")
    if start == "link":
        linktype = int(lt)
        cls = {1: Ether, 113: CookedLinux, 0: Loopback, 108: Loopback}.get(linktype)
        if cls is None:
            cls = IPv6 if body[:1] and body[0] >> 4 == 6 else IP
    else:
        cls = {"dtls": L.DTLSRecord, "cstp": L.CSTP, "anyconnect-dtls": L.AnyConnectDTLS}.get(
            start, Raw
        )
    if len(body) < len(cls()):
        return  # a top-level header cut short may raise, as Scapy's own IP(b"\x45") does
    pkt = cls(body)
    pkt.summary()
    pkt.show(dump=True)
    bytes(pkt)


# --- craft's --original reader (labkit's capture reader on a user's file) ----------------------


def run_craft_original(data: bytes, work: Path, annotate: bool) -> None:
    from labkit.commands.craft import _read_original

    path = work / "original.pcap"
    path.write_bytes(data)
    _read_original(str(path) + ":2")


# --- text: logs and configs ---------------------------------------------------------------------


def _make_text(kind: str) -> Callable[[random.Random], tuple[bytes, str, str]]:
    def make(rng: random.Random) -> tuple[bytes, str, str]:
        seed = rng.choice(sd.texts(kind))
        raw, names = seed.raw, []
        for _ in range(rng.choice((1, 1, 2, 3))):
            raw, name = mu.text_mutation(rng, raw)
            names.append(name)
        return raw, seed.name, "+".join(names)

    return make


def run_syslog(data: bytes, work: Path, annotate: bool) -> None:
    """``labkit analyze --syslog FILE``'s reading: the bounded line reader, then the parser."""
    from labkit.analyze.sources import read_syslog

    path = work / "asa.log"
    path.write_bytes(data)
    for year in (2022, None):
        report, fold = read_syslog(str(path), year=year, offset=-3600.0)
        _strict_json(json.dumps(report.to_json()))
        for r in fold.reconnects():
            repr(r)


def run_dart(data: bytes, work: Path, annotate: bool) -> None:
    from labkit.analyze.sources import read_dart

    path = work / "dart.txt"
    path.write_bytes(data)
    report, fold = read_dart(str(path), offset=7200.0)
    _strict_json(json.dumps(report.to_json()))
    for r in fold.reconnects():
        repr(r)


# --- key logs and decryption --------------------------------------------------------------------


def _pack(keylog: bytes, capture: bytes) -> bytes:
    return len(keylog).to_bytes(4, "big") + keylog + capture


def _unpack(data: bytes) -> tuple[bytes, bytes]:
    n = int.from_bytes(data[:4], "big")
    return data[4 : 4 + n], data[4 + n :]


def make_keyed(rng: random.Random) -> tuple[bytes, str, str]:
    """A TLS capture and its key log, one of them damaged."""
    seed, keylog = rng.choice(sd.keyed_captures())
    if rng.random() < 0.3:
        keylog, name = mu.text_mutation(rng, keylog)
        return _pack(keylog, seed.raw), seed.name, name
    cap, _names = cf.parse(seed.raw), []
    cap, name = (mu.mutate_packets if rng.random() < 0.7 else mu.mutate_records)(rng, cap)
    raw, lay = cf.serialize(cap)
    if rng.random() < 0.3:
        raw, name2 = rng.choice(mu.RAW_MUTATIONS)(rng, raw, lay)
        name += "+" + name2
    return _pack(keylog, raw), seed.name, name


def run_decrypt(data: bytes, work: Path, annotate: bool) -> None:
    """``labkit analyze FILE --keylog KEYS``'s decryption: key log, TCP, TLS, CSTP."""
    from labkit.analyze import Collect, analyze
    from labkit.analyze.sources import keylog_source, read_keylog

    keylog_bytes, capture = _unpack(data)
    keys, cap = work / "keys.log", work / "tls.pcap"
    keys.write_bytes(keylog_bytes)
    cap.write_bytes(capture)
    keylog = read_keylog(str(keys))
    report = analyze([str(cap)], collect=Collect(keylog))
    src = keylog_source(str(keys), keylog, dict(report.decrypted))
    _strict_json(json.dumps(src.to_json()))


def run_keylog(data: bytes, work: Path, annotate: bool) -> None:
    from labkit.analyze.sources import read_keylog

    path = work / "keys.log"
    path.write_bytes(data)
    keylog = read_keylog(str(path))
    for secrets in keylog.secrets.values():
        for random_ in secrets:
            keylog.can_decrypt(random_)


def make_cstp_stream(rng: random.Random) -> tuple[bytes, str, str]:
    seed = rng.choice(sd.cstp_streams())
    side, body = seed.raw[:1], seed.raw[2:]
    names = []
    for _ in range(rng.choice((1, 2, 3))):
        body, name = mu.text_mutation(rng, body)
        names.append(name)
    chunk = rng.choice((0, 1, 3, 8, 100, 1500))
    return side + bytes([chunk & 0xFF]) + body, seed.name, "+".join(names)


def run_cstp_stream(data: bytes, work: Path, annotate: bool) -> None:
    """The sans-IO CSTP stream parser on decrypted bytes, fed in pieces."""
    from labkit.wire.cstpstream import NEED_DATA, CstpStream, StreamError

    side = "client" if data[:1] == b"c" else "server"
    step = data[1] if len(data) > 1 and data[1] else len(data) or 1
    body = data[2:]
    stream = CstpStream(side)
    events = 0
    for frame, start in enumerate(range(0, len(body), step), start=1):
        stream.receive_data(body[start : start + step], frame, float(frame))
        while (e := stream.next_event()) is not NEED_DATA:
            events += 1
            if events > len(body) + 10:
                raise Crash("CstpStream produced more events than there are bytes")
            if isinstance(e, StreamError):
                break


# --- scenarios ----------------------------------------------------------------------------------

#: Scenario inputs are cut here: PyYAML parses ~1 MB/s in pure Python, and a page of YAML
#: grown to megabytes tests PyYAML's speed, not the loader (which refuses over 1 MiB).
MAX_SCENARIO_INPUT = 32 * 1024


def make_scenario(rng: random.Random) -> tuple[bytes, str, str]:
    seed = rng.choice(sd.texts("scenario"))
    raw, names = seed.raw, []
    for _ in range(rng.choice((1, 1, 2))):
        raw, name = (mu.yaml_mutation if rng.random() < 0.5 else mu.text_mutation)(rng, raw)
        names.append(name)
    return raw[:MAX_SCENARIO_INPUT], seed.name, "+".join(names)


def run_scenario(data: bytes, work: Path, annotate: bool) -> None:
    """``labkit scenario validate FILE`` (and ``build`` when ``annotate``) in process."""
    from labkit.scenario import load
    from labkit.scenario.events import build_timeline

    path = work / "scenario.yaml"
    path.write_bytes(data)
    scenario = load(path)
    build_timeline(scenario).describe()
    if annotate:
        from labkit.scenario.build import build

        build(scenario, work / "built", force=True)


def run_asa_config(data: bytes, work: Path, annotate: bool) -> None:
    """``labkit advise CONFIG [--format json]`` in process: read, parse, advise, render."""
    from labkit.advise import advise
    from labkit.asa_config import parse
    from labkit.commands.advise import read_config, render_text

    path = work / "asa.cfg"
    path.write_bytes(data)
    cfg = parse(read_config(str(path)))
    for base in (1500, 576, 9000):  # --base-mtu; 576 is refused for most configs (exit 2)
        try:
            result = advise(cfg, base_mtu=base)
        except LabkitError:
            continue
        render_text(result)
        _strict_json(json.dumps(result.to_json()))


# --- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    make: Callable[[random.Random], tuple[bytes, str, str]]
    run: Callable[[bytes, Path, bool], None]
    weight: int  # share of a campaign's random inputs
    seeds: Callable[[], tuple[sd.Seed, ...]] = tuple
    #: seed bytes repeated k times, for the scaling check; None: input size is bounded anyway
    grow: Callable[[bytes, int], bytes] | None = None

    def available(self) -> bool:
        return bool(self.seeds())


def _texts(kind: str) -> Callable[[], tuple[sd.Seed, ...]]:
    return lambda: sd.texts(kind)


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("capture", make_capture, run_capture, 50, sd.captures, mu.grow_capture),
        # Bounded: one datagram or TLS record (64 KiB) and at most MAX_CHAIN chained layers.
        Target("layers", make_layer_input, run_layers, 16, sd.captures),
        # Bounded: reads up to the frame asked for (frame 2).
        Target("craft-original", make_capture, run_craft_original, 3, sd.captures),
        Target("syslog", _make_text("syslog"), run_syslog, 10, _texts("syslog"), mu.grow_text),
        Target("dart", _make_text("dart"), run_dart, 6, _texts("dart"), mu.grow_text),
        Target(
            "asa-config",
            _make_text("asa-config"),
            run_asa_config,
            10,
            _texts("asa-config"),
            mu.grow_config,
        ),
        Target("keylog", _make_text("keylog"), run_keylog, 4, _texts("keylog"), mu.grow_text),
        # Bounded: MAX_RECORDS decrypted records, and captures grow through the capture target.
        Target(
            "decrypt", make_keyed, run_decrypt, 8, lambda: tuple(c for c, _ in sd.keyed_captures())
        ),
        Target("cstp-stream", make_cstp_stream, run_cstp_stream, 6, sd.cstp_streams, mu.grow_cstp),
        # Bounded: the loader refuses files over 1 MiB and more than 50 steps.
        Target("scenario", make_scenario, run_scenario, 8, _texts("scenario")),
    )
}


#: What a run must never write to stderr: a traceback (even one Python caught and printed),
#: or a Rust panic's abort message (cryptography prints it before raising PanicException).
STDERR_CRASH_MARKS = ("Traceback (most recent call last)", "panicked at", "Exception ignored")


@contextlib.contextmanager
def _stderr_to(path: Path):
    """File descriptor 2 into ``path`` (what Rust and C code write there too)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "wb") as f:
        os.dup2(f.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def check(target: Target, data: bytes, work: Path, annotate: bool = True) -> bool:
    """Run one input; raise :class:`Crash` (with the traceback) unless labkit behaved.
    Returns True when labkit refused the input with a documented user error."""
    err = work / "stderr.txt"
    with _stderr_to(err):
        refused = _check(target, data, work, annotate)
    text = err.read_text(errors="replace")
    for mark in STDERR_CRASH_MARKS:
        if mark in text:
            raise Crash(f"stderr shows {mark!r}:\n{text[:2000]}")
    return refused


def _check(target: Target, data: bytes, work: Path, annotate: bool) -> bool:
    try:
        target.run(data, work, annotate)
        return False
    except LabkitError:
        return True  # a documented user error: one line on stderr, exit 2
    except (Crash, Hang):
        raise
    except RecursionError as exc:  # the traceback would be thousands of lines
        raise Crash(f"RecursionError: {exc}") from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # pyo3's PanicException (Rust code in cryptography) included
        tb = traceback.format_exc(limit=-6)
        raise Crash(f"{type(exc).__name__}: {exc}\n{tb}") from None
