"""Resource safety: hostile sizes and counts allocate nothing of their size, bombs stop.

Memory is measured where it is spent: the capture reader's buffers are anonymous mappings
(invisible to tracemalloc), so capture cases run ``labkit`` in a subprocess and read its
peak resident set (VmHWM); pure-Python readers are measured with tracemalloc. Time is never
budgeted in seconds: a path that must stay linear is timed on a small and a 4x larger input
(``tests.helpers.cost``). Marked ``slow``: gigabyte claims, bombs and millions of packets.
"""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from labkit.analyze import analyze
from labkit.pcapio.reader import BOMB_FLOOR, BOMB_RATIO, open_capture
from tests.helpers.cli import labkit
from tests.helpers.cost import per_byte_growth
from tests.helpers.memory import traced_memory
from tests.helpers.paths import ROOT

pytestmark = pytest.mark.slow

#: Python, numpy and the analyzer's two 16 MiB read buffers come to ~100 MB resident; a
#: 4 GB (or per-packet) allocation would be far above this.
MAX_RSS_MB = 300

SYSLOG_SEED = ROOT / "tests" / "data" / "asa-seed.log"
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
PACKET = bytes.fromhex(
    "020000000002020000000001080045000028000140004006"
    + "0000c0a80001c0a80002"
    + "04d201bb00000001000000005002ffff00000000"
)  # Ethernet/IPv4/TCP, 54 B


def _record(data: bytes, caplen: int | None = None, origlen: int | None = None) -> bytes:
    n = len(data) if caplen is None else caplen
    return (
        struct.pack("<IIII", 1_700_000_000, 0, n, len(data) if origlen is None else origlen) + data
    )


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


SHB = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
IDB = _block(1, struct.pack("<HHI", 1, 0, 262144))


def _epb(data: bytes) -> bytes:
    return _block(6, struct.pack("<IIIII", 0, 0, 0, len(data), len(data)) + data)


