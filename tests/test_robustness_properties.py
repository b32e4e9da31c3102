"""Property tests (hypothesis, derandomized: the same examples every run) for the sans-IO
parsers: they never raise on any bytes or text, and where two paths must agree, they do.

The whole-file campaign (tests/fuzz) mutates real inputs; these generate inputs from scratch
and shrink a failure to a minimal one. Oracles beyond "no exception": the vectorized column
decoder agrees with the scalar decoder on random packets; the CSTP stream and the TCP
reassembler give the same result however their input is cut and (for TCP) reordered;
Scapy's DTLS/CSTP layers rebuild the exact bytes they dissected.
"""

from __future__ import annotations

import struct

from hypothesis import assume, example, given
from hypothesis import strategies as st

from labkit.analyze import decode as dec
from labkit.pcapio.reader import open_capture
from tests.helpers.strategies import ETH6, PROPS, packets


@PROPS
@given(packets())
def test_scalar_decoder_never_raises(pkt: tuple[int, bytes]) -> None:
    linktype, data = pkt
    p = dec.decode(data, linktype, 1, 0.0)
    assert p.ipver in (0, 4, 6) and p.ip_len >= 0
    assert len(p.dtls) <= dec.MAX_DTLS_RECORDS


@PROPS
@given(st.binary(max_size=70000))
def test_dtls_record_walk_is_bounded(payload: bytes) -> None:
    assert len(dec.dtls_records(payload)) <= dec.MAX_DTLS_RECORDS


@PROPS
@given(st.lists(packets(), min_size=1, max_size=20))
@example([(1, ETH6 + struct.pack("!IHBB16s16s", 0x60000000, 0xFFD8, 6, 64, bytes(16), bytes(16)))])
def test_column_decoder_agrees_with_the_scalar_decoder(tmp_path_factory, pkts) -> None:
    """Differential: the vectorized path and the scalar path read the same fields. (It found
    IPv6 payload lengths over 65495 wrapping to a tiny IP length in the columns: uint16.)"""
    path = tmp_path_factory.mktemp("cols") / "c.pcapng"
    out = [
        struct.pack("<II", 0x0A0D0D0A, 28)
        + struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
        + struct.pack("<I", 28)
    ]
    lts = sorted({lt for lt, _ in pkts})
    for lt in lts:
        out.append(struct.pack("<IIHHII", 1, 20, lt, 0, 262144, 20))
    for lt, data in pkts:
        body = (
            struct.pack("<IIIII", lts.index(lt), 0, 0, len(data), len(data))
            + data
            + bytes(-len(data) % 4)
        )
        out.append(struct.pack("<II", 6, len(body) + 12) + body + struct.pack("<I", len(body) + 12))
    path.write_bytes(b"".join(out))
    with open_capture(path) as cap:
        for chunk in cap.chunks():
            cols = dec.columns(chunk)
            for i in range(len(chunk)):
                p = dec.decode(chunk.packet(i), int(chunk.linktype[i]))
                assert int(cols.ipver[i]) == p.ipver, (i, p)
                if p.ipver:
                    assert int(cols.proto[i]) == p.proto and int(cols.iplen[i]) == p.ip_len, (i, p)
                    if p.sport is not None and p.proto in (6, 17):
                        assert (int(cols.sport[i]), int(cols.dport[i])) == (p.sport, p.dport), (
                            i,
                            p,
                        )


HEADER = {"DTLSRecord": 13, "CSTP": 8, "AnyConnectDTLS": 1}
LAYER_NAMES = sorted(HEADER)


@PROPS
@given(
    st.sampled_from(LAYER_NAMES),
    st.one_of(
        st.binary(max_size=3000),
        st.builds(
            lambda head, rest: head + rest,
            st.sampled_from(
                [
                    b"STF\x01\x00\x00\x00\x00",
                    b"STF\x01\x00\x05\x00\x00",
                    b"\x16\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x0c",
                    b"\x14\xfe\xfd\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01",
                ]
            ),
            st.binary(max_size=300),
        ),
    ),
)
def test_scapy_layers_dissect_any_bytes_and_rebuild_them(layer: str, data: bytes) -> None:
    import labkit.layers as L

    # Like Scapy's own IP(b"\x45"), a top-level header cut short may raise struct.error;
    # everything after a whole header (bodies, chained records) must dissect.
    assume(len(data) >= HEADER[layer])
    pkt = getattr(L, layer)(data)
    pkt.summary()
    pkt.show(dump=True)
    assert bytes(pkt) == data


@PROPS
@given(st.lists(st.text(max_size=300), max_size=30), st.sampled_from([None, 2022]))
def test_syslog_parser_never_raises(lines: list[str], year) -> None:
    from labkit.logs.syslog import SyslogParser

    parser = SyslogParser(year=year)
    for line in lines:
        parser.feed("%ASA-6-722036: " + line if line[:1] == "G" else line)


@PROPS
@given(
    st.lists(
        st.one_of(
            st.text(max_size=120),
            st.sampled_from(
                [
                    "*" * 42,
                    "Date        : 11/16/2022",
                    "Date : 2022-13-45",
                    "Time        : 01:28:50",
                    "Time : 25:61:61 PM",
                    "Type : Warning",
                    "Description : Reconnecting to ....",
                    "Source : x",
                ]
            ),
        ),
        max_size=40,
    )
)
def test_dart_parser_never_raises(lines: list[str]) -> None:
    from labkit.logs.dart import parse_dart

    parse_dart(lines)


