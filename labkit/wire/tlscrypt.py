"""TLS 1.1/1.2 record protection with known keys: whole records opened and authenticated, and
the first plaintext bytes and plaintext length of many records at once (sans-IO).

Two record protections, the ones AnyConnect head-ends negotiate (RFC 5246 6.2.3):

* ``cbc``: AES-CBC with an explicit IV per record, the HMAC inside the encryption
  (6.2.3.2) or, with the encrypt-then-MAC extension that OpenSSL and GnuTLS negotiate, after
  it (RFC 7366). The plaintext's first block is ``AES-1(C1) XOR IV``; its last block
  ``AES-1(Ck) XOR Ck-1`` ends with the padding length, which gives the plaintext length. Two
  block decryptions tell a record's first bytes and length, whatever its size.
* ``gcm``: AES-GCM with a 4-byte salt and an 8-byte explicit nonce (RFC 5288). The first
  plaintext bytes are the ciphertext XOR ``AES(salt || nonce || 2)`` (the first counter block
  of the data, NIST SP 800-38D 7.1); the length is the fragment less nonce and tag.

:func:`peek` does that for a batch of records in one AES-ECB call over the blocks
:func:`peek_blocks` names (which :mod:`labkit.wire.tlswalk` gathers): what a reader needs from a
record that carries one CSTP packet is its 8-byte header and the record's length. It proves
nothing about integrity: :func:`open_record` decrypts a whole record and checks its MAC or
tag, and callers open every record that is not what they expect and a sample of the others.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from labkit.wire import CSTP_HEADER_LEN, CSTP_MAGIC, CT_APPLICATION_DATA

BLOCK: Final = 16
GCM_NONCE: Final = 8  # the explicit part, sent in each record
GCM_TAG: Final = 16
#: Plaintext bytes :func:`peek` recovers per record: a CSTP header.
PEEK_PLAIN: Final = 8


class IntegrityError(Exception):
    """A record that does not decrypt and authenticate. ``kind`` names the failure as
    Scapy's TLS layer names it (``HMACError``, ``AEADTagError``, ``ValueError`` for a record
    too short for its cipher), so a report reads the same whichever decrypted the record."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass(frozen=True)
class RecordKeys:
    """One direction's read keys. ``mac_hash``: a :mod:`hashlib` name (CBC only); ``etm``:
    encrypt-then-MAC (RFC 7366); ``salt``: the implicit part of the GCM nonce."""

    mode: Literal["cbc", "gcm"]
    key: bytes
    mac_key: bytes = b""
    mac_hash: str = ""
    etm: bool = False
    salt: bytes = b""
    _decrypt: CipherContext = field(init=False, repr=False, compare=False)
    _encrypt: CipherContext = field(init=False, repr=False, compare=False)
    _gcm: AESGCM | None = field(init=False, repr=False, compare=False)
    _mac_len: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # One key schedule per direction, and one context each way reused for every record
        # and batch: ECB keeps no state between blocks, so a context fed whole blocks is
        # never spent (CBC is ECB and an XOR: :meth:`cbc_decrypt`).
        ecb = Cipher(algorithms.AES(self.key), modes.ECB())
        gcm = self.mode == "gcm"
        object.__setattr__(self, "_decrypt", ecb.decryptor())
        object.__setattr__(self, "_encrypt", ecb.encryptor())
        object.__setattr__(self, "_gcm", AESGCM(self.key) if gcm else None)
        mac_len = GCM_TAG if gcm else hashlib.new(self.mac_hash).digest_size
        object.__setattr__(self, "_mac_len", mac_len)

    @property
    def mac_len(self) -> int:
        return self._mac_len

    def ecb_decrypt(self, blocks: bytes | memoryview) -> bytes:
        """Whole 16-byte blocks (contiguous), each decrypted alone."""
        return self._decrypt.update(blocks)

    def ecb_encrypt(self, blocks: bytes | memoryview) -> bytes:
        """Whole 16-byte blocks (contiguous), each encrypted alone."""
        return self._encrypt.update(blocks)

    def cbc_decrypt(self, fragment: bytes) -> bytes:
        """``fragment`` (an IV, then whole cipher blocks) CBC-decrypted: each block decrypted
        alone, then XORed with the block before it (NIST SP 800-38A 6.2)."""
        clear = self._decrypt.update(fragment[BLOCK:])
        chain = int.from_bytes(fragment[:-BLOCK], "little")
        return (int.from_bytes(clear, "little") ^ chain).to_bytes(len(clear), "little")

    def gcm_open(self, nonce: bytes, body: bytes, aad: bytes) -> bytes:
        """An AES-GCM ciphertext and tag opened (``InvalidTag`` when it does not authenticate)."""
        assert self._gcm is not None, "GCM keys"
        return self._gcm.decrypt(nonce, body, aad)


