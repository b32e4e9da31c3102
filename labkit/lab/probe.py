"""Active probes: path MTU (DF probes, binary search), MSS clamping, DTLS answer.

Each probe is two halves: a sans-IO parser that turns received bytes into an event (tested
with literal bytes) and a small socket driver, bounded in packets and in time. The drivers
use plain sockets (no Scapy: nothing here dissects more than one packet at a time):

* ``pmtu``: ICMP echo requests with DF set (``IP_PMTUDISC_PROBE``: DF, and the kernel's
  cached path MTU ignored, so the probe measures instead of repeating what the kernel
  learned). An echo reply means "fits"; ICMP type 3 code 4 (RFC 1191) means "too big, the
  next hop takes N"; silence after the retries means "lost". The search first tries the
  first-hop MTU, then the MTU an ICMP named, then bisects.
* ``mss``: one TCP SYN carrying MSS 1378 (the DTLS tunnel's MSS, :mod:`labkit.mtu`) from a
  raw socket; the SYN-ACK's MSS option tells what the far end (or a box that rewrites
  MSS options on the way) allows. Our kernel answers the SYN-ACK with a RST: no connection.
* ``dtls``: one DTLS ClientHello over UDP, repeated with DTLS's doubling timer (RFC 6347
  4.2.4.1); the first answer's record and handshake type and version are reported.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import random
import select
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from labkit import mtu
from labkit.errors import LabkitError, UsageError
from labkit.wire import (
    CT_ALERT,
    CT_APPLICATION_DATA,
    CT_CHANGE_CIPHER_SPEC,
    CT_HANDSHAKE,
    DTLS1_2_VERSION,
    DTLS1_3_VERSION,
    DTLS1_BAD_VER,
    DTLS1_VERSION,
)
from labkit.wire.checksum import internet_checksum
from labkit.wire.dtlsrecord import dtls_header

IP_MTU_DISCOVER = 10
IP_PMTUDISC_PROBE = 3
SIOCGIFMTU = 0x8921
ICMP_ECHO_REPLY, ICMP_UNREACH, ICMP_ECHO = 0, 3, 8
ICMP_FRAG_NEEDED = 4
MAX_PROBES = 64
IPV4_ICMP_ECHO_OVERHEAD = mtu.IPV4_HEADER + 8  # IP header + ICMP echo header


class ProbeError(LabkitError):
    """The probe could not run (no route, no permission, target silent even when small)."""


# --- sans-IO parsers ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EchoReply:
    seq: int
    source: str


@dataclass(frozen=True, slots=True)
class FragNeeded:
    """ICMP 3/4 quoting one of our probes: ``mtu`` is the next-hop MTU it announces."""

    seq: int
    mtu: int
    source: str
    original_length: int


@dataclass(frozen=True, slots=True)
class Unreachable:
    seq: int
    code: int
    source: str


def _ipv4_header(packet: bytes) -> tuple[int, int, str, str] | None:
    """(header length, protocol, src, dst) of an IPv4 packet, None if it is not one."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if ihl < 20 or len(packet) < ihl:
        return None
    return ihl, packet[9], socket.inet_ntoa(packet[12:16]), socket.inet_ntoa(packet[16:20])


def parse_icmp(packet: bytes, ident: int) -> EchoReply | FragNeeded | Unreachable | None:
    """What one IPv4 packet from a raw ICMP socket means for the echo probe ``ident``.

    Errors quote our original IP header and its first 8 bytes (RFC 792): the quoted echo
    request's identifier ties the error to this probe, its sequence number to the size.
    """
    outer = _ipv4_header(packet)
    if outer is None or outer[1] != socket.IPPROTO_ICMP:
        return None
    ihl, _, src, _ = outer
    icmp = packet[ihl:]
    if len(icmp) < 8:
        return None
    kind, code = icmp[0], icmp[1]
    if kind == ICMP_ECHO_REPLY:
        rid, seq = struct.unpack_from("!HH", icmp, 4)
        return EchoReply(seq, src) if rid == ident else None
    if kind != ICMP_UNREACH:
        return None
    quoted = icmp[8:]
    inner = _ipv4_header(quoted)
    if inner is None or inner[1] != socket.IPPROTO_ICMP or len(quoted) < inner[0] + 8:
        return None
    q = quoted[inner[0] :]
    if q[0] != ICMP_ECHO:
        return None
    qid, seq = struct.unpack_from("!HH", q, 4)
    if qid != ident:
        return None
    if code == ICMP_FRAG_NEEDED:
        (next_hop,) = struct.unpack_from("!H", icmp, 6)
        (orig_len,) = struct.unpack_from("!H", quoted, 2)
        return FragNeeded(seq, next_hop, src, orig_len)
    return Unreachable(seq, code, src)