@PROPS
@given(st.text(max_size=2000))
def test_keylog_parser_never_raises(text: str) -> None:
    from labkit.analyze.keylog import parse_keylog

    parse_keylog(text)


ASA_WORDS = [
    "sysopt",
    "connection",
    "tcpmss",
    "minimum",
    "ssl",
    "cipher",
    "encryption",
    "tlsv1.2",
    "dtlsv1.2",
    "custom",
    "high",
    "webvpn",
    "enable",
    "outside",
    "tls-only",
    "anyconnect",
    "svc",
    "dtls",
    "port",
    "group-policy",
    "G",
    "attributes",
    "internal",
    "mtu",
    "no",
    "df-bit-ignore",
    "tunnel-group",
    "RA",
    "general-attributes",
    "default-group-policy",
    "vpn-tunnel-protocol",
    "1300",
    "1380",
    "0",
    "99999",
    "²",
    "-1",
    '"AES256-SHA:RC4"',
]


@PROPS
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["", " ", "  ", "\t", "asa(config)# "]),
            st.lists(
                st.one_of(st.sampled_from(ASA_WORDS), st.text(max_size=8)), min_size=1, max_size=6
            ),
        ),
        max_size=30,
    )
)
def test_asa_config_parser_and_advisor_never_raise(lines) -> None:
    from labkit.advise import advise
    from labkit.asa_config import parse
    from labkit.errors import LabkitError

    cfg = parse("\n".join(indent + " ".join(words) for indent, words in lines))
    try:
        advise(cfg)
    except LabkitError:
        pass  # a config whose numbers the MTU model refuses (documented user error)


def _cstp(ptype: int, payload: bytes) -> bytes:
    return b"STF\x01" + struct.pack("!HBB", len(payload), ptype, 0) + payload


@st.composite
def cstp_streams(draw) -> bytes:
    pkts = draw(
        st.lists(st.tuples(st.sampled_from([0, 3, 4, 5, 7]), st.binary(max_size=60)), max_size=8)
    )
    head = b"HTTP/1.1 200 CONNECTED\r\nX-CSTP-MTU: 1347\r\n\r\n"
    body = b"".join(_cstp(t, p) for t, p in pkts)
    junk = draw(st.binary(max_size=20))
    return head + body + junk


def _events(data: bytes, cuts: list[int]):
    from labkit.wire.cstpstream import NEED_DATA, CstpStream

    s = CstpStream("server")
    out, last = [], 0
    for frame, cut in enumerate(sorted(set(cuts)) + [len(data)]):
        s.receive_data(data[last:cut], frame, float(frame))
        last = cut
        while (e := s.next_event()) is not NEED_DATA:
            out.append(e)
    return out


@PROPS
@given(cstp_streams(), st.lists(st.integers(0, 2000), max_size=12))
def test_cstp_stream_events_do_not_depend_on_how_the_bytes_arrive(
    data: bytes, cuts: list[int]
) -> None:
    cuts = [c for c in cuts if c < len(data)]
    whole = _events(data, [])
    pieces = _events(data, cuts)

    def strip(events):  # frame and time say when bytes arrived; the rest must agree
        return [
            (
                type(e).__name__,
                getattr(e, "type", None),
                getattr(e, "length", None),
                getattr(e, "start_line", None),
                getattr(e, "message", None),
            )
            for e in events
        ]

    assert strip(pieces) == strip(whole)


@PROPS
@given(
    st.binary(min_size=1, max_size=3000),
    st.lists(st.integers(1, 400), min_size=1, max_size=30),
    st.randoms(use_true_random=False),
    st.integers(0, 2**32 - 1),
)
def test_tcp_reassembly_is_order_independent(data: bytes, sizes: list[int], rnd, isn: int) -> None:
    """Segments delivered in any order (first one first: the stream starts there), with
    duplicates, come out as the original bytes, across the 2^32 sequence wrap."""
    from labkit.wire.tlsstream import MAX_PENDING, TcpReassembler

    segs, pos, k = [], 0, 0
    while pos < len(data):
        n = sizes[k % len(sizes)]
        segs.append(((isn + pos) % 2**32, data[pos : pos + n]))
        pos, k = pos + n, k + 1
    assume(len(segs) <= MAX_PENDING)
    rest = segs[1:] + rnd.sample(segs[1:], min(3, len(segs) - 1))  # some duplicates
    rnd.shuffle(rest)
    r = TcpReassembler()
    got = b""
    for frame, (seq, payload) in enumerate([segs[0], *rest]):
        got += b"".join(d for d, _f, _t in r.feed(seq, payload, frame, 0.0))
    assert got == data and r.gap is None


@PROPS
@given(st.text(max_size=600))
def test_scenario_loader_raises_only_scenario_errors(text: str) -> None:
    from labkit.scenario import ScenarioError
    from labkit.scenario.loader import parse

    try:
        parse(text, "x.yaml")
    except ScenarioError:
        pass
