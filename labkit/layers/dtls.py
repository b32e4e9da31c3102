"""DTLS record and handshake layers, AnyConnect's legacy DTLS1_BAD_VER (0x0100) included.

Scapy 2.8 has TLS but no DTLS. These layers follow RFC 6347 (DTLS 1.2), RFC 4347 (DTLS 1.0)
and OpenSSL's pre-0.9.8f ``DTLS1_BAD_VER`` that Cisco AnyConnect uses to resume the session
named in ``X-DTLS-Session-ID``: ClientHello, HelloVerifyRequest, ClientHello with the cookie,
then ServerHello, ChangeCipherSpec and Finished.

* ``DTLSRecord`` -- the 13-byte record header (section 4.1). Its payload is chosen by content
  (type 20 ChangeCipherSpec, 21 Alert, 22 Handshake) only in epoch 0, where records are
  plaintext; from epoch 1 on the body is encrypted and stays ``Raw``. An AnyConnect data
  record, once decrypted, is ``AnyConnectDTLS(plaintext)``.
* Several records share one datagram and several handshake messages share one record
  (sections 4.1.1 and 4.2.3): ``extract_padding`` trims each to its length and the bytes
  after it dissect as the next record (or message), chained as a payload, so
  ``pkt[DTLSRecord:2]`` is the second record of a datagram. The length fields count only
  the body, not the records chained after it.
* ``DTLSHandshake`` -- the 12-byte handshake header (section 4.2.2). A fragment
  (``fragment_offset``/``fragment_length`` not covering ``length``) stays raw: a piece of a
  message cannot be parsed as a whole one.
* Bodies: ``DTLSClientHello`` (section 4.2.1: the cookie follows the session id),
  ``DTLSServerHello``, ``DTLSHelloVerifyRequest`` (section 4.2.1). Extensions stay raw bytes.
* The DTLS1_BAD_VER ChangeCipherSpec carries a 2-byte message sequence after its type
  byte (OpenSSL ``d1_msg.c``/``dtls1_send_change_cipher_spec``), 3 bytes in all, as the
  AnyConnect capture shows.

UDP 443 is bound both ways; a record on another port (AnyConnect's DTLS port is
configurable) dissects with ``DTLSRecord(bytes(pkt[UDP].payload))``. ``DTLSRecord`` recognises
DTLS by its bytes (content type 20-23, a known version) and falls back to ``Raw``, so QUIC on
UDP 443 is not mistaken for DTLS.
"""

# scapy.contrib.description = DTLS record and handshake (DTLS 1.0/1.2, AnyConnect DTLS1_BAD_VER)
# scapy.contrib.status = loads

from __future__ import annotations

from typing import Any

from scapy.config import conf
from scapy.fields import (
    ByteEnumField,
    ConditionalField,
    FieldLenField,
    FieldListField,
    NBytesField,
    ShortField,
    ThreeBytesField,
    XShortEnumField,
    XStrFixedLenField,
    XStrLenField,
)
from scapy.layers.inet import UDP
from scapy.layers.tls.crypto.suites import _tls_cipher_suites
from scapy.packet import Packet, bind_bottom_up, bind_layers, bind_top_down

from labkit.layers._chain import BodyLen3Field, BodyLenField, Chained, body_length
from labkit.layers.cstp import AnyConnectDTLS
from labkit.wire import (
    CT_ALERT,
    CT_APPLICATION_DATA,
    CT_CHANGE_CIPHER_SPEC,
    CT_HANDSHAKE,
    DTLS1_BAD_VER,
    DTLS_CONTENT_TYPES,
    DTLS_HANDSHAKE_HEADER_LEN,
    DTLS_HANDSHAKE_TYPES,
    DTLS_VERSIONS,
    HS_CLIENT_HELLO,
    HS_HELLO_VERIFY_REQUEST,
    HS_SERVER_HELLO,
    looks_like_dtls,
)

DTLS_PORT = 443  # Cisco's default; `webvpn / dtls port N` changes it

