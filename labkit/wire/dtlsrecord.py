"""The DTLS record header (RFC 6347 section 4.1), sans-IO: bytes in, a header or None out.

The analyzer's decode walks a datagram's records with it and ``labkit probe`` reads a
head-end's answer with it, so both recognise the same records: a content type 20-23 and a
version labkit knows (:func:`labkit.wire.looks_like_dtls`). The Scapy layer
(:mod:`labkit.layers.dtls`) dissects the same header with Scapy fields and uses the same test
to claim a datagram.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from labkit.wire import DTLS_RECORD_HEADER_LEN, looks_like_dtls

#: type, version, epoch, 48-bit sequence number, length.
_HEADER = struct.Struct("!BHH6sH")


@dataclass(frozen=True, slots=True)
class DtlsHeader:
    content_type: int
    version: int
    epoch: int
    sequence: int
    length: int  # of the body that follows the 13-byte header (it may run past the datagram)


def dtls_header(data: bytes, offset: int = 0) -> DtlsHeader | None:
    """The record header at ``data[offset:]``, None if no DTLS record labkit knows starts
    there (too short, another content type or version)."""
    head = data[offset : offset + DTLS_RECORD_HEADER_LEN]
    if not looks_like_dtls(head):
        return None
    ctype, version, epoch, seq, length = _HEADER.unpack(head)
    return DtlsHeader(ctype, version, epoch, int.from_bytes(seq, "big"), length)
