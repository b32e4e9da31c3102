"""The Internet checksum (RFC 1071) of IPv4 headers, TCP, UDP and ICMPv6: whole, or from sums.

A ones' complement sum of 16-bit words equals the big-endian integer of the bytes modulo
0xffff (2**16 is 1 modulo 0xffff), which ``int.from_bytes`` computes in C: no loop over words.
The sum is order-independent (RFC 1071 section 2), so a caller that sends many packets with
the same payload (the benchmarks' generator) sums the payload once and adds the few header
words that change: :func:`word_sum`, then :func:`checksum_of_sum`.
"""

from __future__ import annotations


def word_sum(data: bytes) -> int:
    """Ones' complement sum of ``data`` as big-endian 16-bit words, reduced modulo 0xffff."""
    value = int.from_bytes(data, "big")
    if len(data) & 1:
        value <<= 8  # an odd trailing byte is padded with a zero on the right (RFC 1071)
    return value % 0xFFFF


def checksum_of_sum(total: int) -> int:
    """The checksum field for a sum: its ones' complement, 0x0000 rather than 0xffff (RFC 1624)."""
    rest = total % 0xFFFF
    return 0xFFFF - rest if rest else 0


def udp_checksum_of_sum(total: int) -> int:
    """UDP sends a computed 0 as 0xffff: a 0 field means "no checksum" (RFC 768)."""
    return 0xFFFF - total % 0xFFFF


def internet_checksum(data: bytes) -> int:
    """The checksum of ``data`` exactly as RFC 1071's folding loop gives it: bytes whose words
    sum to a non-zero multiple of 0xffff fold to 0xffff (checksum 0), all-zero bytes to 0
    (checksum 0xffff)."""
    total = word_sum(data)
    if total == 0 and any(data):
        total = 0xFFFF
    return ~total & 0xFFFF