_COMPRESSION = {0: "null", 1: "deflate"}
_ALERT_LEVELS = {1: "warning", 2: "fatal"}
_ALERT_DESCRIPTIONS = {  # RFC 5246 7.2
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    22: "record_overflow",
    40: "handshake_failure",
    42: "bad_certificate",
    47: "illegal_parameter",
    48: "unknown_ca",
    50: "decode_error",
    51: "decrypt_error",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    90: "user_canceled",
    100: "no_renegotiation",
    110: "unsupported_extension",
}


# --- record layer ---------------------------------------------------------------------------


class DTLSRecord(Chained):
    """The 13-byte DTLS record header (RFC 6347 4.1)."""

    name = "DTLS Record"
    fields_desc = [
        ByteEnumField("content_type", CT_HANDSHAKE, DTLS_CONTENT_TYPES),
        XShortEnumField("version", 0xFEFD, DTLS_VERSIONS),
        ShortField("epoch", 0),
        NBytesField("sequence_number", 0, 6),
        BodyLenField("length", None),
    ]

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kargs: Any) -> type[Packet]:
        if _pkt and not looks_like_dtls(_pkt):
            return conf.raw_layer
        return cls

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return s[: self.length], s[self.length :]

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        if self.epoch != 0:  # protected under the negotiated keys: opaque without them
            return conf.raw_layer
        return _PLAINTEXT.get(self.content_type, conf.raw_layer)

    def mysummary(self) -> tuple[str, list[type[Packet]]]:  # type: ignore[override]
        length = body_length(self) if self.length is None else self.length
        return (
            self.sprintf(
                "%DTLSRecord.version% %DTLSRecord.content_type% "
                "epoch=%DTLSRecord.epoch% seq=%DTLSRecord.sequence_number% "
            )
            + f"len={length}"
        ), _SUMMARY_CHAIN


def _record_version(pkt: Packet) -> int | None:
    """The version of the record ``pkt`` travels in, if it is inside one."""
    layer = pkt.underlayer
    while layer is not None:
        if isinstance(layer, DTLSRecord):
            return int(layer.version)
        layer = layer.underlayer
    return None


class DTLSChangeCipherSpec(Packet):
    """ChangeCipherSpec; DTLS1_BAD_VER adds the 2-byte message sequence (OpenSSL)."""

    name = "DTLS ChangeCipherSpec"
    fields_desc = [
        ByteEnumField("msg_type", 1, {1: "change_cipher_spec"}),
        ConditionalField(
            ShortField("message_seq", 0), lambda pkt: _record_version(pkt) == DTLS1_BAD_VER
        ),
    ]

    def mysummary(self) -> tuple[str, list[type[Packet]]]:  # type: ignore[override]
        return "ChangeCipherSpec", _SUMMARY_CHAIN


class DTLSAlert(Packet):
    """A plaintext alert (epoch 0): level and description (RFC 5246 7.2)."""

    name = "DTLS Alert"
    fields_desc = [
        ByteEnumField("level", 2, _ALERT_LEVELS),
        ByteEnumField("description", 0, _ALERT_DESCRIPTIONS),
    ]

    def mysummary(self) -> tuple[str, list[type[Packet]]]:  # type: ignore[override]
        return self.sprintf("Alert %DTLSAlert.level% %DTLSAlert.description%"), _SUMMARY_CHAIN


# --- handshake ------------------------------------------------------------------------------


