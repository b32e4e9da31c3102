"""tshark's side of the corpus check: per file, the counts labkit reports in ``files[].counts``
(SYN and SYN-ACK MSS, ICMP 3/4 and ICMPv6 Packet Too Big MTUs, DTLS ClientHellos by record
version), from one ``tshark -T fields`` run per file.

tshark dissects every encapsulation it knows and repeats a field once per layer that has it,
so a frame's fields are read as labkit reads the frame: the innermost packet, and an ICMP
error's quote is a quote, never a packet (a SYN quoted inside an ICMP error is not a SYN).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

FIELDS = (
    "frame.number",
    "ip.proto",
    "ipv6.nxt",
    "tcp.flags.syn",
    "tcp.flags.ack",
    "tcp.options.mss_val",
    "icmp.type",
    "icmp.code",
    "icmp.mtu",
    "icmpv6.type",
    "icmpv6.mtu",
    "dtls.record.version",
    "dtls.record.content_type",
    "dtls.handshake.type",
    "dtls.handshake.fragment_offset",
)


@dataclass
class TsharkCounts:
    syn_mss: Counter = field(default_factory=Counter)
    synack_mss: Counter = field(default_factory=Counter)
    icmp_frag_needed_mtu: Counter = field(default_factory=Counter)
    icmpv6_packet_too_big_mtu: Counter = field(default_factory=Counter)
    dtls_client_hellos_by_version: Counter = field(default_factory=Counter)
    frames: int = 0
    error: str = ""
    duplicates: tuple[int | None, ...] = ()  # editcap's counts by EDITCAP_RULES (None: unread)

    def as_counts(self) -> dict[str, dict[str, int]]:
        """The shape of labkit's ``files[].counts`` for the keys compared."""
        return {
            "syn_mss": _keyed(self.syn_mss),
            "synack_mss": _keyed(self.synack_mss),
            "icmp_frag_needed_mtu": _keyed(self.icmp_frag_needed_mtu),
            "icmpv6_packet_too_big_mtu": _keyed(self.icmpv6_packet_too_big_mtu),
            "dtls_client_hellos_by_version": {
                f"0x{v:04x}": n for v, n in sorted(self.dtls_client_hellos_by_version.items())
            },
        }


def _keyed(c: Counter) -> dict[str, int]:
    return {str(k): n for k, n in sorted(c.items())}


def _ints(v: str) -> list[int]:
    return [int(x, 0) for x in v.split(",") if x != ""]


def editcap_duplicates(
    path: Path, copy: Path, how: tuple[str, ...], timeout: float = 120
) -> int | None:
    """Frames ``editcap HOW`` removes as duplicates (writing the rest to ``copy``), or None
    when editcap cannot read the file."""
    proc = subprocess.run(
        ["editcap", *how, str(path), str(copy)], capture_output=True, text=True, timeout=timeout
    )
    m = re.search(r"(\d+) packets? skipped", proc.stdout + proc.stderr)
    return int(m.group(1)) if m else None


#: labkit's duplicate: the same bytes within the 4 frames before and within 10 ms: what both
#: of editcap's rules remove (a window of 5 frames, ``-d``; a window of 10 ms, ``-w``).
EDITCAP_RULES = (("-d",), ("-w", "0.01"))


def tshark_counts(path: Path, duplicates: int = 0, timeout: float = 120) -> TsharkCounts:
    """tshark's counts of ``path`` with duplicate frames counted once (labkit's rule): read
    from the copy of whichever editcap rule removed ``duplicates`` frames (labkit's count)."""
    out = None
    with tempfile.TemporaryDirectory() as tmp:
        found = []
        for k, how in enumerate(EDITCAP_RULES):
            copy = Path(tmp) / f"dedup{k}.pcapng"
            n = editcap_duplicates(path, copy, how, timeout)
            found.append(n)
            if out is None and n == duplicates and n:
                out = _tshark_counts(copy, timeout)
        if out is None:
            out = _tshark_counts(path, timeout)
    out.duplicates = tuple(found)
    return out


def _tshark_counts(path: Path, timeout: float) -> TsharkCounts:
    args = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=\t"]
    for f in FIELDS:
        args += ["-e", f]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    out = TsharkCounts()
    if proc.returncode != 0 and not proc.stdout:
        out.error = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "tshark"
        return out
    for line in proc.stdout.splitlines():
        row = dict(zip(FIELDS, line.split("\t")))
        out.frames += 1
        _frame(row, out)
    return out


def _frame(row: dict[str, str], out: TsharkCounts) -> None:
    icmp4, icmp6 = _ints(row.get("icmp.type", "")), _ints(row.get("icmpv6.type", ""))
    if icmp4 or icmp6:  # an ICMP packet: its first ICMP header is the message
        if icmp4 and icmp4[0] == 3 and _ints(row["icmp.code"])[:1] == [4]:
            mtu = _ints(row.get("icmp.mtu", ""))
            if mtu:
                out.icmp_frag_needed_mtu[mtu[0]] += 1
        elif icmp6 and icmp6[0] == 2:
            mtu = _ints(row.get("icmpv6.mtu", ""))
            if mtu:
                out.icmpv6_packet_too_big_mtu[mtu[0]] += 1
        return
    syn, ack = _ints(row.get("tcp.flags.syn", "")), _ints(row.get("tcp.flags.ack", ""))
    mss = _ints(row.get("tcp.options.mss_val", ""))
    if syn and syn[-1] and mss:
        (out.synack_mss if ack[-1] else out.syn_mss)[mss[-1]] += 1
    hs = _ints(row.get("dtls.handshake.type", ""))
    if 1 in hs:
        versions = _ints(row.get("dtls.record.version", ""))
        ctypes = _ints(row.get("dtls.record.content_type", ""))
        offsets = _ints(row.get("dtls.handshake.fragment_offset", ""))
        # Records and handshake messages line up when every record is a handshake record;
        # otherwise one version for the whole datagram is the best tshark's fields can say.
        hs_versions = [v for v, c in zip(versions, ctypes) if c == 22]
        if len(hs_versions) != len(hs):
            hs_versions = [versions[0]] * len(hs) if versions else []
        for t, v, off in zip(hs, hs_versions, offsets + [0] * len(hs)):
            if t == 1 and off == 0:
                out.dtls_client_hellos_by_version[v] += 1


_DAMAGED = ("cut short", "damaged or corrupt", "appears to be damaged")


def tshark_frames(path: Path, display_filter: str, timeout: float = 120) -> list[int]:
    """Frames ``display_filter`` selects; a capture cut short (tshark exits 2 after reading
    what it could) still gives its frames, while a filter tshark rejects (the same exit code) is an error."""
    proc = subprocess.run(
        [
            "tshark",
            "-n",
            "-r",
            str(path),
            "-Y",
            display_filter,
            "-T",
            "fields",
            "-e",
            "frame.number",
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0 and not any(w in proc.stderr for w in _DAMAGED):
        raise AssertionError(f"tshark rejects {display_filter!r}: {proc.stderr.strip()}")
    return [int(x) for x in proc.stdout.split()]
