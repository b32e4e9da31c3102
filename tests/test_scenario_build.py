"""Building scenarios: reproducible bytes, the committed captures, the writers, the new crafts.

The committed captures under pcaps/scenarios are rebuilt in memory and compared byte for byte;
the writers' output is read back by tshark and Scapy; the record-size arithmetic is checked
against the MTU model's own formulas and against anyconnect-vpn.pcap.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from scapy.utils import RawPcapNgReader, RawPcapReader

from labkit import craft, mtu
from labkit.pcapio.writer import Frame, pcap_bytes, pcapng_bytes
from labkit.scenario import find, load, parse
from labkit.scenario.build import EPOCH_US, FILES, render
from labkit.scenario.events import build_timeline
from labkit.wire import LINKTYPE_ETHERNET, LINKTYPE_RAW
from tests.helpers.cli import labkit
from tests.helpers.paths import ROOT
from tests.helpers.tshark import requires_tshark, tshark_fields

PCAPS = ROOT / "pcaps" / "scenarios"
CONFIGS = ROOT / "configs" / "scenarios"
NAMES = sorted(p.stem for p in CONFIGS.glob("*.yaml"))


def rendered(name: str, start_us: int = EPOCH_US) -> dict[str, bytes]:
    return {k: v for k, (v, _n) in render(build_timeline(load(find(name))), start_us).items()}


# --- reproducible byte for byte -----------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_committed_captures_rebuild_byte_for_byte(name: str) -> None:
    for file, data in rendered(name).items():
        committed = (PCAPS / name / file).read_bytes()
        assert data == committed, (
            f"{name}/{file} differs from a fresh build: rebuild "
            "pcaps/scenarios (see its README) if the change is intended"
        )


def test_seed_and_start_time_change_only_what_they_should() -> None:
    text = (CONFIGS / "dtls-blocked-icmp-ok.yaml").read_text()
    base = render(build_timeline(parse(text, "a.yaml")))
    other = render(build_timeline(parse(text.replace("seed: 1", "seed: 2"), "a.yaml")))
    assert all(base[f][0] != other[f][0] for f in FILES.values())
    shifted = render(build_timeline(parse(text, "a.yaml")), EPOCH_US + 3_600_000_000)
    for f in FILES.values():
        a, b = _records(base[f][0]), _records(shifted[f][0])
        assert [d for _t, d in a] == [d for _t, d in b]
        assert all(tb - ta == 3_600_000_000 for (ta, _), (tb, _) in zip(a, b))


def _records(data: bytes) -> list[tuple[int, bytes]]:
    """(microseconds, frame bytes) of a pcap or pcapng file, read by Scapy's raw readers."""
    import io

    out = []
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        for pkt, meta in RawPcapNgReader(io.BytesIO(data)):
            out.append(((meta.tshigh << 32) | meta.tslow, pkt))
    else:
        for pkt, meta in RawPcapReader(io.BytesIO(data)):
            out.append((meta.sec * 1_000_000 + meta.usec, pkt))
    return out


def test_cli_build_writes_three_files_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "seed"
    proc = labkit("scenario", "build", "dtls-blocked-icmp-ok", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES.values())
    for file in FILES.values():
        assert (out / file).read_bytes() == (PCAPS / "dtls-blocked-icmp-ok" / file).read_bytes()
        assert f"{out / file}" in proc.stdout
    again = labkit("scenario", "build", "dtls-blocked-icmp-ok", "-o", str(out))
    assert again.returncode == 2
    assert again.stderr == (
        f"labkit scenario: error: {out / 'outside.pcapng'}: already exists "
        "(use --force to overwrite it)\n"
    )
    later = labkit(
        "scenario",
        "build",
        "dtls-blocked-icmp-ok",
        "-o",
        str(out),
        "--force",
        "--start-time",
        "2025-03-01T10:00:00Z",
    )
    assert later.returncode == 0, later.stderr
    first = _records((out / "client-tunnel.pcap").read_bytes())[0][0]
    assert first == 1740823200 * 1_000_000 + 1_000_000  # the first inner SYN, 1 s in
    bad = labkit("scenario", "build", "healthy", "-o", str(out), "--start-time", "yesterday")
    assert bad.returncode == 2 and "invalid time 'yesterday'" in bad.stderr


# --- the writers ----------------------------------------------------------------------------------

FRAMES = [
    Frame(1_704_067_200_000_001, bytes(craft.ether(craft.syn())), "first, with a comment"),
    Frame(1_704_067_201_250_000, bytes(craft.ether(craft.oversized()))),
]


def test_pcap_writer_layout_by_hand() -> None:
    data = pcap_bytes(FRAMES, LINKTYPE_ETHERNET)
    assert data[:24] == struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    assert data[24:40] == struct.pack(
        "<IIII", 1_704_067_200, 1, len(FRAMES[0].data), len(FRAMES[0].data)
    )
    assert _records(data) == [(f.time_us, f.data) for f in FRAMES]