class DTLSHandshake(Chained):
    """The 12-byte DTLS handshake header (RFC 6347 4.2.2)."""

    name = "DTLS Handshake"
    fields_desc = [
        ByteEnumField("msg_type", HS_CLIENT_HELLO, DTLS_HANDSHAKE_TYPES),
        BodyLen3Field("length", None),
        ShortField("message_seq", 0),
        ThreeBytesField("fragment_offset", 0),
        BodyLen3Field("fragment_length", None),
    ]

    def chain_boundaries(self) -> tuple[type[Packet], ...]:
        return (DTLSHandshake, DTLSRecord)

    def next_class(self, rest: bytes) -> type[Packet]:
        return DTLSHandshake if len(rest) >= DTLS_HANDSHAKE_HEADER_LEN else conf.raw_layer

    @property
    def is_fragment(self) -> bool:
        """True when this record carries only part of the message."""
        return self.fragment_offset != 0 or self.fragment_length != self.length

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return s[: self.fragment_length], s[self.fragment_length :]

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        if self.is_fragment:
            return conf.raw_layer
        return _BODIES.get(self.msg_type, conf.raw_layer)

    def mysummary(self) -> tuple[str, list[type[Packet]]]:  # type: ignore[override]
        text = self.sprintf("%DTLSHandshake.msg_type% msg_seq=%DTLSHandshake.message_seq%")
        if self.fragment_length is not None and self.is_fragment:
            text += f" fragment {self.fragment_offset}+{self.fragment_length}/{self.length}"
        return text, _SUMMARY_CHAIN


class _OptionalLenField(FieldLenField):
    """The extensions block is optional (RFC 5246 7.4.1.2): absent on the wire is None.

    AnyConnect's legacy ClientHello ends after the compression methods; a ClientHello
    with an empty block (length 0) is a different byte string and must rebuild as one.
    """

    # None (absent) is outside the int Scapy annotates: a deliberate widening.
    def getfield(self, pkt: Packet, s: bytes) -> tuple[bytes, int | None]:  # type: ignore[override]
        if not s:
            return s, None
        return super().getfield(pkt, s)

    def addfield(self, pkt: Packet, s: bytes, val: int | None) -> bytes:
        if val is None and self.length_of and pkt.getfieldval(self.length_of) is None:
            return s
        return super().addfield(pkt, s, val)


class _OptionalStrLenField(XStrLenField):
    """The extensions themselves: None, not b"", when the block is absent."""

    def getfield(self, pkt: Packet, s: bytes) -> tuple[bytes, bytes | None]:  # type: ignore[override]
        if pkt.extensions_len is None:
            return s, None
        return super().getfield(pkt, s)


def _extensions() -> list[Any]:
    return [
        _OptionalLenField("extensions_len", None, length_of="extensions"),
        _OptionalStrLenField(
            "extensions",
            None,  # type: ignore[arg-type]  # absent, as the class says
            length_from=lambda pkt: pkt.extensions_len or 0,
        ),
    ]


def _session_id() -> list[Any]:
    return [
        FieldLenField("session_id_len", None, length_of="session_id", fmt="B"),
        XStrLenField("session_id", b"", length_from=lambda pkt: pkt.session_id_len),
    ]


class DTLSClientHello(Packet):
    """ClientHello body (RFC 6347 4.2.1): TLS's, plus the cookie after the session id."""

    name = "DTLS ClientHello"
    fields_desc = [
        XShortEnumField("version", 0xFEFD, DTLS_VERSIONS),
        XStrFixedLenField("random", b"\x00" * 32, 32),
        *_session_id(),
        FieldLenField("cookie_len", None, length_of="cookie", fmt="B"),
        XStrLenField("cookie", b"", length_from=lambda pkt: pkt.cookie_len),
        FieldLenField("cipher_suites_len", None, length_of="cipher_suites"),
        FieldListField(
            "cipher_suites",
            [],
            XShortEnumField("suite", 0, _tls_cipher_suites),
            length_from=lambda pkt: pkt.cipher_suites_len,
        ),
        FieldLenField("compression_methods_len", None, length_of="compression_methods", fmt="B"),
        FieldListField(
            "compression_methods",
            [0],  # type: ignore[list-item]  # Scapy annotates the default as fields, not values
            ByteEnumField("method", 0, _COMPRESSION),
            length_from=lambda pkt: pkt.compression_methods_len,
        ),
        *_extensions(),
    ]

    def mysummary(self) -> tuple[str, list[type[Packet]]]:  # type: ignore[override]
        return (
            self.sprintf("ClientHello %DTLSClientHello.version%")
            + f" sid={len(self.session_id)}B cookie={len(self.cookie)}B"
            + f" suites={len(self.cipher_suites)}"
        ), _SUMMARY_CHAIN


