"""Replay a capture into an interface, in tcpreplay's conventions.

* Timing: by default the capture's own gaps (tcpreplay's ``--multiplier 1``); ``--speed X``
  (``--multiplier X``) divides them by X, ``--pps N`` sends N packets a second, ``--mbps R``
  R megabits a second, ``--topspeed`` as fast as possible. ``--loop N`` replays the file N
  times, ``--limit N`` and ``--duration S`` bound the run (tcpreplay's ``--limit``/
  ``--duration``).
* Reading: pcap or pcapng, gzip-compressed or not, through :mod:`labkit.pcapio.reader`
  (the analyzer's reader), streamed as packets are sent, never loaded: memory does not grow
  with the file, and ``--limit 1`` reads one buffer of a 300 MB capture.
* Rewrites as tcprewrite does them: ``--rewrite-mac OLD=NEW`` on both Ethernet addresses,
  ``--rewrite-ip OLD=NEW`` on both IP addresses (single addresses or equal-length prefixes,
  like ``--pnat``). A rewritten packet gets its IPv4 header checksum and its TCP, UDP or
  ICMPv6 checksum recomputed; an untouched packet leaves exactly as captured. As with
  tcprewrite, the IP header quoted inside an ICMP error is left as it was.
* Output: packets sent and failed (too big for the interface, for one) and the achieved rate.

The rewrite half is sans-IO (bytes in, bytes out) and tested on literal bytes; sending uses
an AF_PACKET socket bound to the interface, opened inside the target namespace.
"""

from __future__ import annotations

import ipaddress
import math
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from labkit.analyze.decode import locate
from labkit.errors import InputError, UsageError
from labkit.pcapio.reader import open_capture
from labkit.wire import LINKTYPE_ETHERNET
from labkit.wire.checksum import internet_checksum

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
MAX_LOOPS = 100_000

IpNet = ipaddress.IPv4Network | ipaddress.IPv6Network


# --- maps -----------------------------------------------------------------------------------


def _mac(text: str) -> bytes:
    parts = text.strip().lower().split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise UsageError(f"MAC address {text!r}: expected six hex bytes like 02:00:00:00:00:01")
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        raise UsageError(f"MAC address {text!r}: expected hex digits") from None


def parse_mac_map(text: str | None) -> dict[bytes, bytes]:
    """``OLD=NEW[,OLD=NEW...]`` into {old: new} (6-byte values)."""
    if not text:
        return {}
    out: dict[bytes, bytes] = {}
    for item in text.split(","):
        old, sep, new = item.partition("=")
        if not sep:
            raise UsageError(f"--rewrite-mac {item!r}: expected OLD=NEW")
        out[_mac(old)] = _mac(new)
    return out


@dataclass(frozen=True, slots=True)
class IpRule:
    old: IpNet
    new: IpNet

    def apply(self, addr: bytes) -> bytes | None:
        ip = ipaddress.ip_address(addr)
        if ip.version != self.old.version or ip not in self.old:
            return None
        host = int(ip) - int(self.old.network_address)
        return (int(self.new.network_address) + host).to_bytes(len(addr), "big")


def parse_ip_map(text: str | None) -> tuple[IpRule, ...]:
    """``OLD=NEW[,...]``: addresses, or prefixes of the same length (tcprewrite's --pnat)."""
    if not text:
        return ()
    rules = []
    for item in text.split(","):
        old, sep, new = item.partition("=")
        if not sep:
            raise UsageError(f"--rewrite-ip {item!r}: expected OLD=NEW")
        try:
            a = ipaddress.ip_network(old.strip(), strict=True)
            b = ipaddress.ip_network(new.strip(), strict=True)
        except ValueError as exc:
            raise UsageError(f"--rewrite-ip {item!r}: {exc}") from None
        if a.version != b.version or a.prefixlen != b.prefixlen:
            raise UsageError(
                f"--rewrite-ip {item!r}: both sides must be the same IP version and prefix length"
            )
        rules.append(IpRule(a, b))
    return tuple(rules)


# --- rewriting (sans-IO) --------------------------------------------------------------------


_L4_CSUM_OFFSET = {6: 16, 17: 6, 58: 2}  # TCP, UDP, ICMPv6