def _aad(seq: int, header: bytes, length: int) -> bytes:
    """The MAC's (and GCM's additional data's) record header: sequence number, type, version,
    plaintext length (RFC 5246 6.2.3.1, 6.2.3.3)."""
    return seq.to_bytes(8, "big") + header[:3] + length.to_bytes(2, "big")


def open_record(keys: RecordKeys, seq: int, record: bytes) -> bytes:
    """The plaintext of one whole record (header included in ``record``), authenticated with
    sequence number ``seq``; :class:`IntegrityError` when it does not authenticate."""
    header, fragment = record[:5], record[5:]
    if keys.mode == "gcm":
        if len(fragment) < GCM_NONCE + GCM_TAG:
            raise IntegrityError("ValueError")
        body = fragment[GCM_NONCE:]
        try:
            return keys.gcm_open(
                keys.salt + fragment[:GCM_NONCE], body, _aad(seq, header, len(body) - GCM_TAG)
            )
        except InvalidTag:
            raise IntegrityError("AEADTagError") from None
    if keys.etm:  # the MAC covers the IV and ciphertext (RFC 7366 3)
        fragment, mac = fragment[: -keys.mac_len], fragment[-keys.mac_len :]
        want = hmac.new(keys.mac_key, _aad(seq, header, len(fragment)) + fragment, keys.mac_hash)
        if len(mac) != keys.mac_len or not hmac.compare_digest(mac, want.digest()):
            raise IntegrityError("HMACError")
    if len(fragment) < 2 * BLOCK or len(fragment) % BLOCK:
        raise IntegrityError("ValueError")
    plain = keys.cbc_decrypt(fragment)
    pad = plain[-1]
    end = len(plain) - pad - 1 - (0 if keys.etm else keys.mac_len)
    if end < 0 or plain[len(plain) - pad - 1 :] != bytes([pad]) * (pad + 1):
        raise IntegrityError("HMACError")  # a bad padding is a bad MAC (RFC 5246 6.2.3.2)
    if keys.etm:
        return plain[:end]
    data, mac = plain[:end], plain[end : end + keys.mac_len]
    want = hmac.new(keys.mac_key, _aad(seq, header, end) + data, keys.mac_hash)
    if not hmac.compare_digest(mac, want.digest()):
        raise IntegrityError("HMACError")
    return data


@dataclass(frozen=True, slots=True)
class Peek:
    """What :func:`peek` found per record: the first plaintext bytes (``plain``, (n, 8)) and
    the plaintext length (``length``; -1 where the record cannot be this cipher's)."""

    plain: np.ndarray
    length: np.ndarray


def peek_blocks(keys: RecordKeys) -> tuple[int, ...]:
    """The 16-byte blocks of each record :func:`peek` reads, as offsets in the fragment (after
    the 5-byte header; negative: from its end). CBC: the first and last cipher blocks, then the
    IV and the block before the last (what each decrypted block is XORed with); with
    encrypt-then-MAC the last cipher block ends where the MAC starts. GCM: the explicit nonce
    and the first 8 cipher bytes."""
    if keys.mode == "gcm":
        return (0,)
    mac = keys.mac_len if keys.etm else 0
    return (BLOCK, -BLOCK - mac, 0, -2 * BLOCK - mac)


