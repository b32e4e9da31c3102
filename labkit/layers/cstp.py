"""CSTP and AnyConnect DTLS framing: the headers in front of every tunnelled IP packet.

Cisco AnyConnect (and OpenConnect, ``cstp.c``) frames each packet of the TLS tunnel with an
8-byte CSTP header, ``'S' 'T' 'F' 0x01``, the payload length (16 bits, header excluded),
the packet type and ``0x00``; over DTLS the same type codes travel in a 1-byte header
(OpenConnect ``dtls.c``). Type DATA carries an IPv4 or IPv6 packet.

CSTP rides inside TLS records, so on a real wire it is never seen in clear on TCP 443:
dissect the decrypted TLS application data with ``CSTP(data)``. Cleartext CSTP exists in
labkit's crafted captures (``labkit craft cstp``) and in decrypted exports, so TCP 443 is
bound to CSTP by content: a segment whose payload starts with the magic ``STF\x01`` is
CSTP, anything else is what it was before (Scapy's TLS layer when it is loaded, else raw
bytes). Bind another port with ``bind_bottom_up(TCP, CSTP, dport=PORT)`` (and ``sport``).
AnyConnect DTLS sits inside encrypted DTLS records: ``AnyConnectDTLS(plaintext)``.
"""

# scapy.contrib.description = Cisco AnyConnect CSTP and DTLS packet headers
# scapy.contrib.status = loads

from __future__ import annotations

import sys
from typing import Any

from scapy.config import conf
from scapy.fields import ByteEnumField, StrFixedLenField, XByteField
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet, Raw, bind_bottom_up, bind_top_down

from labkit.layers._chain import BodyLenField, Chained, body_length
from labkit.wire import ANYCONNECT_TYPES, CSTP_MAGIC

DATA = 0
CSTP_PORT = 443  # the head-end's TLS port: AnyConnect's CSTP shares it with the portal


def _ip_class(payload: bytes) -> type[Packet]:
    """IPv4 or IPv6 by the version nibble, as a tun device does (OpenConnect ``cstp.c``)."""
    version = payload[0] >> 4 if payload else 0
    return {4: IP, 6: IPv6}.get(version, Raw)


def _tls_class() -> type[Packet] | None:
    """Scapy's TLS record layer if the user loaded it (``load_layer("tls")``), else None."""
    tls = sys.modules.get("scapy.layers.tls.record")
    return None if tls is None else tls.TLS


class CSTP(Chained):
    """The 8-byte CSTP header; ``length`` counts the payload only."""

    name = "CSTP"
    fields_desc = [
        StrFixedLenField("magic", CSTP_MAGIC, 4),
        BodyLenField("length", None),
        ByteEnumField("type", DATA, ANYCONNECT_TYPES),
        XByteField("reserved", 0),
    ]

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kargs: Any) -> type[Packet]:
        # Port 443 carries TLS far more often than cleartext CSTP: only the magic makes it
        # CSTP; other bytes go to Scapy's TLS layer if the user loaded it, as they would
        # without labkit, else stay raw.
        if _pkt is None or _pkt[: len(CSTP_MAGIC)] == CSTP_MAGIC:
            return cls
        tls = _tls_class()
        if tls is not None:
            return tls.dispatch_hook(_pkt, *args, **kargs)
        return conf.raw_layer

    @classmethod
    def tcp_reassemble(
        cls, data: bytes, metadata: dict[str, Any], session: dict[str, Any]
    ) -> Packet | None:
        """``sniff(session=TCPSession)`` picks one class per stream by port: hand a TLS
        stream to TLS's own reassembly (it keeps the TLS session that decrypts it)."""
        if data[: len(CSTP_MAGIC)] == CSTP_MAGIC:
            return cls(data)
        tls = _tls_class()
        if tls is not None:
            return tls.tcp_reassemble(data, metadata, session)
        return conf.raw_layer(data)

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

bind_bottom_up(TCP, CSTP, dport=CSTP_PORT)
bind_bottom_up(TCP, CSTP, sport=CSTP_PORT)
# Ahead of a TLS binding made earlier (load_layer("tls") before this import): Scapy takes
# the first binding whose ports match, and CSTP's dispatch_hook hands non-CSTP bytes to TLS.
TCP.payload_guess = sorted(TCP.payload_guess, key=lambda entry: entry[1] is not CSTP)
for _upper in (IP, IPv6):
    # Building CSTP()/IP() or AnyConnectDTLS()/IPv6() sets type DATA.
    bind_top_down(CSTP, _upper, type=DATA)
    bind_top_down(AnyConnectDTLS, _upper, type=DATA)

__all__ = ["CSTP", "CSTP_PORT", "AnyConnectDTLS"]