def peak_rss_mb(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run ``labkit ARGS`` in a child; its peak resident set in MB and the result.

    The peak is the child's VmHWM (/proc/self/status): ``ru_maxrss`` would not do, Linux
    carries it across exec from the forking parent (a pytest process of a gigabyte)."""
    code = (
        "import sys\nfrom labkit.cli import main\nrc = main(sys.argv[1:])\n"
        "hwm = next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
        "sys.stderr.write(f'\\nRSS {hwm}\\n')\nsys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    rss_line = proc.stderr.rstrip().rsplit("\n", 1)[-1]
    assert rss_line.startswith("RSS "), proc.stderr
    proc.stderr = proc.stderr.rstrip().rsplit("\n", 1)[0].rstrip("\n") + "\n"
    return int(rss_line.split()[1]) / 1024, proc


# --- claims of 4 GB and 10^9 -------------------------------------------------------------------

CLAIMS = {
    # pcap: a record header claiming a 4 GB packet after one good record
    "pcap-caplen-4GB": PCAP_HEADER + _record(PACKET) + _record(PACKET, caplen=0xFFFFFFF0),
    # pcap: the file header's snaplen and a record's original length at 4 GB
    "pcap-snaplen-origlen-4GB": PCAP_HEADER[:16]
    + struct.pack("<II", 0xFFFFFFFF, 1)
    + _record(PACKET, origlen=0xFFFFFFFF) * 3,
    # pcapng: a block claiming 4 GB (both copies of its length)
    "pcapng-block-4GB": SHB + IDB + _epb(PACKET) + struct.pack("<II", 6, 0xFFFFFFFC) + PACKET,
    # pcapng: an EPB whose captured length claims 4 GB inside a normal-sized block
    "pcapng-epb-caplen-4GB": SHB
    + IDB
    + _epb(PACKET)
    + _block(6, struct.pack("<IIIII", 0, 0, 0, 0xFFFFFFF0, 0xFFFFFFF0) + PACKET),
    # pcapng: an Interface Statistics Block claiming 10^9 packets received and dropped
    "pcapng-isb-1e9-packets": SHB
    + IDB
    + _epb(PACKET)
    + _block(
        5,
        struct.pack("<III", 0, 0, 0)
        + struct.pack("<HHQ", 4, 8, 10**9)
        + struct.pack("<HHQ", 5, 8, 10**9)
        + b"\0" * 4,
    ),
    # pcapng: a section header claiming a section of 2^62 bytes
    "pcapng-section-length-huge": _block(
        0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, 1 << 62)
    )
    + IDB
    + _epb(PACKET),
}


@pytest.mark.parametrize("name", sorted(CLAIMS))
def test_claimed_sizes_allocate_nothing_of_their_size(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.pcap"
    path.write_bytes(CLAIMS[name])
    rss, proc = peak_rss_mb("analyze", "--format", "json", str(path))
    assert rss < MAX_RSS_MB, f"{name}: peak RSS {rss:.0f} MB"
    assert proc.returncode in (0, 1), proc.stderr  # the good packet is analyzed
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


def test_a_billion_packets_claimed_by_craft_is_refused_at_once() -> None:
    proc = labkit("craft", "syn", "--count", str(10**9))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--count" in proc.stderr


def test_millions_of_packets_keep_memory_flat(tmp_path: Path) -> None:
    """Nothing is kept per packet: 4x the packets, the same peak. (The peak itself is one
    16 MiB chunk's columns: ~240 000 small records, a few hundred MB, by design.)"""
    peaks = []
    for n in (600_000, 2_400_000):
        path = tmp_path / f"many-{n}.pcap.gz"
        with gzip.open(path, "wb", compresslevel=1) as f:
            f.write(PCAP_HEADER)
            rec = _record(PACKET)
            for _ in range(n // 100_000):
                f.write(rec * 100_000)
        rss, proc = peak_rss_mb("analyze", "--format", "json", str(path))
        assert proc.returncode in (0, 1), proc.stderr
        assert f'"packets": {n}' in proc.stdout
        peaks.append(rss)
    assert peaks[1] < 1.2 * peaks[0] and peaks[1] < 1024, f"peak RSS {peaks} MB"


def test_a_pcapng_of_empty_blocks_is_walked_a_bounded_slice_at_a_time(tmp_path: Path) -> None:
    """Two million 32-byte EPBs fill a read buffer with 500 000 records: columns are made for
    at most MAX_ROWS of them at a time (before that cap: 600 MB peak)."""
    path = tmp_path / "empty-blocks.pcapng"
    path.write_bytes(SHB + IDB + _epb(b"") * 2_000_000)
    rss, proc = peak_rss_mb("analyze", "--format", "json", str(path))
    assert proc.returncode == 2 and "no IP packets" in proc.stderr, proc.stderr
    assert rss < 400, f"peak RSS {rss:.0f} MB"


# --- gzip ------------------------------------------------------------------------------------------


def _zeros_member(total: int) -> bytes:
    """A gzip member of ``total`` zero bytes, compressed a MiB at a time."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    zero = bytes(1 << 20)
    return b"".join([*(c.compress(zero) for _ in range(total >> 20)), c.flush()])


def test_gzip_bomb_stops_at_the_limit_with_a_clear_message(tmp_path: Path) -> None:
    """8 GiB of zeros in ~8 MB (32 members of 256 MiB after a pcap header): read up to the
    limit, then refused; the CLI says so in one line and exits 2."""
    member = _zeros_member(256 << 20)
    bomb = tmp_path / "bomb.pcap.gz"
    bomb.write_bytes(gzip.compress(PCAP_HEADER) + member * 32)
    rss, proc = peak_rss_mb("analyze", str(bomb))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "decompression bomb" in proc.stderr and "no IP packets" in proc.stderr
    assert rss < MAX_RSS_MB
    with open_capture(bomb) as cap:
        read = sum(len(c) for c in cap.chunks())
        assert any("decompression bomb" in w.message for w in cap.warnings)
        assert cap.bytes_read <= 2 * BOMB_FLOOR + (32 << 20)  # stopped near the floor
    assert read > 0  # what came before the limit was still read (zero-length records)


def test_compressible_real_capture_is_no_bomb(tmp_path: Path) -> None:
    """Highly repetitive traffic (one packet a million times, as a flood capture holds)
    stays far below the ratio: the limit refuses bombs, not captures."""
    path = tmp_path / "flood.pcap.gz"
    body = PCAP_HEADER + b"".join(
        _record(PACKET[:-4] + i.to_bytes(4, "big")) for i in range(400_000)
    )
    path.write_bytes(gzip.compress(body, 9))
    assert len(body) / path.stat().st_size < BOMB_RATIO
    report = analyze([path])
    assert report.files[0].packets == 400_000
    assert not any("bomb" in w for w in report.files[0].warnings)


def test_gzip_member_ending_at_a_read_boundary_loses_no_byte(tmp_path: Path) -> None:
    """Two members, the first exactly one read piece (1 MiB) long: the reader once consumed
    the next member's first byte while checking for the end of the file."""
    from labkit.pcapio.reader import _GzipStream

    records = PCAP_HEADER + _record(PACKET) * 30_000
    first = b""
    lo, hi = 0, len(records)
    while lo < hi:  # a stored (level 0) prefix of records whose member is exactly 1 MiB
        mid = (lo + hi + 1) // 2
        size = len(gzip.compress(records[:mid], compresslevel=0, mtime=0))
        lo, hi = (mid, hi) if size <= _GzipStream.PIECE else (lo, mid - 1)
    first = gzip.compress(records[:lo], compresslevel=0, mtime=0)
    assert len(first) == _GzipStream.PIECE, "could not size the first member exactly"
    path = tmp_path / "two-members.pcap.gz"
    path.write_bytes(first + gzip.compress(records[lo:], mtime=0))
    with open_capture(path) as cap:
        frames = sum(len(c) for c in cap.chunks())
        assert cap.warnings == []
    assert frames == 30_000


# --- logs and key logs -----------------------------------------------------------------------------


def test_a_log_without_newlines_is_read_a_line_piece_at_a_time(tmp_path: Path) -> None:
    from labkit.analyze.sources import read_syslog
    from labkit.logs.files import MAX_LINE_BYTES

    path = tmp_path / "no-newline.log"
    path.write_bytes(b"A" * (32 << 20) + b"\n%ASA-6-722036: x\n")
    read_syslog(str(SYSLOG_SEED), year=2022)  # modules imported once, outside the measure
    with traced_memory() as mem:
        report, fold = read_syslog(str(path), year=2022)
    assert mem.peak < 8 * MAX_LINE_BYTES, f"peak {mem.peak >> 20} MiB for a 32 MiB line"
    assert report.error and fold.events == 0
    assert "3 lines" not in report.summary and "2 lines" in report.summary  # line count kept


def _busy_head_end_log(path: Path, lines: int) -> None:
    """A busy head-end's syslog: 722036/602101 floods of 40 users, and their TLS tunnels
    closed and opened 20 s apart (a start, not a reconnect), 25 lines a second."""
    with gzip.open(path, "wt", compresslevel=1) as f:
        for i in range(lines):
            s, u = 3600 + i // 25, (i * 7) % 40
            who = f"Group <GP-{u % 4}> User <user{u}> IP <10.0.{u}.2>"
            body = (
                f"%ASA-6-722036: {who} Transmitting large packet 1418 (threshold 1347).",
                "%ASA-6-602101: PMTU-D packet 1418 bytes greater than effective mtu 1347, "
                f"dest_addr=192.168.{u}.10, src_addr=192.168.10.20, prot=TCP",
                f"%ASA-4-722037: {who} SVC closing connection: Idle timeout.",
                f"%ASA-6-722022: {who} TCP SVC connection established without compression",
            )[(i // 40) % 4 if i % 200 < 40 else i % 2]
            f.write(f"Nov 16 2022 {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}: {body}\n")


def _dart_export(path: Path, blocks: int) -> None:
    """A DART export of ``blocks`` event blocks, a second apart, of the kinds a day holds."""
    texts = ("VPN session established", "Connected to 10.1.1.2.", "Profile settings updated.")
    with gzip.open(path, "wt", compresslevel=1) as f:
        for i in range(blocks):
            day, s = divmod(i, 86400)
            f.write(
                f"{'*' * 42}\nDate        : 11/{1 + day}/2022\n"
                f"Time        : {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}\n"
                f"Type        : Information\nSource      : acvpnagent\n\n"
                f"Description : {texts[i % 3]}\nsecond line of the description\n"
            )


@pytest.mark.parametrize(
    "option, write, n, counted",
    [
        ("--syslog", _busy_head_end_log, 250_000, "AnyConnect/MTU event(s)"),
        ("--dart", _dart_export, 60_000, "event block(s)"),
    ],
)
def test_logs_are_folded_as_read_peak_memory_flat(
    tmp_path: Path, option: str, write: Callable[[Path, int], None], n: int, counted: str
) -> None:
    """Every event was kept to the end (~160 bytes a syslog event: 20 M lines 3.2 GB): 4x the
    lines, the same peak. Events are folded into per-key counts and the first lines."""
    peaks = []
    for size in (n, 4 * n):
        path = tmp_path / f"log-{size}.gz"
        write(path, size)
        rss, proc = peak_rss_mb("analyze", option, str(path), "--format", "json")
        assert proc.returncode in (0, 1), proc.stderr
        (source,) = json.loads(proc.stdout)["sources"]
        assert f" {size} {counted}" in source["summary"], source["summary"]
        peaks.append(rss)
    assert peaks[1] < 1.15 * peaks[0], f"peak RSS {peaks} MB"


def test_a_huge_key_log_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    from labkit.analyze.sources import MAX_KEYLOG_BYTES, read_keylog
    from labkit.errors import InputError

    path = tmp_path / "keys.log"
    with open(path, "wb") as f:
        f.truncate(4 << 30)  # sparse: 4 GiB claimed, no disk used
    with traced_memory() as mem, pytest.raises(InputError, match="not an NSS key log"):
        read_keylog(str(path))
    assert mem.peak < 2 * MAX_KEYLOG_BYTES


#: Per-byte cost at 4x the input over the cost at 1x: ~1 for linear code, ~4 for quadratic.
MAX_PER_BYTE_GROWTH = 2.0


def test_cstp_head_fed_a_byte_at_a_time_costs_linear_time() -> None:
    """An HTTP head in 1-byte pieces (TLS records of one byte): the end-of-head search resumes
    where it stopped (it rescanned the whole buffer: quadratic, 1.6 s for 64 KiB)."""
    from labkit.wire.cstpstream import NEED_DATA, CstpStream, HttpHead

    def feed(pad: int) -> list[object]:
        head = b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nX-Pad: " + b"a" * pad + b"\r\n\r\n"
        stream = CstpStream("client")
        events = []
        for i in range(len(head)):
            stream.receive_data(head[i : i + 1], i, 0.0)
            while (e := stream.next_event()) is not NEED_DATA:
                events.append(e)
        return events

    events = feed(65000)
    assert [type(e) for e in events] == [HttpHead] and events[0].tunnel
    growth = per_byte_growth(feed, 16_000, 4)
    assert growth < MAX_PER_BYTE_GROWTH, f"cost per byte grows {growth:.1f}x at 4x the head"


def test_dart_host_with_a_long_run_of_dots_costs_linear_time() -> None:
    """``Reconnecting to ....x``: the host's trailing dots are stripped in code, because a
    lazy regex over them backtracks quadratically (16 000 dots took 7 s)."""
    from labkit.logs.dart import parse_dart

    seed = ROOT / "tests" / "fuzz_regressions" / "dart" / "reconnecting-to-20000-dots.txt"
    block = seed.read_text().split("Reconnecting to ")[0] + "Reconnecting to "

    def parse(dots: int) -> object:
        return parse_dart((block + "." * dots + "x\n").splitlines(keepends=True))

    growth = per_byte_growth(parse, 50_000, 4)
    assert growth < MAX_PER_BYTE_GROWTH, f"cost per byte grows {growth:.1f}x at 4x the dots"


# --- YAML: endless files, alias bombs -------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [("scenario", "validate"), ("scenario", "build", "-o", "OUT"), ("demo", "--scenario")],
    ids=["validate", "build", "demo"],
)
def test_an_endless_scenario_file_is_refused_at_the_cap(args: tuple[str, ...], tmp_path) -> None:
    """/dev/zero has st_size 0 and never ends: read with a byte cap, not after a stat."""
    args = tuple(str(tmp_path) if a == "OUT" else a for a in args)
    rss, proc = peak_rss_mb(*args, "/dev/zero")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"labkit {args[0]}: error: /dev/zero: larger than 1 MiB; not a scenario\n"
    assert rss < MAX_RSS_MB


def _alias_bomb(key: str, levels: int = 8) -> str:
    """Nine aliases of nine aliases ...: 9**levels strings once expanded (43 M at 8)."""
    text = f"{key}:\n  - &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for n in range(1, levels):
        text += f"  - &l{n} [" + ", ".join([f"*l{n - 1}"] * 9) + "]\n"
    return text


def test_an_alias_bomb_in_a_scenario_description_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb("description"))
    rss, proc = peak_rss_mb("scenario", "validate", str(path))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"labkit scenario: error: {path}:8: aliases expand to more")
    assert proc.stderr.count("\n") == 1 and rss < MAX_RSS_MB


def test_an_alias_bomb_in_a_topology_description_is_refused(tmp_path: Path) -> None:
    """load_topology str()-ed the description: 3.2 GB from a 1 KB file."""
    from labkit.errors import InputError
    from labkit.lab.topology import load_topology

    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb("description"))
    with traced_memory() as mem, pytest.raises(InputError, match=r"bomb.yaml:8: aliases expand"):
        load_topology(path)
    assert mem.peak < 16 << 20


def test_ordinary_aliases_are_still_read(tmp_path: Path) -> None:
    """The budget refuses bombs, not YAML that shares a value."""
    from labkit.lab.topology import load_topology

    path = tmp_path / "shared.yaml"
    path.write_text("dtls_port: &p 8443\nclamp_mss: *p\ndescription: 'lab with a shared value'\n")
    topo = load_topology(path)
    assert (topo.dtls_port, topo.clamp_mss) == (8443, 8443)


def test_a_mapping_that_contains_itself_is_refused(tmp_path: Path) -> None:
    """`&x {<<: *x}`: PyYAML composes a cycle; weighing it must not walk it forever."""
    from labkit.errors import InputError
    from labkit.lab.topology import load_topology

    path = tmp_path / "self.yaml"
    path.write_text("description: x\npath: &x {<<: *x}\n")
    proc = labkit("scenario", "validate", str(path))
    assert proc.returncode == 2
    assert proc.stderr == (
        f"labkit scenario: error: {path}:2: a value that contains itself (a recursive alias)\n"
    )
    with pytest.raises(InputError, match=r"self.yaml:2: a value that contains itself"):
        load_topology(path)