def _fix_l4(buf: bytearray, l4: int, end: int, proto: int, src: bytes, dst: bytes) -> None:
    off = _L4_CSUM_OFFSET.get(proto)
    if off is None or end - l4 < off + 2:
        return
    if proto == 17 and buf[l4 + off : l4 + off + 2] == b"\0\0" and len(src) == 4:
        return  # IPv4 UDP without checksum stays without (RFC 768)
    buf[l4 + off : l4 + off + 2] = b"\0\0"
    length = end - l4
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, proto, length)
    else:
        pseudo = src + dst + struct.pack("!IxxxB", length, proto)
    value = internet_checksum(pseudo + bytes(buf[l4:end]))
    if proto == 17 and value == 0:
        value = 0xFFFF
    buf[l4 + off : l4 + off + 2] = struct.pack("!H", value)


def _map_addr(addr: bytes, rules: tuple[IpRule, ...]) -> bytes:
    for rule in rules:
        new = rule.apply(addr)
        if new is not None:
            return new
    return addr


def rewrite_ip(buf: bytearray, start: int, rules: tuple[IpRule, ...], wire_len: int) -> bool:
    """Rewrite the IP packet at ``buf[start:]`` in place; True if it changed.

    L4 checksums are recomputed only when the whole packet was captured and it is not a
    fragment (a fragment's checksum covers bytes this packet does not have).
    """
    if not rules or len(buf) < start + 20:
        return False
    version = buf[start] >> 4
    complete = len(buf) >= wire_len
    if version == 4:
        ihl = (buf[start] & 0x0F) * 4
        src, dst = bytes(buf[start + 12 : start + 16]), bytes(buf[start + 16 : start + 20])
        nsrc, ndst = _map_addr(src, rules), _map_addr(dst, rules)
        if (nsrc, ndst) == (src, dst):
            return False
        buf[start + 12 : start + 16], buf[start + 16 : start + 20] = nsrc, ndst
        buf[start + 10 : start + 12] = b"\0\0"
        buf[start + 10 : start + 12] = struct.pack(
            "!H", internet_checksum(bytes(buf[start : start + ihl]))
        )
        total = struct.unpack_from("!H", buf, start + 2)[0]
        frag = struct.unpack_from("!H", buf, start + 6)[0]
        if complete and frag & 0x3FFF == 0 and len(buf) >= start + total:
            _fix_l4(buf, start + ihl, start + total, buf[start + 9], nsrc, ndst)
        return True
    if version == 6 and len(buf) >= start + 40:
        src, dst = bytes(buf[start + 8 : start + 24]), bytes(buf[start + 24 : start + 40])
        nsrc, ndst = _map_addr(src, rules), _map_addr(dst, rules)
        if (nsrc, ndst) == (src, dst):
            return False
        buf[start + 8 : start + 24], buf[start + 24 : start + 40] = nsrc, ndst
        payload = struct.unpack_from("!H", buf, start + 4)[0]
        if complete and len(buf) >= start + 40 + payload:
            # Extension headers are not walked: only a transport header right after IPv6.
            _fix_l4(buf, start + 40, start + 40 + payload, buf[start + 6], nsrc, ndst)
        return True
    return False


def ip_offset(frame: bytes, linktype: int) -> int | None:
    """Where the outermost IP header starts in a frame of ``linktype``, None if it carries no
    IP: the analyzer's reading of link layers (VLAN tags, cooked captures, loopback...), so
    what replay rewrites is what the analyzer reads."""
    off, version, _why = locate(frame, linktype, outermost=True)
    return off if version else None


def rewrite_frame(
    frame: bytes,
    linktype: int,
    macs: dict[bytes, bytes],
    ips: tuple[IpRule, ...],
    wire_len: int | None = None,
) -> tuple[bytes, bool]:
    """(frame after the MAC and IP maps, changed?)."""
    buf = bytearray(frame)
    changed = False
    if linktype == LINKTYPE_ETHERNET and macs and len(buf) >= 12:
        for lo in (0, 6):
            new = macs.get(bytes(buf[lo : lo + 6]))
            if new is not None:
                buf[lo : lo + 6] = new
                changed = True
    start = ip_offset(frame, linktype)
    if start is not None:
        ip_wire = (wire_len if wire_len is not None else len(frame)) - start
        changed |= rewrite_ip(buf, start, ips, start + ip_wire)
    return bytes(buf), changed


