"""The bytes of a TLS 1.0-1.2 session as a capture shows it without the keys.

A scenario's parent tunnel is a full TLS handshake followed by the CSTP CONNECT exchange and
CSTP packets in application-data records. What a capture can check without the keys is the
handshake in clear (ServerHello, Certificate, ServerKeyExchange, ServerHelloDone,
ClientKeyExchange: RFC 5246 7.4) and the *length* of every protected record, which the
cipher decides (:func:`labkit.mtu.record_length`). So the clear messages are real, and a
protected record is its header plus opaque bytes of exactly that length, drawn from the
scenario's seeded generator.

The ClientHello comes from :func:`labkit.craft.tls_client_hello`; this module makes the
rest of the stream, as bytes: no Scapy (the scenario builder cuts them into TCP segments).
"""

from __future__ import annotations

import base64
from functools import cache
from importlib import resources
from random import Random

from labkit import mtu
from labkit.wire import (
    CT_CHANGE_CIPHER_SPEC,
    CT_HANDSHAKE,
    HS_CERTIFICATE,
    HS_CLIENT_KEY_EXCHANGE,
    HS_SERVER_HELLO,
    HS_SERVER_HELLO_DONE,
    HS_SERVER_KEY_EXCHANGE,
    TLS_VERSION_CODES,
)

VERIFY_DATA = 12  # Finished.verify_data (RFC 5246 7.4.9)
FINISHED_PLAINTEXT = 4 + VERIFY_DATA  # with the 4-byte handshake header
CLOSE_NOTIFY_PLAINTEXT = 2  # level + description (RFC 5246 7.2)
RSA_BYTES = 256  # the head-end certificate's 2048-bit RSA key: signatures, encrypted secrets
X25519 = 0x001D
RSA_PKCS1_SHA256 = 0x0401
EXT_EC_POINT_FORMATS, EXT_RENEGOTIATION_INFO = 0x000B, 0xFF01


def _u8(n: int) -> bytes:
    return n.to_bytes(1, "big")


def _u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def _u24(n: int) -> bytes:
    return n.to_bytes(3, "big")


def record(content_type: int, body: bytes, version: str = "1.2") -> bytes:
    """One TLS record: type, version, 16-bit length, body (RFC 5246 6.2.1)."""
    return _u8(content_type) + _u16(TLS_VERSION_CODES[version]) + _u16(len(body)) + body


def handshake(msg_type: int, body: bytes) -> bytes:
    """One handshake message: type and 24-bit length before the body (RFC 5246 7.4)."""
    return _u8(msg_type) + _u24(len(body)) + body


@cache
def certificate() -> bytes:
    """The lab head-end's self-signed certificate (CN vpn.example.com, RSA 2048), DER.

    Made once with ``cryptography`` and kept as PEM in ``labkit/data``; the private key was
    thrown away: nothing in a scenario is really encrypted or signed.
    """
    pem = resources.files("labkit").joinpath("data/vpn-headend-cert.pem").read_text()
    body = "".join(line for line in pem.splitlines() if line and not line.startswith("-----"))
    return base64.b64decode(body)


def key_exchange(suite: str) -> str:
    """``rsa``, ``dhe`` or ``ecdhe``, from the OpenSSL suite name."""
    name = mtu.cipher(suite).name
    if name.startswith("ECDHE-"):
        return "ecdhe"
    if name.startswith("DHE-"):
        return "dhe"
    return "rsa"


def _signed(params: bytes, version: str, rng: Random) -> bytes:
    """Key-exchange parameters with an (opaque) RSA signature; TLS 1.2 names the algorithm."""
    algorithm = _u16(RSA_PKCS1_SHA256) if version == "1.2" else b""
    return params + algorithm + _u16(RSA_BYTES) + rng.randbytes(RSA_BYTES)


def server_flight(
    *, suite_code: int, suite: str, session_id: bytes, version: str, rng: Random
) -> bytes:
    """ServerHello, Certificate, [ServerKeyExchange], ServerHelloDone in one record."""
    kx = key_exchange(suite)
    extensions = _u16(EXT_RENEGOTIATION_INFO) + _u16(1) + b"\x00"  # RFC 5746 3.6
    if kx == "ecdhe":  # RFC 8422 5.2: uncompressed points only
        extensions += _u16(EXT_EC_POINT_FORMATS) + _u16(2) + b"\x01\x00"
    hello = (
        _u16(TLS_VERSION_CODES[version])
        + rng.randbytes(32)
        + _u8(len(session_id))
        + session_id
        + _u16(suite_code)
        + b"\x00"
        + _u16(len(extensions))
        + extensions
    )
    der = certificate()
    chain = _u24(len(der)) + der
    messages = [
        handshake(HS_SERVER_HELLO, hello),
        handshake(HS_CERTIFICATE, _u24(len(chain)) + chain),
    ]
    if kx == "ecdhe":  # RFC 8422 5.4: named curve x25519, the server's 32-byte point
        params = b"\x03" + _u16(X25519) + _u8(32) + rng.randbytes(32)
        messages.append(handshake(HS_SERVER_KEY_EXCHANGE, _signed(params, version, rng)))
    elif kx == "dhe":  # RFC 5246 7.4.3: p, g, Ys of a 2048-bit group
        prime = b"\xff" + rng.randbytes(RSA_BYTES - 2) + b"\xff"
        params = (
            _u16(len(prime))
            + prime
            + _u16(1)
            + b"\x02"
            + _u16(RSA_BYTES)
            + rng.randbytes(RSA_BYTES)
        )
        messages.append(handshake(HS_SERVER_KEY_EXCHANGE, _signed(params, version, rng)))
    messages.append(handshake(HS_SERVER_HELLO_DONE, b""))
    return record(CT_HANDSHAKE, b"".join(messages), version)


def protected(content_type: int, plaintext: int, *, suite: str, version: str, rng: Random) -> bytes:
    """A record protecting ``plaintext`` bytes: header, then opaque bytes of the right length."""
    return record(
        content_type, rng.randbytes(mtu.record_length(plaintext, suite, version)), version
    )


def client_finish(*, suite: str, version: str, rng: Random) -> bytes:
    """ClientKeyExchange, ChangeCipherSpec and the encrypted Finished (RFC 5246 7.4.7)."""
    kx = key_exchange(suite)
    if kx == "ecdhe":
        exchange = _u8(32) + rng.randbytes(32)
    else:  # the RSA-encrypted premaster secret, or the DH public value: 2048 bits either way
        exchange = _u16(RSA_BYTES) + rng.randbytes(RSA_BYTES)
    return (
        record(CT_HANDSHAKE, handshake(HS_CLIENT_KEY_EXCHANGE, exchange), version)
        + record(CT_CHANGE_CIPHER_SPEC, b"\x01", version)
        + protected(CT_HANDSHAKE, FINISHED_PLAINTEXT, suite=suite, version=version, rng=rng)
    )


def server_finish(*, suite: str, version: str, rng: Random) -> bytes:
    """The server's ChangeCipherSpec and encrypted Finished."""
    return record(CT_CHANGE_CIPHER_SPEC, b"\x01", version) + protected(
        CT_HANDSHAKE, FINISHED_PLAINTEXT, suite=suite, version=version, rng=rng
    )
