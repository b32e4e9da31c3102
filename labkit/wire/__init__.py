"""Code tables of the AnyConnect wire formats, without Scapy.

One home for the numbers on the wire (STYLE.md rule 1): the Scapy layers in
:mod:`labkit.layers` build their enum fields from these tables, the packet builders
(:mod:`labkit.craft`, :mod:`labkit.scenario`) and the probes use the same constants, and the
analyzer's ``struct`` decoders (which must not import Scapy, STYLE.md rule 6) can use the
same names and the same "is this DTLS?" test. It also holds the one spelling of a DTLS
version that every command accepts and prints.

Sources: CSTP framing from OpenConnect ``cstp.c`` (``AC_PKT_*`` in ``openconnect-internal.h``);
DTLS record and handshake headers from RFC 6347 sections 4.1 and 4.2.2; ``DTLS1_BAD_VER``
(0x0100) from OpenSSL ``dtls1.h``, the pre-0.9.8f DTLS that Cisco AnyConnect still speaks;
link types from tcpdump.org's "Link-layer header types".
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

#: DTLS record versions (RFC 6347 4.1; RFC 9147 for 1.3), named as OpenSSL's ``dtls1.h``.
DTLS1_BAD_VER: Final = 0x0100
DTLS1_VERSION: Final = 0xFEFF
DTLS1_2_VERSION: Final = 0xFEFD
DTLS1_3_VERSION: Final = 0xFEFC
DTLS_VERSIONS: Final[dict[int, str]] = {
    DTLS1_BAD_VER: "DTLS1_BAD_VER",
    DTLS1_VERSION: "DTLS 1.0",
    DTLS1_2_VERSION: "DTLS 1.2",
    DTLS1_3_VERSION: "DTLS 1.3",
}

#: How every command spells a DTLS version, in its options and its output: the legacy
#: version by its code (it has no number), the others by number, as the MTU model does.
DTLS_VERSION_NAMES: Final[dict[int, str]] = {
    DTLS1_BAD_VER: "0x0100",
    DTLS1_VERSION: "1.0",
    DTLS1_2_VERSION: "1.2",
    DTLS1_3_VERSION: "1.3",
}


def parse_dtls_version(text: str) -> int | None:
    """The DTLS version ``text`` names, or None when it names none.

    Accepted, in any case: the spelling of :data:`DTLS_VERSION_NAMES` (``0x0100``, ``1.2``),
    the same after ``dtls`` (``dtls1.2``, the spelling ``craft`` and ``probe`` took before
    the commands agreed on one, so existing scripts keep working), and the version's code on
    the wire (``0xfefd``).

    >>> [parse_dtls_version(s) == DTLS1_2_VERSION for s in ("1.2", "DTLS1.2", "0xFEFD")]
    [True, True, True]
    >>> parse_dtls_version("1.1") is None
    True
    """
    key = text.strip().lower().removeprefix("dtls").strip()
    for code, name in DTLS_VERSION_NAMES.items():
        if key in (name, f"0x{code:04x}"):
            return code
    return None


#: TLS record and ClientHello versions (RFC 5246 appendix A.1; RFC 8446 freezes 0x0303 on the
#: wire and names 1.3 only in the supported_versions extension).
TLS_VERSION_CODES: Final[dict[str, int]] = {
    "1.0": 0x0301,
    "1.1": 0x0302,
    "1.2": 0x0303,
    "1.3": 0x0304,
}

#: Record content types, the same in TLS and DTLS (RFC 5246 6.2.1, RFC 6347 4.1; RFC 6520
#: for heartbeat).
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

#: Handshake message types, the same in TLS and DTLS (RFC 5246 7.4, RFC 6347 4.3.2 for
#: hello_verify_request).
HS_CLIENT_HELLO: Final = 1
HS_SERVER_HELLO: Final = 2
HS_HELLO_VERIFY_REQUEST: Final = 3
HS_CERTIFICATE: Final = 11
HS_SERVER_KEY_EXCHANGE: Final = 12
HS_SERVER_HELLO_DONE: Final = 14
HS_CLIENT_KEY_EXCHANGE: Final = 16
HS_FINISHED: Final = 20
DTLS_HANDSHAKE_TYPES: Final[dict[int, str]] = {
    0: "hello_request",
    HS_CLIENT_HELLO: "client_hello",
    HS_SERVER_HELLO: "server_hello",
    HS_HELLO_VERIFY_REQUEST: "hello_verify_request",
    4: "new_session_ticket",
    HS_CERTIFICATE: "certificate",
    HS_SERVER_KEY_EXCHANGE: "server_key_exchange",
    13: "certificate_request",
    HS_SERVER_HELLO_DONE: "server_hello_done",
    15: "certificate_verify",
    HS_CLIENT_KEY_EXCHANGE: "client_key_exchange",
    HS_FINISHED: "finished",
}

DTLS_RECORD_HEADER_LEN: Final = 13
DTLS_HANDSHAKE_HEADER_LEN: Final = 12
CSTP_HEADER_LEN: Final = 8

#: Capture link types (tcpdump.org "Link-layer header types"): what the first bytes of each
#: captured frame are.
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW: Final = 101  # raw IPv4 or IPv6, no link header
LINKTYPE_LINUX_SLL: Final = 113  # Linux "cooked" capture (tcpdump -i any)
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229


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
