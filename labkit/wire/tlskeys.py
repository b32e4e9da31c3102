"""TLS 1.2 record keys from a key log's master secret and the two hellos (sans-IO).

A TLS 1.2 session's record keys follow from its master secret (the key log's
``CLIENT_RANDOM`` line), the two hello randoms and the suite the server chose (RFC 5246 6.3:
``key_block = PRF(master_secret, "key expansion", server_random + client_random)``, cut into
MAC keys, encryption keys and, for GCM, the nonce salts). For the suites AnyConnect head-ends
negotiate (AES-CBC with SHA-1/SHA-2 MACs, AES-GCM) that is all a reader needs: no handshake
message beyond the ServerHello is parsed and no key exchange is redone. Other suites and
TLS 1.3 are left to Scapy's TLS layer (:func:`server_hello` says which).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import Final, Literal

from labkit.wire.tlscrypt import RecordKeys

HS_SERVER_HELLO: Final = 2
EXT_ENCRYPT_THEN_MAC: Final = 0x0016  # RFC 7366
EXT_SUPPORTED_VERSIONS: Final = 0x002B  # RFC 8446 4.2.1: its presence means TLS 1.3
TLS12: Final = 0x0303


@dataclass(frozen=True, slots=True)
class Suite:
    name: str  # the IANA name, as Scapy and Wireshark print it
    mode: Literal["cbc", "gcm"]
    key_len: int
    mac_hash: str  # hashlib name of the record MAC (CBC); "" for GCM
    prf_hash: str  # hashlib name of the PRF (RFC 5246 5; the suite's for SHA-384 suites)


def _suites() -> dict[int, Suite]:
    out: dict[int, Suite] = {}
    for code, kx, bits, mac in (
        (0x002F, "RSA", 128, "SHA"),
        (0x0035, "RSA", 256, "SHA"),
        (0x003C, "RSA", 128, "SHA256"),
        (0x003D, "RSA", 256, "SHA256"),
        (0x0033, "DHE_RSA", 128, "SHA"),
        (0x0039, "DHE_RSA", 256, "SHA"),
        (0x0067, "DHE_RSA", 128, "SHA256"),
        (0x006B, "DHE_RSA", 256, "SHA256"),
        (0xC009, "ECDHE_ECDSA", 128, "SHA"),
        (0xC00A, "ECDHE_ECDSA", 256, "SHA"),
        (0xC013, "ECDHE_RSA", 128, "SHA"),
        (0xC014, "ECDHE_RSA", 256, "SHA"),
        (0xC023, "ECDHE_ECDSA", 128, "SHA256"),
        (0xC024, "ECDHE_ECDSA", 256, "SHA384"),
        (0xC027, "ECDHE_RSA", 128, "SHA256"),
        (0xC028, "ECDHE_RSA", 256, "SHA384"),
    ):
        mac_hash = {"SHA": "sha1", "SHA256": "sha256", "SHA384": "sha384"}[mac]
        prf = "sha384" if mac == "SHA384" else "sha256"
        out[code] = Suite(f"TLS_{kx}_WITH_AES_{bits}_CBC_{mac}", "cbc", bits // 8, mac_hash, prf)
    for code, kx, bits in (
        (0x009C, "RSA", 128),
        (0x009D, "RSA", 256),
        (0x009E, "DHE_RSA", 128),
        (0x009F, "DHE_RSA", 256),
        (0xC02B, "ECDHE_ECDSA", 128),
        (0xC02C, "ECDHE_ECDSA", 256),
        (0xC02F, "ECDHE_RSA", 128),
        (0xC030, "ECDHE_RSA", 256),
    ):
        sha = "SHA256" if bits == 128 else "SHA384"
        out[code] = Suite(f"TLS_{kx}_WITH_AES_{bits}_GCM_{sha}", "gcm", bits // 8, "", sha.lower())
    return out


#: The suites whose records labkit opens itself, by their code point.
SUITES: Final = _suites()


@dataclass(frozen=True, slots=True)
class ServerHello:
    version: int  # the negotiated version (legacy field; TLS 1.3 says so in an extension)
    random: bytes
    suite: int
    encrypt_then_mac: bool
    tls13: bool


def server_hello(handshake: bytes) -> ServerHello | None:
    """The ServerHello at the start of the server's handshake bytes (RFC 5246 7.4.1.3), or
    None when they do not (yet) hold a whole one."""
    if len(handshake) < 4 or handshake[0] != HS_SERVER_HELLO:
        return None
    end = 4 + int.from_bytes(handshake[1:4], "big")
    if len(handshake) < end or end < 4 + 38:
        return None
    body = handshake[4:end]
    version, random = struct.unpack_from("!H", body)[0], body[2:34]
    at = 35 + body[34]  # past the session id
    if len(body) < at + 3:
        return None
    suite = struct.unpack_from("!H", body, at)[0]
    at += 3  # suite and compression method
    etm = tls13 = False
    if len(body) >= at + 2:
        stop = min(len(body), at + 2 + struct.unpack_from("!H", body, at)[0])
        at += 2
        while at + 4 <= stop:
            kind, size = struct.unpack_from("!HH", body, at)
            etm |= kind == EXT_ENCRYPT_THEN_MAC
            tls13 |= kind == EXT_SUPPORTED_VERSIONS
            at += 4 + size
    return ServerHello(version, random, suite, etm, tls13)


def prf(secret: bytes, label: bytes, seed: bytes, size: int, hash_name: str) -> bytes:
    """The TLS 1.2 PRF, P_hash (RFC 5246 5)."""
    out, a = b"", label + seed
    while len(out) < size:
        a = hmac.new(secret, a, hash_name).digest()
        out += hmac.new(secret, a + label + seed, hash_name).digest()
    return out[:size]


def record_keys(
    master: bytes, client_random: bytes, hello: ServerHello
) -> tuple[Suite, RecordKeys, RecordKeys] | None:
    """The suite and the client's and server's write keys (what the other side reads with),
    or None for a version or suite this module leaves to Scapy."""
    suite = SUITES.get(hello.suite)
    if suite is None or hello.version != TLS12 or hello.tls13:
        return None
    mac = hashlib.new(suite.mac_hash).digest_size if suite.mode == "cbc" else 0
    salt = 4 if suite.mode == "gcm" else 0  # RFC 5288 3: the implicit nonce part
    size = 2 * (mac + suite.key_len + salt)
    block = prf(master, b"key expansion", hello.random + client_random, size, suite.prf_hash)
    cut = [mac, mac, suite.key_len, suite.key_len, salt, salt]
    parts, at = [], 0
    for n in cut:
        parts.append(block[at : at + n])
        at += n
    c_mac, s_mac, c_key, s_key, c_salt, s_salt = parts
    etm = hello.encrypt_then_mac and suite.mode == "cbc"
    if suite.mode == "gcm":
        return suite, RecordKeys("gcm", c_key, salt=c_salt), RecordKeys("gcm", s_key, salt=s_salt)
    return (
        suite,
        RecordKeys("cbc", c_key, c_mac, suite.mac_hash, etm),
        RecordKeys("cbc", s_key, s_mac, suite.mac_hash, etm),
    )