#: Per pad-length byte value (capped at 15: the whole block), the bytes of the last block that
#: are padding, as the two little-endian 64-bit halves of a mask: padding byte ``j`` of 16
#: counts when ``15 - j <= pad``.
_PAD_BYTES = np.array(
    [[0xFF if 15 - j <= pad else 0 for j in range(BLOCK)] for pad in range(BLOCK)], np.uint8
).view("<u8")
_ONES = np.uint64(0x0101010101010101)


def peek(keys: RecordKeys, fragment: np.ndarray, blocks: np.ndarray) -> Peek:
    """First plaintext bytes and plaintext length of many records, unauthenticated.

    ``fragment``: each record's length field; ``blocks``: ``(len(peek_blocks(keys)), n, 16)``
    uint8, plane ``j`` holding each record's block at ``peek_blocks(keys)[j]`` (zeros outside
    the fragment; a record too short for its cipher gets length -1).
    """
    n = len(fragment)
    fragment = fragment.astype(np.int64, copy=False)
    if keys.mode == "gcm":
        nonce = blocks[0]
        counter = np.empty((n, BLOCK), np.uint8)
        counter[:, :4] = np.frombuffer(keys.salt, np.uint8)
        counter[:, 4:12] = nonce[:, :GCM_NONCE]
        counter[:, 12:] = (0, 0, 0, 2)
        stream = np.frombuffer(keys.ecb_encrypt(counter.data), np.uint8).reshape(n, BLOCK)
        plain = nonce[:, GCM_NONCE : GCM_NONCE + PEEK_PLAIN] ^ stream[:, :PEEK_PLAIN]
        length = np.where(fragment >= GCM_NONCE + GCM_TAG, fragment - GCM_NONCE - GCM_TAG, -1)
        return Peek(plain, length)
    mac = keys.mac_len
    cipher = fragment - mac if keys.etm else fragment  # IV and cipher blocks
    # Planes 0-1 (first and last cipher blocks) are one buffer: one ECB call.
    clear = keys.ecb_decrypt(blocks[:2].data)
    return Peek(*cbc_peek(clear, blocks[2:], cipher, 0 if keys.etm else mac))


def py_cbc_peek(
    clear: bytes, masks: np.ndarray, cipher: np.ndarray, mac: int
) -> tuple[np.ndarray, np.ndarray]:
    """The CBC arithmetic of :func:`peek` for ``n`` records: ``clear``, their first and last
    cipher blocks decrypted (two planes of ``n`` blocks); ``masks``, their IVs and the blocks
    before the last ((2, n, 16) uint8); ``cipher``, the bytes of IV and cipher blocks; ``mac``,
    the MAC bytes inside the encryption (0 with encrypt-then-MAC). The first 8 plaintext
    bytes, (n, 8) uint8, and the plaintext lengths (-1: not this cipher's record). The
    reference of the compiled loop (``_tlswalk.cbc_peek``); both are tested on the same
    blocks."""
    n = len(cipher)
    words = np.frombuffer(clear, "<u8").reshape(2, n, 2)
    mask = masks.view("<u8")
    first = words[0, :, 0] ^ mask[0, :, 0]  # the plaintext's first 8 bytes
    last = words[1] ^ mask[1]  # the last plaintext block: data, MAC, padding
    pad = last[:, 1] >> np.uint64(56)  # its last byte: the padding length
    # Every padding byte equals the padding length (RFC 5246 6.2.3.2); the ones in the last
    # block are checked here, a cheap guard against a wrong key or a damaged record.
    in_pad = np.take(_PAD_BYTES, np.minimum(pad, BLOCK - 1).astype(np.intp), axis=0)
    wrong = (last ^ (pad * _ONES)[:, None]) & in_pad  # padding bytes that differ from ``pad``
    pad_ok = (wrong[:, 0] | wrong[:, 1]) == 0
    length = cipher - BLOCK - pad.astype(np.int64) - 1 - mac
    fits = (cipher >= 2 * BLOCK) & (cipher % BLOCK == 0) & pad_ok & (length >= 0)
    return first.view(np.uint8).reshape(n, PEEK_PLAIN), np.where(fits, length, -1)


