"""The Internet checksum (``labkit.wire.checksum``) on literal bytes and on real headers."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.analyze.decode import locate
from labkit.pcapio.reader import open_capture
from labkit.wire.checksum import checksum_of_sum, internet_checksum, word_sum
from tests.helpers.paths import PUBLIC
from tests.helpers.strategies import PROPS
from tests.helpers.tshark import requires_tshark, tshark_fields


def rfc1071_loop(data: bytes) -> int:
    """RFC 1071 section 4.1's reference loop, transcribed: 16-bit words, carries folded."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def test_rfc1071_worked_example() -> None:
    # RFC 1071 section 3: these bytes sum to 0xddf2, so the checksum is its complement.
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_edge_sums_fold_as_the_rfc_loop_does() -> None:
    assert internet_checksum(b"") == internet_checksum(b"\0\0") == 0xFFFF
    assert internet_checksum(b"\xff\xff") == internet_checksum(b"\xff\xff" * 3) == 0
    assert internet_checksum(b"\x01") == 0xFEFF  # an odd byte is padded on the right


@PROPS
@given(st.binary(max_size=64))
def test_equals_the_rfc_loop_on_any_bytes(data: bytes) -> None:
    assert internet_checksum(data) == rfc1071_loop(data)


@PROPS
@given(st.binary(max_size=32).map(lambda b: b[: len(b) // 2 * 2]), st.binary(max_size=32))
def test_sums_of_parts_give_the_checksum_of_the_whole(head: bytes, tail: bytes) -> None:
    whole = head + tail
    if any(whole):  # all zeros: the partial form writes 0 where the RFC loop gives 0xffff
        assert checksum_of_sum(word_sum(head) + word_sum(tail)) == internet_checksum(whole)


@requires_tshark
@pytest.mark.parametrize("name", ["anyconnect-vpn.pcap", "tcp-mss-fast-retransmit.pcap"])
def test_ipv4_header_checks_agree_with_tshark(name: str) -> None:
    """A header, its checksum field included, sums to zero exactly when tshark calls its
    checksum good (the second capture was taken with checksum offload: every one is bad)."""
    path = PUBLIC / name
    judged = tshark_fields(
        path, "ip", "frame.number", "ip.checksum.status", extra=("-o", "ip.check_checksum:TRUE")
    )
    tshark_good = {int(r[0]): r[1].split(",")[0] == "1" for r in judged}
    with open_capture(path) as cap:
        ours = {}
        for r in cap.records():
            off, version, _why = locate(r.data, r.linktype, outermost=True)
            if r.frame in tshark_good and version == 4:
                ours[r.frame] = internet_checksum(r.data[off : off + (r.data[off] & 0x0F) * 4]) == 0
    assert len(ours) > 10 and ours == {f: tshark_good[f] for f in ours}
