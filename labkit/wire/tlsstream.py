"""TCP segments of one direction in, whole TLS records out, each tagged with its frame (sans-IO).

:class:`TcpReassembler` puts segments in sequence order (RFC 9293 sequence arithmetic,
modulo 2**32): a retransmission or overlap is trimmed to the bytes not yet delivered, an
early segment waits (at most :data:`MAX_PENDING` of them), and a hole that the waiting
segments cannot fill is reported as a gap: a TLS stream with missing bytes cannot be
decrypted any further, so the caller stops there and says where.

:class:`TlsRecordSplitter` cuts the byte stream at record boundaries (RFC 8446 5.1 / RFC 5246
6.2.1: type, version, 16-bit length) and tags each record with the frame that delivered its
last byte, the frame a person opens in Wireshark to see it. A record header that is not TLS
(type 20-24, major version 3) or a length over 2**14 + 2048 (RFC 5246 6.2.3) ends the stream.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

from labkit.wire import DTLS_CONTENT_TYPES

MAX_PENDING: Final = 256  # out-of-order segments kept waiting for a hole to fill
MAX_RECORD: Final = 2**14 + 2048  # largest TLSCiphertext.length (RFC 5246 6.2.3)
TLS_HEADER: Final = 5
_MOD: Final = 2**32


def _after(a: int, b: int) -> bool:
    """``a`` is later than ``b`` in sequence space (RFC 1982 serial arithmetic)."""
    return 0 < (a - b) % _MOD < 2**31


@dataclass(frozen=True, slots=True)
class Gap:
    """Bytes the capture does not have: the stream cannot be followed past ``frame``."""

    frame: int
    missing: int


@dataclass
class TcpReassembler:
    """In-order payload of one direction, from the first segment with payload on (a TLS
    stream starts with a hello in its first segment)."""

    next_seq: int | None = None
    pending: dict[int, tuple[bytes, int, float]] = field(default_factory=dict)
    gap: Gap | None = None

    def feed(
        self, seq: int, payload: bytes, frame: int, time: float
    ) -> list[tuple[bytes, int, float]]:
        """The bytes this segment makes contiguous, with the frame that completed each part."""
        if self.gap is not None or not payload:
            return []
        if self.next_seq is None:
            self.next_seq = seq  # no SYN in the capture: start where the capture starts
        out: list[tuple[bytes, int, float]] = []
        self._take(seq, payload, frame, time, out)
        while self.pending:
            ready = [s for s in self.pending if not _after(s, self.next_seq)]
            if not ready:
                break
            for s in ready:
                data, f, t = self.pending.pop(s)
                self._take(s, data, f, t, out)
        if len(self.pending) > MAX_PENDING:
            expected = self.next_seq  # set above; a local, so the key function sees an int
            first = min(self.pending, key=lambda s: (s - expected) % _MOD)
            self.gap = Gap(self.pending[first][1], (first - expected) % _MOD)
            self.pending.clear()
        return out

    def _take(
        self, seq: int, data: bytes, frame: int, time: float, out: list[tuple[bytes, int, float]]
    ) -> None:
        assert self.next_seq is not None
        if _after(seq, self.next_seq):
            self.pending.setdefault(seq, (data, frame, time))
            return
        skip = (self.next_seq - seq) % _MOD
        if skip >= len(data):
            return  # a retransmission of bytes already delivered
        out.append((data[skip:], frame, time))
        self.next_seq = (seq + len(data)) % _MOD

    def close(self) -> Gap | None:
        """At the end of the capture: segments still waiting mean a hole was never filled."""
        if self.gap is None and self.pending and self.next_seq is not None:
            first = min(self.pending, key=lambda s: (s - self.next_seq) % _MOD)  # type: ignore[operator]
            self.gap = Gap(self.pending[first][1], (first - self.next_seq) % _MOD)
        return self.gap


@dataclass(frozen=True, slots=True)
class Record:
    content_type: int
    data: bytes  # the whole record, header included
    frame: int  # the frame holding its last byte
    time: float


@dataclass
class TlsRecordSplitter:
    buf: bytearray = field(default_factory=bytearray)
    error: str | None = None

    def feed(self, data: bytes, frame: int, time: float) -> list[Record]:
        if self.error is not None:
            return []
        self.buf += data
        records = []
        while len(self.buf) >= TLS_HEADER:
            ctype, major, length = (
                self.buf[0],
                self.buf[1],
                struct.unpack_from("!H", self.buf, 3)[0],
            )
            if ctype not in DTLS_CONTENT_TYPES or major != 3:
                self.error = f"not a TLS record header: {bytes(self.buf[:5]).hex()}"
                self.buf.clear()
                break
            if length > MAX_RECORD:
                self.error = f"TLS record length {length} over the maximum {MAX_RECORD}"
                self.buf.clear()
                break
            if len(self.buf) < TLS_HEADER + length:
                break
            records.append(Record(ctype, bytes(self.buf[: TLS_HEADER + length]), frame, time))
            del self.buf[: TLS_HEADER + length]
        return records
