"""Code tables of the AnyConnect wire formats, without Scapy.

One home for the numbers on the wire (STYLE.md rule 1): the Scapy layers in
:mod:`labkit.layers` build their enum fields from these tables, and the analyzer's
``struct`` decoders (which must not import Scapy, STYLE.md rule 6) can use the same names
and the same "is this DTLS?" test.

Sources: CSTP framing from OpenConnect ``cstp.c`` (``AC_PKT_*`` in ``openconnect-internal.h``);
DTLS record and handshake headers from RFC 6347 sections 4.1 and 4.2.2; ``DTLS1_BAD_VER``
(0x0100) from OpenSSL ``dtls1.h``, the pre-0.9.8f DTLS that Cisco AnyConnect still speaks.
"""

from __future__ import annotations

from typing import Final

#: CSTP header: 'S' 'T' 'F' 0x01, length (16 bits), type, 0x00 (OpenConnect cstp.c).
CSTP_MAGIC: Final = b"STF\x01"

#: Packet types shared by the 8-byte CSTP header and the 1-byte AnyConnect DTLS header
#: (OpenConnect ``AC_PKT_DATA`` .. ``AC_PKT_TERM_SERVER``).
ANYCONNECT_TYPES: Final[dict[int, str]] = {
    0: "DATA",
    3: "DPD-REQ",
    4: "DPD-RESP",
    5: "DISCONNECT",
    7: "KEEPALIVE",
    8: "COMPRESSED",
    9: "TERMINATE",
}

#: DTLS record versions (RFC 6347 4.1; RFC 9147 for 1.3; OpenSSL DTLS1_BAD_VER).
DTLS1_BAD_VER: Final = 0x0100
DTLS_VERSIONS: Final[dict[int, str]] = {
    DTLS1_BAD_VER: "DTLS1_BAD_VER",
    0xFEFF: "DTLS 1.0",
    0xFEFD: "DTLS 1.2",
    0xFEFC: "DTLS 1.3",
}

#: Record content types (RFC 6347 4.1, RFC 6520 for heartbeat).
CT_CHANGE_CIPHER_SPEC: Final = 20
CT_ALERT: Final = 21
CT_HANDSHAKE: Final = 22
CT_APPLICATION_DATA: Final = 23
DTLS_CONTENT_TYPES: Final[dict[int, str]] = {
    CT_CHANGE_CIPHER_SPEC: "change_cipher_spec",
    CT_ALERT: "alert",
    CT_HANDSHAKE: "handshake",
    CT_APPLICATION_DATA: "application_data",
    24: "heartbeat",
}

#: Handshake message types (RFC 5246 7.4, RFC 6347 4.3.2 for hello_verify_request).
HS_CLIENT_HELLO: Final = 1
HS_SERVER_HELLO: Final = 2
HS_HELLO_VERIFY_REQUEST: Final = 3
DTLS_HANDSHAKE_TYPES: Final[dict[int, str]] = {
    0: "hello_request",
    HS_CLIENT_HELLO: "client_hello",
    HS_SERVER_HELLO: "server_hello",
    HS_HELLO_VERIFY_REQUEST: "hello_verify_request",
    4: "new_session_ticket",
    11: "certificate",
    12: "server_key_exchange",
    13: "certificate_request",
    14: "server_hello_done",
    15: "certificate_verify",
    16: "client_key_exchange",
    20: "finished",
}

DTLS_RECORD_HEADER_LEN: Final = 13
DTLS_HANDSHAKE_HEADER_LEN: Final = 12
CSTP_HEADER_LEN: Final = 8


def looks_like_dtls(data: bytes) -> bool:
    """True when ``data`` starts with a DTLS record header labkit knows.

    The test Wireshark's DTLS heuristic and Zeek's DPD signature make: a content type
    20-23 followed by a DTLS version, so DTLS is recognised on any UDP port (AnyConnect's
    DTLS port is configurable) and QUIC or DNS on 443 is not mistaken for it.
    """
    return (
        len(data) >= DTLS_RECORD_HEADER_LEN
        and CT_CHANGE_CIPHER_SPEC <= data[0] <= CT_APPLICATION_DATA
        and int.from_bytes(data[1:3], "big") in DTLS_VERSIONS
    )


#: IANA code of each OpenSSL-named suite in :data:`labkit.mtu.CIPHERS` (IANA "TLS Cipher
#: Suites" registry; OpenSSL ``ciphers -V``), so a hello offers the suite the model assumes.
SUITE_CODES: Final[dict[str, int]] = {
    "RC4-SHA": 0x0005,
    "DES-CBC3-SHA": 0x000A,
    "AES128-SHA": 0x002F,
    "DHE-RSA-AES128-SHA": 0x0033,
    "AES256-SHA": 0x0035,
    "DHE-RSA-AES256-SHA": 0x0039,
    "AES128-SHA256": 0x003C,
    "AES256-SHA256": 0x003D,
    "DHE-RSA-AES128-SHA256": 0x0067,
    "DHE-RSA-AES256-SHA256": 0x006B,
    "AES128-GCM-SHA256": 0x009C,
    "AES256-GCM-SHA384": 0x009D,
    "DHE-RSA-AES128-GCM-SHA256": 0x009E,
    "DHE-RSA-AES256-GCM-SHA384": 0x009F,
    "ECDHE-ECDSA-AES128-SHA": 0xC009,
    "ECDHE-ECDSA-AES256-SHA": 0xC00A,
    "ECDHE-RSA-AES128-SHA": 0xC013,
    "ECDHE-RSA-AES256-SHA": 0xC014,
    "ECDHE-ECDSA-AES128-SHA256": 0xC023,
    "ECDHE-ECDSA-AES256-SHA384": 0xC024,
    "ECDHE-RSA-AES128-SHA256": 0xC027,
    "ECDHE-RSA-AES256-SHA384": 0xC028,
    "ECDHE-ECDSA-AES128-GCM-SHA256": 0xC02B,
    "ECDHE-ECDSA-AES256-GCM-SHA384": 0xC02C,
    "ECDHE-RSA-AES128-GCM-SHA256": 0xC02F,
    "ECDHE-RSA-AES256-GCM-SHA384": 0xC030,
    "ECDHE-RSA-CHACHA20-POLY1305": 0xCCA8,
    "ECDHE-ECDSA-CHACHA20-POLY1305": 0xCCA9,
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
}