@dataclass(frozen=True, slots=True)
class SynAck:
    mss: int | None


@dataclass(frozen=True, slots=True)
class Reset:
    pass


def tcp_options_mss(options: bytes) -> int | None:
    """The MSS option (kind 2, length 4) of a TCP options block, None if absent."""
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(options) or options[i + 1] < 2:
            break  # malformed: stop rather than loop
        length = options[i + 1]
        if kind == 2 and length == 4 and i + 4 <= len(options):
            return struct.unpack_from("!H", options, i + 2)[0]
        i += length
    return None


def parse_tcp_answer(packet: bytes, target: str, port: int, sport: int) -> SynAck | Reset | None:
    """A SYN-ACK or RST from ``target:port`` to our ``sport``, or None for anything else."""
    hdr = _ipv4_header(packet)
    if hdr is None or hdr[1] != socket.IPPROTO_TCP or hdr[2] != target:
        return None
    tcp = packet[hdr[0] :]
    if len(tcp) < 20:
        return None
    src_port, dst_port = struct.unpack_from("!HH", tcp, 0)
    if (src_port, dst_port) != (port, sport):
        return None
    offset, flags = (tcp[12] >> 4) * 4, tcp[13]
    if flags & 0x04:
        return Reset()
    if flags & 0x12 == 0x12:
        return SynAck(tcp_options_mss(tcp[20:offset]))
    return None


# The names the JSON report gives (``version_name``, ``content_type``): kept as they were.
DTLS_VERSIONS = {
    DTLS1_BAD_VER: "DTLS 0x0100 (Cisco legacy, DTLS1_BAD_VER)",
    DTLS1_VERSION: "DTLS 1.0",
    DTLS1_2_VERSION: "DTLS 1.2",
    DTLS1_3_VERSION: "DTLS 1.3",
}
DTLS_CONTENT = {
    CT_CHANGE_CIPHER_SPEC: "ChangeCipherSpec",
    CT_ALERT: "Alert",
    CT_HANDSHAKE: "Handshake",
    CT_APPLICATION_DATA: "ApplicationData",
}
DTLS_HANDSHAKES = {
    1: "ClientHello",
    2: "ServerHello",
    3: "HelloVerifyRequest",
    11: "Certificate",
    14: "ServerHelloDone",
}


@dataclass(frozen=True, slots=True)
class DtlsAnswer:
    content_type: str
    version: str  # hex, e.g. "0x0100"
    version_name: str
    handshake: str | None


def parse_dtls_answer(datagram: bytes) -> DtlsAnswer | None:
    """The first DTLS record of a datagram (13-byte header, RFC 6347 4.1), None if not DTLS."""
    header = dtls_header(datagram)
    if header is None or header.version not in DTLS_VERSIONS:
        return None
    ctype, version = header.content_type, header.version
    handshake = None
    if ctype == CT_HANDSHAKE and len(datagram) >= 14:
        handshake = DTLS_HANDSHAKES.get(datagram[13], f"type {datagram[13]}")
    return DtlsAnswer(DTLS_CONTENT[ctype], f"0x{version:04x}", DTLS_VERSIONS[version], handshake)


# --- drivers --------------------------------------------------------------------------------


def _check_ipv4(target: str, *, path: bool = False) -> str:
    """``target`` as one IPv4 host a probe can be sent to, checked before anything is sent;
    ``path``: the probe measures the path to it, so an address of this node is refused too
    (its "path" is the loopback device: a 65 536-byte MTU that measures nothing)."""
    try:
        addr = ipaddress.ip_address(target)
    except ValueError:
        raise UsageError(f"target {target!r}: expected an IPv4 address") from None
    if addr.version != 4:
        raise UsageError(f"target {target}: only IPv4 probes are implemented")
    if addr.is_unspecified:
        raise UsageError(f"target {addr}: the unspecified address names no host")
    kind = _route_type(str(addr))
    if addr.is_multicast or kind == "multicast":
        raise UsageError(f"target {addr}: a multicast address; a probe needs one host")
    if addr == ipaddress.IPv4Address("255.255.255.255") or kind == "broadcast":
        raise UsageError(f"target {addr}: a broadcast address; a probe needs one host")
    if addr.is_reserved:
        raise UsageError(f"target {addr}: a reserved address (240.0.0.0/4); no host has it")
    if path and (addr.is_loopback or kind == "local"):
        raise UsageError(
            f"target {addr}: an address of this node: there is no path to measure",
            hint="probe from the other end (--from NODE) or name a remote host",
        )
    return str(addr)


