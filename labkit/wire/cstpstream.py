"""The decrypted CSTP byte stream of one direction: HTTP heads first, then CSTP packets.

Theory of operation (h11-style, sans-IO): feed plaintext with :meth:`CstpStream.receive_data`
(each chunk tagged with the frame and time it arrived in), pull events with
:meth:`CstpStream.next_event` until it returns :data:`NEED_DATA`.

An AnyConnect TLS connection carries HTTP until the tunnel starts: the client's ``CONNECT
/CSCOSSLC/tunnel`` request, answered by ``HTTP/1.1 200 CONNECTED`` with the ``X-CSTP-*`` and
``X-DTLS-*`` headers (OpenConnect ``cstp.c``, ``start_cstp_connection``). From the byte after
that head on, each direction is a sequence of CSTP packets: ``'S' 'T' 'F' 0x01``, payload
length (16 bits), type, 0x00, payload (DESIGN.md section 3). Earlier HTTP exchanges on the
same connection (the XML auth) are skipped using their Content-Length or chunked framing.

Which head starts the tunnel, per side, without looking at the other side: the client's
``CONNECT`` request; the server's 2xx response carrying ``X-CSTP-`` headers.

Events: :class:`HttpHead`, :class:`CstpPacket`, :class:`StreamError` (the stream is not what
this parser expects; nothing more comes after it). Buffers are bounded: a head over
:data:`MAX_HEAD` bytes is an error, never a memory leak.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass
from typing import Final, Literal

from labkit.wire import ANYCONNECT_TYPES, CSTP_HEADER_LEN, CSTP_MAGIC

MAX_HEAD: Final = 64 * 1024  # an HTTP head larger than this is not AnyConnect's
MAX_CHUNK_LINE: Final = 1024


MAX_DIGITS: Final = 18  # a decimal header value longer than this is no number labkit models


def _number(text: str) -> int | None:
    """A header's non-negative decimal value; None for anything else, and for thousands of
    digits, which Python refuses to convert (``sys.int_info.default_max_str_digits``)."""
    digits = text.strip()
    return (
        int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= MAX_DIGITS else None
    )


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


#: :meth:`CstpStream.next_event` returns this when it needs more bytes (not an error).
NEED_DATA: Final = _NeedData()

Side = Literal["client", "server"]


@dataclass(frozen=True, slots=True)
class HttpHead:
    """A request or response head; ``tunnel`` when CSTP framing starts right after it."""

    frame: int
    time: float
    start_line: str
    headers: tuple[tuple[str, str], ...]
    tunnel: bool

    def header(self, name: str) -> str | None:
        """The first header named ``name`` (case-insensitive), as sent."""
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)

    def header_int(self, name: str) -> int | None:
        value = self.header(name)
        return _number(value) if value is not None else None


@dataclass(frozen=True, slots=True)
class CstpPacket:
    """One CSTP packet: its type (``ANYCONNECT_TYPES``) and payload length (header excluded)."""

    frame: int
    time: float
    type: int
    length: int

    @property
    def type_name(self) -> str:
        return type_name(self.type)


def type_name(ptype: int) -> str:
    """A CSTP packet type's name (``ANYCONNECT_TYPES``), ``type-N`` for one labkit does not know."""
    return ANYCONNECT_TYPES.get(ptype, f"type-{ptype}")


@dataclass(frozen=True, slots=True)
class StreamError:
    frame: int
    time: float
    message: str


Event = HttpHead | CstpPacket | StreamError