def test_pcapng_writer_is_deterministic_and_blocks_are_aligned() -> None:
    a = pcapng_bytes(FRAMES, LINKTYPE_ETHERNET, interface="outside", section_comment="s")
    assert a == pcapng_bytes(FRAMES, LINKTYPE_ETHERNET, interface="outside", section_comment="s")
    offset, types = 0, []
    while offset < len(a):  # walk the blocks: lengths agree at both ends, 4-byte aligned
        btype, length = struct.unpack_from("<II", a, offset)
        assert length % 4 == 0 and struct.unpack_from("<I", a, offset + length - 4)[0] == length
        types.append(btype)
        offset += length
    assert types == [0x0A0D0D0A, 1, 6, 6]
    assert _records(a) == [(f.time_us, f.data) for f in FRAMES]


@requires_tshark
def test_writers_read_back_by_tshark(tmp_path: Path) -> None:
    ng = tmp_path / "x.pcapng"
    ng.write_bytes(pcapng_bytes(FRAMES, LINKTYPE_ETHERNET, interface="outside"))
    rows = tshark_fields(
        ng, "frame", "frame.time_epoch", "frame.comment", "ip.len", "frame.interface_name"
    )
    assert rows == [
        ["1704067200.000001000", "first, with a comment", "52", "outside"],
        ["1704067201.250000000", "", "1418", "outside"],
    ]
    raw = tmp_path / "x.pcap"
    raw.write_bytes(pcap_bytes([Frame(f.time_us, f.data[14:]) for f in FRAMES], LINKTYPE_RAW))
    assert tshark_fields(raw, "ip", "ip.len", "tcp.options.mss_val") == [
        ["52", "1378"],
        ["1418", ""],
    ]


# --- record sizes: the forward direction of the MTU formulas --------------------------------------

SUITES = [c for c in mtu.CIPHERS.values() if not c.tls13]


@pytest.mark.parametrize("suite", SUITES, ids=lambda c: c.name)
def test_record_length_inverts_the_mtu_formulas(suite: mtu.Cipher) -> None:
    """The largest inner packet whose record fits ``size``, and one byte more does not."""
    over = mtu.IPV4_HEADER + mtu.UDP_HEADER + mtu.DTLS_RECORD_HEADER
    for size in range(600, 9001, 7):  # every block-size residue, many times over
        wire = mtu.tls_mtu_wire(size, suite, "1.2")
        assert mtu.record_length(wire + mtu.CSTP_HEADER, suite) + 5 <= size
        assert mtu.record_length(wire + mtu.CSTP_HEADER + 1, suite) + 5 > size
        dtls = mtu.dtls_mtu(size, suite, "0x0100")
        assert mtu.record_length(dtls + 1, suite, "0x0100", dtls=True) + over <= size
        assert mtu.record_length(dtls + 2, suite, "0x0100", dtls=True) + over > size


def test_record_length_by_hand() -> None:
    # AES128-SHA, TLS 1.2: 16 IV + round_up(1355 + 20 + 1, 16) = 16 + 1376.
    assert mtu.record_length(1347 + 8, "AES128-SHA") == 1392
    assert mtu.record_length(1347 + 8, "AES128-SHA", "1.0") == 1376  # no explicit IV
    assert mtu.record_length(100, "RC4-SHA") == 120
    assert mtu.record_length(100, "ECDHE-RSA-AES128-GCM-SHA256") == 8 + 100 + 16
    assert mtu.record_length(100, "TLS_AES_128_GCM_SHA256", "1.3") == 100 + 1 + 16


# --- the crafts added for scenarios, against anyconnect-vpn.pcap --------------------------------


def _udp_payload(path: Path, frame: int) -> bytes:
    for number, (pkt, _meta) in enumerate(RawPcapReader(str(path)), 1):
        if number == frame:
            return pkt[14 + 20 + 8 :]
    raise AssertionError(f"no frame {frame}")


def test_dtls_client_finished_and_data_match_the_real_capture(public_captures: Path) -> None:
    real = public_captures / "anyconnect-vpn.pcap"
    fin = _udp_payload(real, 466)  # the client's CCS + Finished
    crafted = bytes(craft.dtls_client_finished()["UDP"].payload)
    assert len(crafted) == len(fin) == 16 + 13 + 64
    assert crafted[: 16 + 13] == fin[: 16 + 13]  # both record headers and the CCS body
    data = _udp_payload(real, 467)  # the first application-data record
    crafted = bytes(craft.dtls_application_data(length=112, record_seq=1)["UDP"].payload)
    assert len(crafted) == len(data) and crafted[:13] == data[:13]


def test_tcp_segment_carries_its_payload_as_is() -> None:
    pkt = craft.tcp_segment(payload=b"\x16\x03\x03", flags="PA", seq=7, ack=9)
    wire = bytes(pkt)
    assert len(wire) == 20 + 20 + 3 and wire[-3:] == b"\x16\x03\x03"
    assert pkt["TCP"].seq == 7 and pkt["TCP"].ack == 9 and pkt["IP"].flags == "DF"