class DTLSServerHello(Packet):
    """ServerHello body (RFC 5246 7.4.1.3; unchanged in DTLS)."""

    name = "DTLS ServerHello"
    fields_desc = [
        XShortEnumField("version", 0xFEFD, DTLS_VERSIONS),
        XStrFixedLenField("random", b"\x00" * 32, 32),
        *_session_id(),
        XShortEnumField("cipher_suite", 0, _tls_cipher_suites),
        ByteEnumField("compression_method", 0, _COMPRESSION),
        *_extensions(),
    ]

    def mysummary(self) -> tuple[str, list[type[Packet]]]:  # type: ignore[override]
        return self.sprintf(
            "ServerHello %DTLSServerHello.version% %DTLSServerHello.cipher_suite%"
        ), _SUMMARY_CHAIN


class DTLSHelloVerifyRequest(Packet):
    """HelloVerifyRequest body (RFC 6347 4.2.1): the server's stateless cookie."""

    name = "DTLS HelloVerifyRequest"
    fields_desc = [
        XShortEnumField("server_version", 0xFEFF, DTLS_VERSIONS),
        FieldLenField("cookie_len", None, length_of="cookie", fmt="B"),
        XStrLenField("cookie", b"", length_from=lambda pkt: pkt.cookie_len),
    ]

    def mysummary(self) -> tuple[str, list[type[Packet]]]:  # type: ignore[override]
        return (
            self.sprintf("HelloVerifyRequest %DTLSHelloVerifyRequest.server_version%")
            + f" cookie={len(self.cookie)}B"
        ), _SUMMARY_CHAIN


_PLAINTEXT: dict[int, type[Packet]] = {
    CT_CHANGE_CIPHER_SPEC: DTLSChangeCipherSpec,
    CT_ALERT: DTLSAlert,
    CT_HANDSHAKE: DTLSHandshake,
}
_BODIES: dict[int, type[Packet]] = {
    HS_CLIENT_HELLO: DTLSClientHello,
    HS_SERVER_HELLO: DTLSServerHello,
    HS_HELLO_VERIFY_REQUEST: DTLSHelloVerifyRequest,
}
# Every DTLS layer names itself in a summary, not only the innermost (Packet._do_summary).
# mysummary returns (text, layers), the couple Packet.mysummary's docstring documents; Scapy
# annotates it as str only, hence the overrides' type: ignore[override].
_SUMMARY_CHAIN: list[type[Packet]] = [
    UDP,
    DTLSRecord,
    DTLSHandshake,
    DTLSChangeCipherSpec,
    DTLSAlert,
    *_BODIES.values(),
]

bind_bottom_up(UDP, DTLSRecord, dport=DTLS_PORT)
bind_bottom_up(UDP, DTLSRecord, sport=DTLS_PORT)
bind_layers(UDP, DTLSRecord, sport=DTLS_PORT, dport=DTLS_PORT)
for _ct, _cls in _PLAINTEXT.items():
    bind_top_down(DTLSRecord, _cls, content_type=_ct)
for _mt, _cls in _BODIES.items():
    bind_top_down(DTLSHandshake, _cls, msg_type=_mt)
# AnyConnect data is application data under the negotiated keys (epoch >= 1): building
# DTLSRecord()/AnyConnectDTLS()/IP() gives the decrypted view of such a record.
bind_top_down(DTLSRecord, AnyConnectDTLS, content_type=CT_APPLICATION_DATA, epoch=1)

__all__ = [
    "DTLS_PORT",
    "DTLSAlert",
    "DTLSChangeCipherSpec",
    "DTLSClientHello",
    "DTLSHandshake",
    "DTLSHelloVerifyRequest",
    "DTLSRecord",
    "DTLSServerHello",
]