# --- reading and pacing ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    time: float
    data: bytes
    wire_len: int


def _records(path: Path) -> Iterator[tuple[int, Record]]:
    """(link type, record) for each packet of a pcap or pcapng file (or its ``.gz``), read as
    it is sent.

    Streamed through :mod:`labkit.pcapio.reader`, never loaded: replaying the first packets of
    a 300 MB capture reads only its first buffer, memory stays one buffer whatever the file's
    size, and a pipe's packets are sent as they arrive. A problem the reader meets mid-file
    (a cut record, a broken block) ends the replay with one line, after the packets before
    it were sent.
    """
    linktype: int | None = None
    n = 0
    when = 0.0
    # A pipe (``tcpdump -w - | labkit replay -``) is read as its writer writes, a packet at
    # a time, rather than a buffer at a time: it ends when the writer closes it.
    live = None if path.is_file() else threading.Event()
    with open_capture(path, follow=live) as cap:
        for chunk in cap.chunks():
            for i in range(len(chunk)):
                if chunk.iface[i] < 0:  # not a packet (a pcapng record of another kind)
                    continue
                lt = int(chunk.linktype[i])
                if linktype is None:
                    linktype = lt
                elif lt != linktype:
                    raise InputError(
                        f"{path}: mixes link types {linktype} and {lt}; "
                        "replay one interface's packets at a time"
                    )
                ts = float(chunk.ts[i])
                when = when if math.isnan(ts) else ts  # an SPB has no time: no gap
                data = chunk.packet(i)
                n += 1
                yield lt, Record(when, data, int(chunk.origlen[i]) or len(data))
        if cap.warnings:
            raise InputError(f"{path}: damaged capture after {n} packets ({cap.warnings[0]})")


