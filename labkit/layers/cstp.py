"""CSTP and AnyConnect DTLS framing: the headers in front of every tunnelled IP packet.

Cisco AnyConnect (and OpenConnect, ``cstp.c``) frames each packet of the TLS tunnel with an
8-byte CSTP header, ``'S' 'T' 'F' 0x01``, the payload length (16 bits, header excluded),
the packet type and ``0x00``; over DTLS the same type codes travel in a 1-byte header
(OpenConnect ``dtls.c``). Type DATA carries an IPv4 or IPv6 packet.

CSTP rides inside TLS records, so it is never seen in clear on TCP 443: dissect the
decrypted TLS application data with ``CSTP(data)``. Nothing binds CSTP to a TCP port;
labkit crafts cleartext CSTP only for lab and dissector tests. AnyConnect DTLS likewise
sits inside encrypted DTLS records: ``AnyConnectDTLS(plaintext)``.
"""

# scapy.contrib.description = Cisco AnyConnect CSTP and DTLS packet headers
# scapy.contrib.status = loads

from __future__ import annotations

from scapy.fields import ByteEnumField, StrFixedLenField, XByteField
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet, Raw, bind_top_down

from labkit.layers._chain import BodyLenField, Chained, body_length
from labkit.wire import ANYCONNECT_TYPES, CSTP_MAGIC

DATA = 0


def _ip_class(payload: bytes) -> type[Packet]:
    """IPv4 or IPv6 by the version nibble, as a tun device does (OpenConnect ``cstp.c``)."""
    version = payload[0] >> 4 if payload else 0
    return {4: IP, 6: IPv6}.get(version, Raw)


class CSTP(Chained):
    """The 8-byte CSTP header; ``length`` counts the payload only."""

    name = "CSTP"
    fields_desc = [
        StrFixedLenField("magic", CSTP_MAGIC, 4),
        BodyLenField("length", None),
        ByteEnumField("type", DATA, ANYCONNECT_TYPES),
        XByteField("reserved", 0),
    ]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        # Several CSTP packets share one TLS record: the rest is the next one (Chained).
        return s[: self.length], s[self.length :]

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        if self.type == DATA:
            return _ip_class(payload)
        return Raw

    def mysummary(self) -> tuple[str, list[type[Packet]]]:  # type: ignore[override]
        length = body_length(self) if self.length is None else self.length
        return self.sprintf("CSTP %CSTP.type% ") + f"len={length}", _SUMMARY_CHAIN


class AnyConnectDTLS(Packet):
    """The 1-byte header in front of each packet inside an AnyConnect DTLS record."""

    name = "AnyConnect DTLS"
    fields_desc = [ByteEnumField("type", DATA, ANYCONNECT_TYPES)]

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        if self.type == DATA:
            return _ip_class(payload)
        return Raw

    def mysummary(self) -> tuple[str, list[type[Packet]]]:  # type: ignore[override]
        return self.sprintf("AnyConnect DTLS %AnyConnectDTLS.type%"), _SUMMARY_CHAIN


# Name the tunnel headers and the transports both outside and inside them in a summary
# (Packet._do_summary otherwise names only the innermost layer that has a summary).
# mysummary returns (text, layers), the couple Packet.mysummary's docstring documents; Scapy
# annotates it as str only, hence the overrides' type: ignore[override].
_SUMMARY_CHAIN: list[type[Packet]] = [CSTP, AnyConnectDTLS, TCP, UDP]

for _upper in (IP, IPv6):
    # Building CSTP()/IP() or AnyConnectDTLS()/IPv6() sets type DATA.
    bind_top_down(CSTP, _upper, type=DATA)
    bind_top_down(AnyConnectDTLS, _upper, type=DATA)

__all__ = ["CSTP", "AnyConnectDTLS"]
