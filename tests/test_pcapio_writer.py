"""labkit's capture writer, judged by tshark and read back by labkit's reader."""

from __future__ import annotations

from pathlib import Path

from labkit.pcapio.reader import open_capture
from labkit.pcapio.writer import PcapFileWriter, PcapngFileWriter, tsresol
from labkit.wire import LINKTYPE_ETHERNET, LINKTYPE_RAW
from tests.helpers.paths import PUBLIC
from tests.helpers.tshark import requires_tshark, tshark_fields

IPV4 = bytes.fromhex("4500001c00010000400100000a0000010a000002") + bytes(8)
FRAME = bytes(12) + b"\x08\x00" + IPV4
T0 = 1_700_000_000


@requires_tshark
def test_pcapng_interfaces_times_lengths_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "w.pcapng"
    with open(path, "wb") as f:
        w = PcapngFileWriter(f, comment="a section", application="labkit tests")
        us = w.interface(LINKTYPE_ETHERNET, name="outside")
        ns = w.interface(LINKTYPE_RAW, divisor=1e9, offset=float(T0))  # ns since T0
        w.write(T0 * 10**6 + 5, FRAME, iface=us, comment="first")
        w.write(123_456_789, IPV4[:21], iface=ns, origlen=len(IPV4))  # cut to 21 bytes
        w.write(T0 * 10**6 + 7, FRAME[:-1], iface=us, comment="third, odd length")
    rows = tshark_fields(
        path,
        "frame",
        "frame.interface_id",
        "frame.time_epoch",
        "frame.len",
        "frame.cap_len",
        "frame.comment",
    )
    assert rows == [
        ["0", f"{T0}.000005000", "42", "42", "first"],
        ["1", f"{T0}.123456789", "28", "21", ""],
        ["0", f"{T0}.000007000", "41", "41", "third, odd length"],
    ]
    with open_capture(path) as cap:
        got = list(cap.records())
        assert [i.linktype for i in cap.interfaces] == [LINKTYPE_ETHERNET, LINKTYPE_RAW]
        assert cap.warnings == []
    assert [(r.data, r.origlen, r.linktype) for r in got] == [
        (FRAME, 42, 1),
        (IPV4[:21], 28, 101),
        (FRAME[:-1], 41, 1),
    ]


@requires_tshark
def test_pcap_records(tmp_path: Path) -> None:
    path = tmp_path / "w.pcap"
    with open(path, "wb") as f:
        w = PcapFileWriter(f, LINKTYPE_RAW)
        assert w.write(T0 * 10**6 + 1, IPV4) == 16 + len(IPV4)
        w.write(T0 * 10**6 + 999_999, IPV4[:20], origlen=len(IPV4))
    rows = tshark_fields(path, "frame", "frame.time_epoch", "frame.len", "frame.cap_len")
    assert rows == [[f"{T0}.000001000", "28", "28"], [f"{T0}.999999000", "28", "20"]]


@requires_tshark
def test_chunk_copy_keeps_every_record_and_adds_the_comments(tmp_path: Path) -> None:
    """A reader's chunk written back (what --annotate does): the same records, raw times
    and interfaces; a comment where asked."""
    src = PUBLIC / "dtls-0x0100-hvr-retrans.pcapng"
    copy = tmp_path / "copy.pcapng"
    with open_capture(src) as cap, open(copy, "wb") as f:
        chunks = cap.chunks()
        first = next(chunks)
        w = PcapngFileWriter(f, comment="copy")
        for i in cap.interfaces:
            w.interface(i.linktype, snaplen=i.snaplen, divisor=i.ts_divisor, offset=i.ts_offset)
        assert w.chunk(first, {2: "labkit note"}) == 1
        assert next(chunks, None) is None

    def read(path: Path) -> list[tuple[int, float, bytes, int, int]]:
        with open_capture(path) as c:
            return [(r.frame, r.ts, r.data, r.origlen, r.linktype) for r in c.records()]

    assert read(copy) == read(src) and len(read(src)) > 2
    fields = ("frame.number", "frame.time_epoch", "frame.len", "frame.cap_len")
    assert tshark_fields(copy, "frame", *fields) == tshark_fields(src, "frame", *fields)
    assert tshark_fields(copy, "frame.comment", "frame.number", "frame.comment") == [
        ["2", "labkit note"]
    ]


def test_tsresol_bytes_round_trip() -> None:
    # The byte the reader turns into a divisor is the byte written back.
    for byte in (0, 3, 6, 9, 0x80 | 10, 0x80 | 20):
        divisor = float(2 ** (byte & 0x7F)) if byte & 0x80 else float(10**byte)
        assert tsresol(divisor) == byte
