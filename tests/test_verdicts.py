"""Verdicts a person would sign, on the minimal captures of ``tests/regressions/``.

Each capture is what this project's builder (``tests/regressions/build.py``) writes, byte for
byte; tshark is the judge of what each one holds (the SYN inside each encapsulation, the ICMP
MTUs), labkit must see the same and conclude no more than the capture shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labkit.analyze import AnalyzeOptions, analyze, duplicates
from labkit.analyze import decode as dec
from labkit.analyze.duplicates import DuplicateFilter
from labkit.analyze.grouping import FileSketch, group
from labkit.pcapio.reader import open_capture
from labkit.wire import LINKTYPE_RAW
from tests.helpers.corpus import tshark_counts
from tests.helpers.findings import assert_filters_select_exactly_the_evidence, ids, one
from tests.helpers.tshark import requires_tshark, tshark, tshark_fields, tshark_frames

REGRESSIONS = Path(__file__).parent / "regressions"
ENCAPS = sorted(REGRESSIONS.glob("encap-*.pcap"))


def test_the_captures_are_what_the_builder_writes() -> None:
    from tests.regressions import build

    for name, frames in build.cases().items():
        path = REGRESSIONS / f"{name}.pcap"
        assert path.read_bytes() == build.pcap(frames()), f"{path}: rerun build.py"
    readme = (REGRESSIONS / "README.md").read_text()
    for path in REGRESSIONS.glob("*.pcap"):
        assert f"`{path.name}`" in readme, f"{path.name} has no README line"


@requires_tshark
@pytest.mark.parametrize("path", ENCAPS, ids=lambda p: p.stem)
def test_the_syn_inside_each_encapsulation_is_seen(path: Path) -> None:
    """tshark sees one SYN with its MSS inside; so must labkit, its filter must select it, and
    nothing of the frame is left uninspected."""
    want = tshark_counts(path).as_counts()["syn_mss"]
    assert len(want) == 1, f"tshark does not see the inner SYN: {want}"
    r = analyze([path])
    counts = r.files[0].counts
    assert counts["syn_mss"] == want
    assert counts["not_inspected"] == 0, counts["not_inspected_by_reason"]
    assert one(r, "syn-mss").fields["mss"] == int(next(iter(want)))
    assert_filters_select_exactly_the_evidence(r)


@pytest.mark.parametrize("path", ENCAPS, ids=lambda p: p.stem)
def test_columns_and_scalar_decode_agree_inside_encapsulations(path: Path) -> None:
    """The compiled and numpy column decodes and the scalar decode find the same inner IP."""
    with open_capture(path) as cap:
        for chunk in cap.chunks():
            fast, ref = dec.columns(chunk), dec.py_columns(chunk)
            for name in dec.COLUMN_NAMES:
                assert np.array_equal(getattr(fast, name), getattr(ref, name)), name
            d, n = int(chunk.data[0]), int(chunk.caplen[0])
            pkt = dec.decode(chunk.buf[d : d + n].tobytes(), int(chunk.linktype[0]))
            assert pkt.tcp is not None and pkt.tcp.syn and pkt.ip_len == fast.iplen[0]


def test_what_cannot_be_opened_is_named() -> None:
    """An encrypted MACsec frame, an unknown GRE payload, ARP: counted, each with its reason."""
    mac = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01"
    ip_gre = bytes.fromhex("4500002000010000402f0000c0000201c0000202") + b"\x00\x00\x88\x0b"
    frames = {
        mac + b"\x88\xe5\x2c\x00\x00\x00\x00\x01" + b"\x00" * 40: "MACsec encrypted",
        mac + b"\x08\x00" + ip_gre[:-2] + b"\x12\x34" + b"\x00" * 8: "EtherType 0x1234",
        mac + b"\x08\x06" + b"\x00" * 28: "EtherType 0x0806",
        mac + b"\x00\x10\x42\x42\x03" + b"\x00" * 13: "802.2 LLC 0x4242",
    }
    for frame, reason in frames.items():
        off, ver, why = dec.locate(frame, dec.LINKTYPE_ETHERNET)
        assert why and dec.why_text(why).startswith(reason), (dec.why_text(why), reason)


def test_locate_is_bounded_on_endless_nesting() -> None:
    """IPv4-in-IPv4 a thousand times: at most MAX_LAYERS headers peeled, then a reason."""
    ip = bytes.fromhex("450000140001000040040000c0000201c0000202")
    off, ver, why = dec.locate(ip * 1000, LINKTYPE_RAW)
    assert ver == 4 and dec.why_text(why).startswith("more than")


#: (capture name's middle, the ICMP MTU, tshark's filter for the sender's data after the ICMP)
PMTUD = [("", 1492, "tcp.srcport == 80 && tcp.len > 0"), ("udp-", 1400, "udp.srcport == 51000")]


@requires_tshark
@pytest.mark.parametrize(("kind", "mtu", "data"), PMTUD, ids=["tcp", "udp"])
def test_pmtud_that_works_is_not_a_mismatch(kind: str, mtu: int, data: str) -> None:
    """ICMP 3/4 MTU N quoting 1500-byte packets; the sender resends at N within 3 ms: a TCP
    server, and a datagram sender (a VPN's UDP) alike."""
    path = REGRESSIONS / f"pmtud-{kind}working-{mtu}.pcap"
    assert tshark_counts(path).icmp_frag_needed_mtu == {mtu: 3}
    sizes = [int(r[0]) for r in tshark_fields(path, f"{data} && frame.number > 7", "ip.len")]
    assert sizes and max(sizes) == mtu  # the premise: after the ICMP, nothing larger
    r = analyze([path])
    works = one(r, "pmtud-working")
    assert works.fields["mtu"] == mtu and works.fields["adapted_after_s"] < 0.005
    assert not {"mtu-mismatch", "oversized-df", "pmtud-black-hole"} & set(ids(r))
    assert r.exit_code == 0 and f"path-MTU discovery works (path MTU {mtu})" in r.verdict
    assert_filters_select_exactly_the_evidence(r)


def test_small_datagrams_after_the_icmp_show_no_adaptation(tmp_path: Path) -> None:
    """After the ICMP the datagram sender sends only 100-byte datagrams (keepalives): they fit
    any path and say nothing of its size for data, so PMTUD is not said to work; nor is a
    mismatch confirmed, with no VPN in the case and nothing large sent after the ICMP."""
    from tests.regressions import build

    path = tmp_path / "keepalives.pcap"
    path.write_bytes(build.pcap(build._pmtud_udp(False, after=100)))
    r = analyze([path])
    assert not {"pmtud-working", "mtu-mismatch"} & set(ids(r))
    icmp = one(r, "icmp-frag-needed")
    assert icmp.severity == "warning" and "cannot be told" in icmp.summary


@requires_tshark
@pytest.mark.parametrize(("kind", "mtu", "data"), PMTUD, ids=["tcp", "udp"])
def test_oversized_packets_after_the_icmp_are_a_mismatch_that_says_so(
    kind: str, mtu: int, data: str
) -> None:
    path = REGRESSIONS / f"pmtud-{kind}ignored-{mtu}.pcap"
    late = tshark_fields(path, f"{data} && frame.time_relative > 1.2", "ip.len")
    assert len(late) == 4 and {r[0] for r in late} == {"1500"}  # the premise, by tshark
    r = analyze([path])
    mm = one(r, "mtu-mismatch")
    assert (mm.fields["packet_size"], mm.fields["tunnel_mtu"]) == (1500, mtu)
    assert mm.fields["sender_kept_oversized"] is True and "keep being dropped" in mm.summary
    assert "pmtud-working" not in ids(r) and r.exit_code == 1
    assert_filters_select_exactly_the_evidence(r)


@requires_tshark
def test_impossible_mtus_are_bogus_never_limits() -> None:
    """PTB 1200 (below IPv6's 1280) quoting 1500 bytes, frag-needed MTU 0 and 60: each is
    counted as tshark counts it, reported as bogus, and none makes a packet "oversized"."""
    path = REGRESSIONS / "icmp-bogus-mtus.pcap"
    t = tshark_counts(path)
    r = analyze([path])
    counts = r.files[0].counts
    assert (
        counts["icmpv6_packet_too_big_mtu"]
        == {"1200": 1}
        == t.as_counts()["icmpv6_packet_too_big_mtu"]
    )
    assert (
        counts["icmp_frag_needed_mtu"] == {"0": 1, "60": 1} == t.as_counts()["icmp_frag_needed_mtu"]
    )
    bogus = {f.fields["mtu"]: f.fields["reason"] for f in r.findings if f.id == "icmp-bogus-mtu"}
    assert bogus == {
        0: "an MTU of 0",
        60: "below IPv4's minimum MTU of 68",
        1200: "below IPv6's minimum MTU of 1280",
    }
    assert not {"mtu-mismatch", "oversized-df", "icmp-frag-needed"} & set(ids(r))
    assert r.exit_code == 0
    assert_filters_select_exactly_the_evidence(r)


@requires_tshark
def test_a_quote_inside_a_tunnel_is_read_at_its_own_layer() -> None:
    """Inside GRE the quote is the frame's third IP layer: the usable MTU-1400 ICMP (quoting
    1500 bytes) and the bogus one (quoting 1300) are each found, and each filter selects its
    own frame in tshark, not the other's by the carrier's length."""
    r = analyze([REGRESSIONS / "icmp-quotes-in-gre.pcap"])
    assert one(r, "icmp-frag-needed").fields["mtu"] == 1400
    bogus = one(r, "icmp-bogus-mtu")
    assert bogus.fields["reason"] == "the quoted 1300-byte packet already fits in 1400"
    assert [e.frame for e in bogus.evidence] == [4]
    assert_filters_select_exactly_the_evidence(r)


def _big_df_flow(t: float) -> list:
    """1500-byte DF segments between hosts of their own, at ``t`` seconds after the builder's
    epoch: a file unrelated to the regression captures unless ``t`` is near 0."""
    from tests.regressions import build

    return [
        (
            t + i,
            1,
            build.eth(
                0x0800, build._tcp("172.16.5.5", "172.16.6.6", 443, 50000, "PA", 1 + i * 1460, 1500)
            ),
        )
        for i in range(3)
    ]


def test_unrelated_files_are_separate_cases(tmp_path: Path) -> None:
    """An ICMP MTU of one capture is no limit for another capture made a year later of other
    hosts: no oversized-df there, and the report says which files were judged together."""
    from tests.regressions import build

    other = tmp_path / "a-year-later.pcap"
    other.write_bytes(build.pcap(_big_df_flow(365 * 86400.0)))
    icmp = REGRESSIONS / "pmtud-ignored-1492.pcap"
    r = analyze([icmp, other])
    assert [c.files for c in r.cases] == [(str(icmp),), (str(other),)]
    assert all("no other file" in c.reason for c in r.cases)
    over = [f for f in r.findings if f.id == "oversized-df"]
    assert {e.file for f in over for e in f.evidence} == {str(icmp)}
    assert r.to_json()["cases"][1] == {"files": [str(other)], "reason": r.cases[1].reason}
    # Told they are one case, the other file's 1500-byte packets exceed the 1492 limit.
    joined = analyze([icmp, other], AnalyzeOptions(one_case=True))
    assert [c.files for c in joined.cases] == [(str(icmp), str(other))]
    over = [f for f in joined.findings if f.id == "oversized-df"]
    assert str(other) in {e.file for f in over for e in f.evidence}


def test_files_sharing_a_host_at_the_same_time_are_one_case(tmp_path: Path) -> None:
    from tests.regressions import build

    first, second = tmp_path / "a.pcap", tmp_path / "b.pcap"
    first.write_bytes(build.pcap(_big_df_flow(0.0)))
    second.write_bytes(build.pcap(_big_df_flow(30.0)))
    far = tmp_path / "c.pcap"
    far.write_bytes(build.pcap(_big_df_flow(5000.0)))
    r = analyze([first, second, far])
    assert [c.files for c in r.cases] == [(str(first), str(second)), (str(far),)]
    assert "a host sends in each" in r.cases[0].reason


def test_grouping_sweeps_long_captures() -> None:
    """A long capture overlapping two short ones that do not overlap each other joins both."""
    h = np.array([7], np.uint64)
    sketches = [
        FileSketch("long", 0.0, 1000.0, h, "inside"),
        FileSketch("early", 10.0, 20.0, h, "inside"),
        FileSketch("late", 900.0, 950.0, h, "inside"),
        FileSketch("no-time", None, None, h, "inside"),
        FileSketch("other-host", 10.0, 20.0, np.array([8], np.uint64), "inside"),
    ]
    assert [c.files for c in group(sketches)] == [
        ("long", "early", "late"),
        ("no-time",),
        ("other-host",),
    ]
    vpn = [FileSketch("out", 0.0, 10.0, h, "outside"), FileSketch("in", 5.0, 9.0, h + 1, "tunnel")]
    assert [c.files for c in group(vpn)] == [("out", "in")]


@requires_tshark
def test_duplicate_frames_count_once() -> None:
    """Two SPAN copies of a SYN and of a ClientHello: one SYN, one attempt, and the report says
    2 duplicates, as many as editcap removes."""
    path = REGRESSIONS / "duplicate-frames.pcap"
    t = tshark_counts(path, duplicates=2)
    assert t.duplicates == (2, 2)  # editcap -d and editcap -w 0.01 agree
    r = analyze([path])
    counts = r.files[0].counts
    assert counts["duplicate_frames"] == 2 and counts["not_inspected"] == 0
    assert counts["syn_mss"] == {"1460": 1} == t.as_counts()["syn_mss"]
    assert counts["dtls_client_hellos"] == 1 and counts["dtls_flows"] == 1
    syn = one(r, "syn-mss", direction="syn")
    assert [e.frame for e in syn.evidence] == [1] and "frame.number == 2" in syn.wireshark_filter
    assert_filters_select_exactly_the_evidence(r)  # the copies are left out of every filter


def test_identical_retransmissions_are_not_duplicates() -> None:
    """A stack without timestamps resends identical bytes a second apart: those are
    retransmissions (the mismatch's evidence), not copies, whatever editcap -d says."""
    r = analyze([REGRESSIONS / "pmtud-ignored-1492.pcap"])
    assert r.files[0].counts["duplicate_frames"] == 0


@requires_tshark
def test_a_capture_split_by_protocol_is_judged_as_one(tmp_path: Path) -> None:
    """The lab's DTLS-blocked outside capture, split by tshark into its UDP and its TCP
    packets (as a customer sends ``udp port 443`` and ``tcp port 443`` apart). The UDP file
    ends with the last ClientHello: alone, whether they were answered is open, and said so.
    With the TCP file, which shows the client and the head-end after the last hello (the TLS
    tunnel the client fell back to), the hellos are unanswered, evidence in the UDP file."""
    whole = Path(__file__).parents[1] / "pcaps/real/dtls-blocked-icmp-allowed/outside.pcap"
    udp, tcp = tmp_path / "udp.pcapng", tmp_path / "tcp.pcapng"
    tshark(whole, "-Y", "udp", "-w", str(udp))
    tshark(whole, "-Y", "tcp", "-w", str(tcp))
    hellos = tshark_frames(udp, "dtls.handshake.type == 1")
    assert len(hellos) >= 2

    alone = analyze([udp])
    assert "dtls-unanswered" not in ids(alone)
    (open_question,) = alone.files[0].cannot_tell
    assert f"the {len(hellos)} DTLS ClientHello(s)" in open_question
    assert open_question in alone.diagnosis.cannot_show

    together = analyze([udp, tcp])
    assert len(together.cases) == 1  # one case: the same hosts, the same time
    f = one(together, "dtls-unanswered", attempts=len(hellos))
    assert {e.file for e in f.evidence} == {str(udp)}
    assert not together.files[0].cannot_tell
    assert_filters_select_exactly_the_evidence(together)


@pytest.mark.parametrize("chunk_bytes", [1 << 12, 1 << 20])
def test_duplicates_are_the_rule_however_the_file_is_chunked(
    tmp_path: Path, chunk_bytes: int
) -> None:
    """Frames of random bytes, some short (under the 40 compared bytes), copies at 1 to 6
    frames and 0 to 20 ms back, near-copies differing in one byte: the filter marks exactly
    what the rule says (equal bytes, one of the 4 frames before, at most 10 ms apart), also
    when a copy and its original fall in different chunks."""
    from labkit.analyze.duplicates import MAX_GAP_S, WINDOW
    from tests.helpers.copies import frames_with_copies
    from tests.regressions import build

    frames, times = frames_with_copies(7, 3000, [20, 33, 39, 40, 64, 600])
    path = tmp_path / "dups.pcap"
    path.write_bytes(build.pcap([(ts, 1, f) for ts, f in zip(times, frames)]))
    rule = [
        any(
            frames[i - k] == frames[i] and abs(times[i] - times[i - k]) <= MAX_GAP_S
            for k in range(1, WINDOW + 1)
            if i - k >= 0
        )
        for i in range(len(frames))
    ]
    assert sum(rule) > 100  # the premise: many copies
    marks = DuplicateFilter()
    got: list[bool] = []
    with open_capture(path) as cap:
        for chunk in cap.chunks(chunk_bytes):
            got += marks.mask(chunk).tolist()
    assert got == rule
    assert marks.count == sum(rule)


def _span_copies(frames: list[tuple[float, int, bytes]]) -> list[tuple[float, int, bytes]]:
    """Each frame followed by a SPAN port's copy of it, 20 us later."""
    return [c for t, lt, b in frames for c in ((t, lt, b), (t + 0.00002, lt, b))]


@requires_tshark
def test_filters_leave_out_every_copy_however_many(tmp_path: Path) -> None:
    """A SPAN capture that doubles every frame: 300 unrelated datagrams, then the ignored
    ICMP of ``pmtud-ignored-1492.pcap``, its SYN repeated in a storm of 40 copies. Every
    evidence frame comes after hundreds of duplicates and has copies; each filter must still
    select exactly the evidence (editcap -d is the judge of what a copy is)."""
    from scapy.layers.inet import IP, UDP

    from tests.regressions import build

    noise = [
        (
            i * 0.001 - 1.0,
            1,
            build.eth(
                0x0800,
                bytes(IP(src="10.9.0.7", dst="10.9.0.8", id=i) / UDP(dport=5001) / (b"x" * 20)),
            ),
        )
        for i in range(300)
    ]
    pmtud = build._pmtud(keep_oversized=True)
    syn_t, lt, syn = pmtud[0]
    storm = [(syn_t + 0.0001 * k, lt, syn) for k in range(1, 40)]
    frames = _span_copies(noise) + [pmtud[0]] + storm + _span_copies(pmtud[1:])
    path = tmp_path / "span.pcap"
    path.write_bytes(build.pcap(frames))
    copies = 300 + 39 + len(pmtud) - 1
    t = tshark_counts(path, duplicates=copies)
    # editcap -d, which has no time limit, also removes the 3 byte-identical retransmissions
    # a second apart (not copies: test_identical_retransmissions_are_not_duplicates)
    assert t.duplicates == (copies + 3, copies)

    r = analyze([path])
    counts = r.files[0].counts
    assert counts["duplicate_frames"] == copies
    assert counts["syn_mss"] == {"1460": 1} == t.as_counts()["syn_mss"]
    alone = analyze([REGRESSIONS / "pmtud-ignored-1492.pcap"])
    assert ids(r) == ids(alone)  # the copies change no verdict
    first = min(e.frame for f in r.findings for e in f.evidence)
    assert first > 2 * 300  # the premise: all evidence comes after hundreds of copies
    mm = one(r, "mtu-mismatch")
    assert mm.fields["sender_kept_oversized"] is True
    syn_filter = one(r, "syn-mss", direction="syn").wireshark_filter
    assert f"(frame.number >= {first + 1} && frame.number <= {first + 39})" in syn_filter
    assert_filters_select_exactly_the_evidence(r)


def test_copies_are_traced_to_the_frame_they_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chains of copies (a copy of a copy of ...), across chunk borders: ``copies_of`` gives
    exactly the frames whose bytes first appeared in the frames asked about."""
    from tests.regressions import build

    rng = np.random.default_rng(11)
    frames: list[bytes] = []
    for i in range(2000):
        back = int(rng.integers(1, 5))
        if frames and rng.random() < 0.5 and back <= len(frames):
            frames.append(frames[-back])
        else:
            frames.append(i.to_bytes(4, "big") * 10)
    path = tmp_path / "chains.pcap"
    path.write_bytes(build.pcap([(i * 0.0001, 1, f) for i, f in enumerate(frames)]))
    first_seen: dict[bytes, int] = {}
    original = [first_seen.setdefault(f, i + 1) for i, f in enumerate(frames)]
    asked = [o for o in set(original) if o % 3 == 0]
    want = [i + 1 for i, o in enumerate(original) if o in asked and o != i + 1]
    assert len(want) > 300 and max(want) - min(want) > 1000
    assert _marks(path).copies_of(asked).tolist() == want
    assert not _marks(path).warnings()

    # Past its ceiling the filter keeps counting, lists no more, and says from where
    monkeypatch.setattr(duplicates, "MAX_KEPT", 100)
    marks = _marks(path)
    copies = [i + 1 for i, o in enumerate(original) if o != i + 1]
    assert marks.count == len(copies) and marks.unlisted_from == copies[100]
    assert marks.copies_of(asked).tolist() == [c for c in want if c < copies[100]]
    assert f"from frame {copies[100]} on" in marks.warnings()[0]


def _marks(path: Path) -> DuplicateFilter:
    marks = DuplicateFilter()
    with open_capture(path) as cap:
        for chunk in cap.chunks(1 << 12):
            marks.mask(chunk)
    return marks


@requires_tshark
def test_dtls_named_by_a_decrypted_connect_through_nat(tmp_path: Path) -> None:
    """The lab's DTLS-on-8443 outside capture split in two as if NAT stood between the capture
    points: the TLS (with the CONNECT) as captured, the DTLS with both addresses rewritten. No
    address, no TLS session and not port 443 tie the DTLS to the VPN; its ClientHellos carry
    the X-DTLS-Session-ID the decrypted CONNECT gave the client (tshark reads both), so with
    the key log it is the tunnel's DTLS: one case, judged as VPN DTLS, and the client is not
    said to make no DTLS attempt."""
    from scapy.layers.inet import IP, UDP
    from scapy.utils import rdpcap, wrpcap

    from labkit.analyze import Collect
    from labkit.analyze.sources import read_keylog

    d = Path(__file__).parents[1] / "pcaps/real/dtls-nondefault-port-blocked"
    tcp, udp, nat = tmp_path / "tls.pcap", tmp_path / "udp.pcap", tmp_path / "dtls-nat.pcap"
    tshark(d / "outside.pcap", "-Y", "tcp", "-w", str(tcp), "-F", "pcap")
    tshark(d / "outside.pcap", "-Y", "udp.port == 8443", "-w", str(udp), "-F", "pcap")
    rewrite = {"198.18.1.2": "203.0.113.7", "198.18.2.2": "192.168.50.2"}
    packets = rdpcap(str(udp))
    for p in packets:
        p[IP].src, p[IP].dst = rewrite[p[IP].src], rewrite[p[IP].dst]
        del p[IP].chksum, p[UDP].chksum
    wrpcap(str(nat), packets)

    keylog = ("-o", f"tls.keylog_file:{d / 'sslkeylog.txt'}")
    connected = 'http.response.phrase == "CONNECTED"'
    (line,) = tshark_fields(tcp, connected, "http.response.line", extra=keylog)
    # tshark shows each header line as sent, its CR LF escaped
    (sid,) = [
        h.split(": ")[1].removesuffix("\\r\\n")
        for h in line[0].split(",")
        if "X-DTLS-Session-ID" in h
    ]
    hellos = tshark_fields(nat, "dtls.handshake.type == 1", "dtls.handshake.session_id")
    assert len(hellos) == 4 and {h[0] for h in hellos} == {sid}  # the premise, by tshark

    plain = analyze([tcp, nat])
    assert len(plain.cases) == 2 and "dtls-other" in ids(plain)  # no key log: nothing ties them

    r = analyze([tcp, nat], collect=Collect(read_keylog(str(d / "sslkeylog.txt"))))
    assert "dtls-other" not in ids(r) and "dtls-absent" not in ids(r)
    (case,) = r.cases
    assert "X-DTLS-Session-ID" in case.reason
    port = one(r, "dtls-nondefault-port")
    assert (port.fields["client"], port.fields["server"], port.fields["port"]) == (
        "203.0.113.7",
        "192.168.50.2",
        8443,
    )
    assert_filters_select_exactly_the_evidence(r)


def test_a_path_mtu_of_1347_is_named_as_the_asa_tls_tunnel_mtu() -> None:
    """Seen from a head-end's inside alone, the seed's ICMP 3/4 is path-MTU discovery at
    work; its number is the TLS tunnel MTU of an ASA's defaults, and the finding says so. Any
    other path MTU (a PPPoE link's 1492) gets no such word."""
    from labkit import mtu

    root = Path(__file__).parents[1]
    inside = analyze([root / "pcaps/real/dtls-blocked-icmp-allowed/inside.pcap"])
    working = one(inside, "pmtud-working", mtu=mtu.tls_mtu_asa())
    assert f"sysopt connection tcpmss {mtu.DEFAULT_TCPMSS}" in working.summary
    pppoe = one(analyze([REGRESSIONS / "pmtud-working-1492.pcap"]), "pmtud-working", mtu=1492)
    assert "tcpmss" not in pppoe.summary


@requires_tshark
def test_each_inner_ip_version_has_its_own_syn_filter() -> None:
    """The same MSS over IPv4, 6in4, IPv6 and 4in6: two groups by the SYN's own IP version,
    and neither filter matches the other's frames through a tunnel's outer header."""
    path = REGRESSIONS / "syn-mss-inner-versions.pcap"
    assert tshark_counts(path).synack_mss == {1440: 4}
    r = analyze([path])
    groups = {f.fields["ip_version"]: f for f in r.findings if f.id == "syn-mss"}
    assert {v: [e.frame for e in f.evidence] for v, f in groups.items()} == {4: [1, 4], 6: [2, 3]}
    assert_filters_select_exactly_the_evidence(r)