class CaptureFile:
    """A capture to replay: its link type, read from its first packet, and one pass over its
    records per :meth:`records` call (one per ``--loop``).

    The first pass goes on from the read that found the link type, so a pipe, read once,
    replays whole; later passes reopen the file (a regular file only: the command refuses
    ``--loop`` on anything else).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._pending: Iterator[tuple[int, Record]] | None = _records(self.path)
        try:
            self.linktype, self._first = next(self._pending)
        except StopIteration:
            raise InputError(f"{self.path}: the capture holds no packet") from None

    def records(self) -> Iterator[Record]:
        pending, self._pending = self._pending, None
        if pending is None:
            pending = _records(self.path)
        else:
            yield self._first
        for _, rec in pending:
            yield rec


@dataclass(frozen=True, slots=True)
class Pace:
    """How to space packets: ``speed`` multiplies the capture's rate, or fixed ``pps``, or a
    fixed bit rate ``mbps`` (tcpreplay's ``--mbps``), or none of them (``topspeed``)."""

    speed: float | None = 1.0
    pps: float | None = None
    mbps: float | None = None

    def __post_init__(self) -> None:
        for name in ("speed", "pps", "mbps"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UsageError(f"--{name} {value}: expected a number > 0")


def schedule(
    records: Callable[[], Iterable[Record]], pace: Pace, loops: int
) -> Iterator[tuple[float, Record]]:
    """(seconds after the start, record) for every packet of every loop.

    ``records`` is called once per loop and read as the packets go: nothing is held but the
    current packet, so a capture of any size replays in constant memory.
    """
    if not 1 <= loops <= MAX_LOOPS:
        raise UsageError(f"--loop {loops}: expected 1..{MAX_LOOPS}")
    offset = 0.0
    n = 0
    sent_bits = 0
    for _ in range(loops):
        first: float | None = None
        last = 0.0
        for rec in records():
            first = rec.time if first is None else first
            last = max(last, rec.time)
            if pace.pps is not None:
                at = n / pace.pps
            elif pace.mbps is not None:
                at = sent_bits / (pace.mbps * 1e6)
            elif pace.speed is not None:
                at = offset + max(0.0, rec.time - first) / pace.speed
            else:
                at = 0.0
            n += 1
            sent_bits += len(rec.data) * 8
            yield at, rec
        if first is not None and pace.speed is not None and pace.pps is pace.mbps is None:
            offset += max(0.0, last - first) / pace.speed  # the next loop starts where this ended


# --- sending --------------------------------------------------------------------------------


@dataclass
class Stats:
    sent: int = 0
    failed: int = 0
    bytes: int = 0
    rewritten: int = 0
    elapsed: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "bytes": self.bytes,
            "rewritten": self.rewritten,
            "elapsed_s": round(self.elapsed, 6),
            "pps": round(self.pps, 2),
            "mbps": round(self.mbps, 4),
            "errors": self.errors,
        }

    @property
    def pps(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def mbps(self) -> float:
        return self.bytes * 8 / self.elapsed / 1e6 if self.elapsed > 0 else 0.0

    def text(self) -> str:
        lines = [
            f"Actual: {self.sent} packets ({self.bytes} bytes) sent in {self.elapsed:.6f} seconds",
            f"Rated: {self.bytes / self.elapsed if self.elapsed > 0 else 0:.1f} Bps, "
            f"{self.mbps:.3f} Mbps, {self.pps:.2f} pps",
            f"Successful packets: {self.sent}",
            f"Failed packets: {self.failed}",
            f"Rewritten packets: {self.rewritten}",
        ]
        lines += [f"  {count} x {err}" for err, count in self.errors.items()]
        return "\n".join(lines)


def open_sender(iface: str, linktype: int) -> tuple[socket.socket, bool]:
    """An AF_PACKET socket on ``iface`` (in the current namespace) and whether it takes whole
    Ethernet frames (True) or IP packets the kernel frames itself (False, for tun/L3 links)."""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sock.bind((iface, 0))
    except PermissionError:
        raise UsageError("sending raw frames needs root (or CAP_NET_RAW)") from None
    except OSError as exc:
        raise UsageError(f"interface {iface}: {exc.strerror}") from None
    hwtype = sock.getsockname()[3]
    ethernet = hwtype == 1  # ARPHRD_ETHER
    if linktype == LINKTYPE_ETHERNET and not ethernet:
        sock.close()
        raise UsageError(
            f"{iface} is not an Ethernet interface but the capture holds Ethernet "
            "frames; capture at an Ethernet point or replay onto one"
        )
    if linktype != LINKTYPE_ETHERNET and ethernet:
        sock.close()
        raise UsageError(
            f"the capture holds IP packets without Ethernet headers and {iface} "
            "is Ethernet; replay it onto an L3 (tun) interface"
        )
    return sock, ethernet


def send_all(
    sock: socket.socket,
    iface: str,
    ethernet: bool,
    capture: CaptureFile,
    pace: Pace,
    loops: int,
    macs: dict[bytes, bytes],
    ips: tuple[IpRule, ...],
    *,
    limit: int | None = None,
    duration: float | None = None,
) -> Stats:
    """Send the records on the schedule; failures are counted, not fatal."""
    stats = Stats()
    linktype = capture.linktype
    start = time.monotonic()
    for n, (at, rec) in enumerate(schedule(capture.records, pace, loops)):
        if limit is not None and n >= limit:
            break
        if duration is not None and at > duration:
            break
        delay = start + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        frame, changed = rewrite_frame(rec.data, linktype, macs, ips, rec.wire_len)
        if not ethernet:
            off = ip_offset(frame, linktype)
            if off is None:
                stats.failed += 1
                stats.errors["not an IP packet"] = stats.errors.get("not an IP packet", 0) + 1
                continue
            frame = frame[off:]
        stats.rewritten += changed
        try:
            if ethernet:
                sock.send(frame)
            else:  # an L3 link: tell the kernel which protocol the packet is
                sock.sendto(frame, (iface, ETH_P_IPV6 if frame[0] >> 4 == 6 else ETH_P_IP))
        except OSError as exc:
            stats.failed += 1
            key = exc.strerror or str(exc)
            stats.errors[key] = stats.errors.get(key, 0) + 1
            continue
        stats.sent += 1
        stats.bytes += len(frame)
    stats.elapsed = time.monotonic() - start
    return stats