class CstpStream:
    """One direction of one connection. ``side`` is who sends these bytes."""

    def __init__(self, side: Side) -> None:
        self.side = side
        self._buf = bytearray()
        self._base = 0  # stream offset of _buf[0]
        self._marks: deque[tuple[int, int, float]] = deque()  # (end offset, frame, time)
        self._state: Literal["http", "body", "chunked", "cstp", "dead"] = "http"
        self._skip = 0  # body bytes still to skip
        self._after_body: Literal["http", "chunked", "cstp"] = "http"
        self._last: tuple[int, float] = (0, 0.0)  # where the last consumed byte arrived
        # Bytes of _buf already searched for the end of a head / chunk line: each search
        # resumes there, so a head fed a byte at a time costs O(n), not O(n^2) (h11 does so).
        self._scanned = 0

    @property
    def at_packet_boundary(self) -> bool:
        """In the tunnel with no partial packet buffered: the next bytes start a CSTP packet, so
        a record holding exactly one packet can be counted from its header alone."""
        return self._state == "cstp" and not self._buf

    # -- input ---------------------------------------------------------------------------

    def receive_data(self, data: bytes, frame: int, time: float) -> None:
        if self._state == "dead" or not data:
            return
        self._buf += data
        self._marks.append((self._base + len(self._buf), frame, time))

    def _where(self, end: int) -> tuple[int, float]:
        """Frame and time of the chunk holding stream byte ``end - 1``."""
        for mark_end, frame, time in self._marks:
            if mark_end >= end:
                return frame, time
        return self._last

    def _consume(self, n: int) -> tuple[int, float]:
        end = self._base + n
        self._last = self._where(end)
        del self._buf[:n]
        self._scanned = 0
        self._base = end
        while self._marks and self._marks[0][0] <= self._base:
            self._marks.popleft()
        return self._last

    def _error(self, message: str) -> StreamError:
        frame, time = self._where(self._base + max(1, len(self._buf)))
        self._state = "dead"
        self._buf.clear()
        return StreamError(frame, time, message)

    # -- output --------------------------------------------------------------------------

    def next_event(self) -> Event | _NeedData:
        while True:
            if self._state == "dead":
                return NEED_DATA
            if self._state == "body":
                if not self._buf:
                    return NEED_DATA
                n = min(self._skip, len(self._buf))
                self._consume(n)
                self._skip -= n
                if self._skip == 0:
                    self._state = self._after_body
                continue
            if self._state == "chunked":
                event = self._chunk()
                if event is None:
                    continue
                return event
            if self._state == "http":
                return self._head()
            return self._cstp()

    def _head(self) -> Event | _NeedData:
        end = self._buf.find(b"\r\n\r\n", max(0, self._scanned - 3))
        if end < 0:
            self._scanned = len(self._buf)
            if len(self._buf) > MAX_HEAD:
                return self._error(f"no end of HTTP head within {MAX_HEAD} bytes")
            if self._buf[:4] == CSTP_MAGIC:
                return self._error("CSTP framing before any tunnel-starting HTTP head")
            return NEED_DATA
        raw = bytes(self._buf[:end]).decode("latin-1")
        frame, time = self._consume(end + 4)
        lines = raw.split("\r\n")
        start = lines[0]
        if not (start.startswith("HTTP/") or " HTTP/" in start):
            return self._error(f"not an HTTP head: {start[:60]!r}")
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                return self._error(f"malformed HTTP header line: {line[:60]!r}")
            headers.append((name.strip(), value.strip()))
        tunnel = self._starts_tunnel(start, headers)
        head = HttpHead(frame, time, start, tuple(headers), tunnel)
        length = head.header("Content-Length")
        if tunnel:
            self._state = "cstp"
        elif (head.header("Transfer-Encoding") or "").lower() == "chunked":
            self._state = "chunked"
        elif length is not None and (size := _number(length) or 0) > 0:
            self._skip, self._state, self._after_body = size, "body", "http"
        else:
            self._state = "http"
        return head

    def _starts_tunnel(self, start: str, headers: list[tuple[str, str]]) -> bool:
        if self.side == "client":
            return start.upper().startswith("CONNECT ")
        status = start.split(" ", 2)
        return (
            len(status) > 1
            and status[1].startswith("2")
            and any(k.lower().startswith("x-cstp-") for k, _ in headers)
        )

    def _chunk(self) -> Event | _NeedData | None:
        """Skip one chunk of a chunked body (RFC 9112 7.1); None when one was skipped."""
        end = self._buf.find(b"\r\n", max(0, self._scanned - 1))
        if end < 0:
            self._scanned = len(self._buf)
            if len(self._buf) > MAX_CHUNK_LINE:
                return self._error("chunk size line too long")
            return NEED_DATA
        size_text = bytes(self._buf[:end]).split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return self._error(f"bad chunk size {size_text[:20]!r}")
        self._consume(end + 2)
        if size == 0:  # last chunk; no trailers in AnyConnect's responses, but skip them
            self._skip, self._after_body = 2, "http"
        else:
            self._skip, self._after_body = size + 2, "chunked"
        self._state = "body"
        return None

    def _cstp(self) -> Event | _NeedData:
        if len(self._buf) < CSTP_HEADER_LEN:
            return NEED_DATA
        if self._buf[:4] != CSTP_MAGIC:
            return self._error(f"bad CSTP magic {bytes(self._buf[:4]).hex()}")
        length, ptype = struct.unpack_from("!HB", self._buf, 4)
        if len(self._buf) < CSTP_HEADER_LEN + length:
            return NEED_DATA
        frame, time = self._consume(CSTP_HEADER_LEN + length)
        return CstpPacket(frame, time, ptype, length)