def _compiled_cbc_peek(
    clear: bytes, masks: np.ndarray, cipher: np.ndarray, mac: int
) -> tuple[np.ndarray, np.ndarray]:
    n = len(cipher)
    plain, length = np.empty((n, PEEK_PLAIN), np.uint8), np.empty(n, np.int64)
    assert _tlswalk is not None
    _tlswalk.cbc_peek(clear, masks, np.ascontiguousarray(cipher, np.int64), mac, plain, length)
    return plain, length


@dataclass(frozen=True, slots=True)
class CstpHeads:
    """The CSTP header each record's plaintext opens with (DESIGN.md section 3): its length
    field (``size``) and type (``ptype``), records per type value (``count``, 256) and each
    type's first record (``first``, -1 where absent); ``misfit``: the first record that is not
    exactly one CSTP packet (-1: none)."""

    misfit: int
    size: np.ndarray
    ptype: np.ndarray
    count: np.ndarray
    first: np.ndarray


def py_cstp_heads(plain: np.ndarray, length: np.ndarray, ctype: np.ndarray) -> CstpHeads:
    """The CSTP headers of ``n`` records from their first 8 plaintext bytes (``plain``,
    (n, 8) uint8), plaintext lengths and content types: a record is one CSTP packet when it
    is application data opening with the magic and as long as the header says. The reference
    of the compiled loop (``_tlswalk.cstp_heads``); both are tested on the same bytes."""
    n = len(length)
    word = np.ascontiguousarray(plain).view("<u8").reshape(n)
    size = ((word >> np.uint64(32)) & np.uint64(0xFF)) << np.uint64(8) | (
        (word >> np.uint64(40)) & np.uint64(0xFF)
    )
    size = size.astype(np.int64)
    ptype = ((word >> np.uint64(48)) & np.uint64(0xFF)).astype(np.int64)
    fits = (
        (ctype == CT_APPLICATION_DATA)
        & ((word & np.uint64(0xFFFFFFFF)) == _MAGIC)
        & (length == CSTP_HEADER_LEN + size)
    )
    count = np.bincount(ptype, minlength=256)
    first = np.full(256, -1, np.int64)
    present = np.flatnonzero(count)
    first[present] = [int(np.argmax(ptype == t)) for t in present.tolist()]
    misfit = -1 if fits.all() else int(np.argmin(fits))
    return CstpHeads(misfit, size, ptype, count, first)


def _compiled_cstp_heads(plain: np.ndarray, length: np.ndarray, ctype: np.ndarray) -> CstpHeads:
    n = len(length)
    size, ptype = np.empty(n, np.int64), np.empty(n, np.int64)
    count, first = np.empty(256, np.int64), np.empty(256, np.int64)
    assert _tlswalk is not None
    misfit = _tlswalk.cstp_heads(
        np.ascontiguousarray(plain, np.uint8),
        np.ascontiguousarray(length, np.int64),
        np.ascontiguousarray(ctype, np.int64),
        int(_MAGIC),
        CT_APPLICATION_DATA,
        CSTP_HEADER_LEN,
        size,
        ptype,
        count,
        first,
    )
    return CstpHeads(misfit, size, ptype, count, first)


_MAGIC = np.uint64(int.from_bytes(CSTP_MAGIC, "little"))

try:
    from labkit.wire import _tlswalk
except ImportError:  # installed without a C compiler: the same arithmetic in numpy
    _tlswalk = None  # type: ignore[assignment]
cbc_peek = py_cbc_peek if _tlswalk is None else _compiled_cbc_peek
cstp_heads = py_cstp_heads if _tlswalk is None else _compiled_cstp_heads