def _route_get(target: str) -> subprocess.CompletedProcess[str]:
    """``ip -j route get TARGET`` in the current namespace (FileNotFoundError: no iproute2)."""
    return subprocess.run(
        ["ip", "-j", "route", "get", target],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


def _route_type(target: str) -> str | None:
    """The kernel's route type to ``target`` (``local``, ``broadcast``, ``multicast``,
    ``unicast``...) in the current namespace; None when iproute2 cannot say. A directed
    broadcast (10.0.0.255 on a /24) or an address of this node is known only to the routes."""
    try:
        proc = _route_get(target)
        if proc.returncode != 0:
            return None
        kind = json.loads(proc.stdout)[0].get("type", "unicast")
    except (OSError, subprocess.SubprocessError, ValueError, LookupError, AttributeError):
        return None
    return kind if isinstance(kind, str) else None


def _raw_socket(proto: int) -> socket.socket:
    try:
        return socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
    except PermissionError:
        raise ProbeError("raw sockets need root (or CAP_NET_RAW)") from None


def first_hop_mtu(target: str) -> tuple[str, int]:
    """(interface, MTU) of the route to ``target`` in the current namespace."""
    try:
        proc = _route_get(target)
    except FileNotFoundError:
        raise ProbeError("the 'ip' tool (iproute2) is needed to find the first hop") from None
    if proc.returncode != 0:
        raise ProbeError(f"no route to {target}: {proc.stderr.strip()}")
    dev = json.loads(proc.stdout)[0]["dev"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = fcntl.ioctl(s, SIOCGIFMTU, struct.pack("16sI", dev.encode()[:15], 0))
    return dev, struct.unpack_from("I", ifreq, 16)[0]


def echo_request(ident: int, seq: int, size: int) -> bytes:
    """An ICMP echo request whose IPv4 packet is ``size`` bytes long."""
    payload = bytes((i & 0xFF) for i in range(size - IPV4_ICMP_ECHO_OVERHEAD))
    header = struct.pack("!BBHHH", ICMP_ECHO, 0, 0, ident, seq)
    csum = internet_checksum(header + payload)
    return struct.pack("!BBHHH", ICMP_ECHO, 0, csum, ident, seq) + payload


@dataclass(frozen=True, slots=True)
class ProbeStep:
    size: int
    outcome: str  # "fits" | "too-big" | "lost"
    icmp_mtu: int | None = None
    icmp_from: str | None = None


@dataclass(frozen=True, slots=True)
class PmtuResult:
    target: str
    path_mtu: int
    # "icmp": an ICMP 3/4 named the limit; "black-hole": only silence did; "interface":
    # nothing on the path is smaller than the first hop's own MTU
    source: str
    interface: str
    interface_mtu: int
    steps: tuple[ProbeStep, ...] = field(default=())
    icmp_mtu: int | None = None
    icmp_from: str | None = None
    elapsed_s: float = 0.0

    @property
    def problem(self) -> bool:
        return self.source == "black-hole"

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["steps"] = [asdict(s) for s in self.steps]
        return {"probe": "pmtu", **d}

    def text(self) -> str:
        how = {
            "icmp": f"ICMP 3/4 from {self.icmp_from} said {self.icmp_mtu}",
            "black-hole": "oversized probes vanished without any ICMP: a PMTUD black hole",
            "interface": f"nothing on the path is smaller than {self.interface} "
            f"(MTU {self.interface_mtu})",
        }[self.source]
        return (
            f"path MTU to {self.target}: {self.path_mtu} ({how}); "
            f"{len(self.steps)} probes in {self.elapsed_s:.1f} s"
        )


def probe_pmtu(
    target: str,
    *,
    timeout: float = 1.0,
    tries: int = 2,
    low: int = mtu.MIN_IPV4_MTU,
    max_time: float = 60.0,
) -> PmtuResult:
    """Find the largest DF packet that reaches ``target`` (bounded: 64 probes, ``max_time``)."""
    target = _check_ipv4(target, path=True)
    dev, dev_mtu = first_hop_mtu(target)
    if dev_mtu < low:
        raise ProbeError(f"{dev} has MTU {dev_mtu}, below the lowest probe size {low}")
    ident = random.randrange(1, 0xFFFF)
    started = time.monotonic()
    steps: list[ProbeStep] = []
    seq = 0
    with _raw_socket(socket.IPPROTO_ICMP) as sock:
        sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE)

        def attempt(size: int) -> ProbeStep:
            nonlocal seq
            for _ in range(tries):
                if len(steps) >= MAX_PROBES or time.monotonic() - started > max_time:
                    raise ProbeError(
                        f"path MTU search to {target} exceeded {MAX_PROBES} "
                        f"probes or {max_time:.0f} s"
                    )
                seq = (seq + 1) & 0xFFFF
                sock.sendto(echo_request(ident, seq, size), (target, 0))
                event = _wait(sock, lambda pkt: parse_icmp(pkt, ident), seq, timeout)
                if isinstance(event, EchoReply):
                    return ProbeStep(size, "fits")
                if isinstance(event, FragNeeded):
                    return ProbeStep(size, "too-big", event.mtu, event.source)
                if isinstance(event, Unreachable):
                    raise ProbeError(
                        f"{event.source} says {target} is unreachable (ICMP 3/{event.code})"
                    )
            return ProbeStep(size, "lost")

        first = attempt(low)
        steps.append(first)
        if first.outcome != "fits":
            raise ProbeError(f"{target} does not answer even a {low}-byte echo request")
        good, bad = low, dev_mtu + 1
        hint: int | None = dev_mtu
        icmp_seen: ProbeStep | None = None
        while bad - good > 1:
            size = hint if hint is not None and good < hint < bad else (good + bad) // 2
            hint = None
            step = attempt(size)
            steps.append(step)
            if step.outcome == "fits":
                good = size
                if icmp_seen is not None and size == icmp_seen.icmp_mtu:
                    hint = size + 1  # confirm the ICMP's claim with one probe, not a bisection
            else:
                bad = size
                if step.outcome == "too-big":
                    icmp_seen = step
                    hint = step.icmp_mtu
    if icmp_seen is not None:
        source = "icmp"
    elif good < dev_mtu:
        source = "black-hole"
    else:
        source = "interface"
    return PmtuResult(
        target,
        good,
        source,
        dev,
        dev_mtu,
        tuple(steps),
        icmp_seen.icmp_mtu if icmp_seen else None,
        icmp_seen.icmp_from if icmp_seen else None,
        round(time.monotonic() - started, 3),
    )


def _wait(
    sock: socket.socket, parse: Callable[[bytes], object], seq: int | None, timeout: float
) -> object | None:
    """The first parsed event (for probe ``seq`` if given) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            return None
        packet = sock.recv(65535)
        event = parse(packet)
        if event is not None and (seq is None or getattr(event, "seq", seq) == seq):
            return event


def _source_address(target: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((target, 9))
        return s.getsockname()[0]


def tcp_syn(src: str, dst: str, sport: int, dport: int, seq: int, mss: int) -> bytes:
    """A TCP SYN with one MSS option and a correct checksum (RFC 793 pseudo-header)."""
    options = struct.pack("!BBH", 2, 4, mss)
    header = (
        struct.pack(
            "!HHIIBBHHH", sport, dport, seq, 0, (5 + len(options) // 4) << 4, 0x02, 64240, 0, 0
        )
        + options
    )
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(header))
    csum = internet_checksum(pseudo + header)
    return header[:16] + struct.pack("!H", csum) + header[18:]


@dataclass(frozen=True, slots=True)
class MssResult:
    target: str
    port: int
    syn_mss: int
    answer: str  # "syn-ack" | "reset" | "none"
    synack_mss: int | None
    attempts: int

    @property
    def clamped(self) -> bool | None:
        """The SYN-ACK allows less than we offered: something (a box or the server's own link)
        limits segments toward the server below the tunnel's MSS."""
        return None if self.synack_mss is None else self.synack_mss < self.syn_mss

    @property
    def problem(self) -> bool:
        return self.answer != "syn-ack"

    def to_json(self) -> dict[str, object]:
        return {"probe": "mss", **asdict(self), "clamped": self.clamped}

    def text(self) -> str:
        if self.answer == "none":
            return f"{self.target}:{self.port}: no answer to {self.attempts} SYNs (filtered?)"
        if self.answer == "reset":
            return f"{self.target}:{self.port}: RST (port closed)"
        verdict = (
            "below our MSS: clamped on the path or limited by the server"
            if self.clamped
            else "not clamped"
        )
        return (
            f"{self.target}:{self.port}: SYN with MSS {self.syn_mss} -> SYN-ACK MSS "
            f"{self.synack_mss} ({verdict})"
        )


def probe_mss(
    target: str, port: int, *, mss: int | None = None, timeout: float = 1.0, tries: int = 3
) -> MssResult:
    """Send a SYN with MSS ``mss`` (default: the DTLS tunnel's, 1378) and read the SYN-ACK."""
    target = _check_ipv4(target)
    if not 1 <= port <= 65535:
        raise UsageError(f"port {port}: expected 1..65535")
    syn_mss = mss if mss is not None else mtu.mss_for_mtu(mtu.dtls_mtu())
    src = _source_address(target)
    sport = random.randrange(40000, 60000)
    with _raw_socket(socket.IPPROTO_TCP) as sock:
        for attempt in range(1, tries + 1):
            seq = random.randrange(0, 2**32)
            sock.sendto(tcp_syn(src, target, sport, port, seq, syn_mss), (target, 0))
            event = _wait(
                sock, lambda pkt: parse_tcp_answer(pkt, target, port, sport), None, timeout
            )
            if isinstance(event, SynAck):
                return MssResult(target, port, syn_mss, "syn-ack", event.mss, attempt)
            if isinstance(event, Reset):
                return MssResult(target, port, syn_mss, "reset", None, attempt)
    return MssResult(target, port, syn_mss, "none", None, tries)


@dataclass(frozen=True, slots=True)
class DtlsResult:
    target: str
    port: int
    answered: bool
    attempts: int
    answer: DtlsAnswer | None = None
    rtt_ms: float | None = None
    refused: bool = False  # ICMP port unreachable came back

    @property
    def problem(self) -> bool:
        return not self.answered

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        ans = d.pop("answer")
        return {
            "probe": "dtls",
            **d,
            "version": ans["version"] if ans else None,
            "version_name": ans["version_name"] if ans else None,
            "content_type": ans["content_type"] if ans else None,
            "handshake": ans["handshake"] if ans else None,
        }

    def text(self) -> str:
        where = f"{self.target}:{self.port}"
        if self.answer is not None:
            what = self.answer.handshake or self.answer.content_type
            return (
                f"{where}: answered with {what}, {self.answer.version_name} "
                f"({self.answer.version}) after {self.attempts} ClientHello(s), "
                f"{self.rtt_ms:.1f} ms"
            )
        if self.refused:
            return f"{where}: ICMP port unreachable (nothing listens on UDP {self.port})"
        return f"{where}: no answer to {self.attempts} ClientHellos (UDP blocked or wrong port?)"


def probe_dtls(
    target: str, port: int, hello: bytes, *, timeout: float = 1.0, tries: int = 3
) -> DtlsResult:
    """Send ``hello`` (a DTLS ClientHello record) until an answer or ``tries`` are used.

    The wait doubles after each try, as DTLS's retransmission timer does (RFC 6347 4.2.4.1).
    """
    target = _check_ipv4(target)
    if not 1 <= port <= 65535:
        raise UsageError(f"port {port}: expected 1..65535")
    wait = timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((target, port))
        for attempt in range(1, tries + 1):
            sent = time.monotonic()
            sock.send(hello)
            deadline = sent + wait
            while (left := deadline - time.monotonic()) > 0:
                ready, _, _ = select.select([sock], [], [], left)
                if not ready:
                    break
                try:
                    data = sock.recv(65535)
                except ConnectionRefusedError:
                    return DtlsResult(target, port, False, attempt, refused=True)
                answer = parse_dtls_answer(data)
                if answer is not None:
                    return DtlsResult(
                        target,
                        port,
                        True,
                        attempt,
                        answer,
                        round((time.monotonic() - sent) * 1000, 2),
                    )
            wait *= 2
    return DtlsResult(target, port, False, tries)


def session_id(text: str | None) -> bytes:
    """``--session-id HEX`` (32 bytes, as X-DTLS-Session-ID carries it) or 32 random bytes."""
    if text is None:
        return os.urandom(32)
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"session id {text!r}: expected hex digits") from None
    if not 1 <= len(value) <= 32:
        raise UsageError(f"session id: expected 1..32 bytes, got {len(value)}")
    return value
