"""Capture reader: pcap and pcapng (either gzip-compressed) into chunks of packet records.

Contract (sans-IO where it matters, bounded everywhere):

* :func:`open_capture` checks the first bytes and returns a :class:`Capture`, or raises
  :class:`~labkit.errors.InputError` with one line that says what the file is instead
  (empty, a directory, unreadable, not a capture).
* :meth:`Capture.chunks` yields :class:`Chunk` objects: one 32 MiB buffer of records at a time,
  with the per-record columns (data offset, captured and original length, timestamp, link
  type, Wireshark frame number) as numpy arrays. The buffer is reused: a chunk is valid only
  until the next one is requested. Read-ahead is bounded by one buffer.
* Problems in the middle of a file never raise: a record cut short by the end of the file, an
  absurd length or a broken block becomes a :class:`ReadWarning` with the byte offset (of the
  uncompressed stream) and reading stops there or skips the block, as Wireshark would. What was
  read before the problem is still analyzed.

Why chunks and columns: a Python loop that unpacks every record costs about 2 us a packet; the
analyzer must do 1 M packets/s (issue 8). The only per-record step is walking the record chain
(each offset depends on the previous length: :mod:`labkit.pcapio.walk`, compiled); each
record's header and first bytes are then gathered for the whole chunk at once with numpy, and
both happen on the read-ahead thread, beside the analysis of the previous chunk.

Formats: pcap (libpcap, both byte orders, microsecond and nanosecond magic, and the Kuznetzov
"modified" variant with 24-byte record headers) and pcapng (SHB, IDB with ``if_tsresol`` /
``if_tsoffset``, EPB, SPB, the obsolete PB; unknown blocks skipped; several sections, interfaces
and link types; either byte order per section) per draft-ietf-opsawg-pcapng.
"""

from __future__ import annotations

import gzip
import io
import mmap
import os
import select
import struct
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import BinaryIO, cast

import numpy as np

from labkit.errors import InputError
from labkit.pcapio import (
    IF_TSOFFSET,
    IF_TSRESOL,
    MAX_CAPLEN,
    OPT_ENDOFOPT,
    PCAPNG_BOM,
    PCAPNG_EPB,
    PCAPNG_IDB,
    PCAPNG_PB,
    PCAPNG_SHB,
    PCAPNG_SPB,
    walk,
)
from labkit.pcapio.walk import Buf

_inflate: ModuleType = zlib
_INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error,)
try:
    # ISA-L's inflate (``pip install labkit[gzip]``) decompresses the same deflate stream 2-3x
    # faster than zlib, with zlib's interface: customers send ``.pcap.gz``, and inflating is
    # then most of the run. Optional: zlib is the fallback, same bytes out.
    from isal import isal_zlib

    _inflate = isal_zlib
    _INFLATE_ERRORS += (cast("type[Exception]", isal_zlib.error),)
except ImportError:
    pass
#: What a broken or cut gzip stream raises while the capture's magic is read.
_HEAD_ERRORS: tuple[type[Exception], ...] = (OSError, EOFError, *_INFLATE_ERRORS)
#: What it raises while records are read (a bomb is told apart first).
_STREAM_ERRORS: tuple[type[Exception], ...] = (EOFError, gzip.BadGzipFile, *_INFLATE_ERRORS)

CHUNK_BYTES = 16 << 20  #: one read buffer (two are used, see _Walker.run)
#: Bytes after the buffer that are never filled: fixed-width windows (:func:`windows`) taken at
#: any header offset inside the buffer stay in bounds.
SLACK = 256
#: Each packet's first bytes are copied out with its record header, in the same memory pass:
#: link, IP (v4 with options, v6), TCP with options and the payload's first bytes fit in 128.
PACKET_WINDOW = 128
#: A read-ahead fills its buffer this many bytes at a time and walks each piece at once, while
#: it is still in the core's cache (L2 holds it with room to spare).
READ_PIECE = 256 << 10
#: Records per chunk, at most. The columns cost ~1 KB a record while a chunk is analyzed, and
#: a buffer of empty 16-byte records (a gzip bomb of zeros, or just a hostile file) would be
#: a million of them; 2^17 bounds a chunk's working set near 150 MB whatever the records.
MAX_ROWS = 1 << 17
#: Packet times a calendar can show: 0001-01-01 to 9999-12-31 (Python's datetime range).
MIN_TIME = -62_135_596_800.0
MAX_TIME = 253_402_300_800.0
#: A pcapng block larger than this is treated as corruption (Wireshark allows 16 MiB + slack).
MAX_BLOCK = 16 << 20

GZIP_MAGIC = b"\x1f\x8b"
# pcap magic -> (byte order, nanosecond, record header length)
_PCAP_MAGICS: dict[bytes, tuple[str, bool, int]] = {
    b"\xd4\xc3\xb2\xa1": ("<", False, 16),
    b"\xa1\xb2\xc3\xd4": (">", False, 16),
    b"\x4d\x3c\xb2\xa1": ("<", True, 16),
    b"\xa1\xb2\x3c\x4d": (">", True, 16),
    b"\x34\xcd\xb2\xa1": ("<", False, 24),  # Kuznetzov's modified pcap
    b"\xa1\xb2\xcd\x34": (">", False, 24),
}
_PACKET_BLOCKS = (PCAPNG_EPB, PCAPNG_SPB, PCAPNG_PB)
#: Blocks Wireshark also shows as frames (wiretap/pcapng.c): systemd journal export, custom
#: blocks, sysdig events. They count in the frame numbers; labkit has nothing to read in them.
_OTHER_RECORDS = (9, 0x00000BAD, 0x40000BAD, 0x204, 0x208, 0x216, 0x217, 0x221, 0x222)
_RECORD_BLOCKS = _PACKET_BLOCKS + _OTHER_RECORDS


@dataclass(frozen=True, slots=True)
class ReadWarning:
    """Something wrong in the file that did not stop the analysis of what came before it."""

    offset: int  # byte offset in the (uncompressed) file where the problem starts
    message: str

    def __str__(self) -> str:
        return f"byte offset {self.offset}: {self.message}"


@dataclass(frozen=True, slots=True)
class Interface:
    """One capture interface: pcap has one, pcapng one per IDB."""

    linktype: int
    snaplen: int
    ts_divisor: float = 1e6  # ticks per second (if_tsresol)
    ts_offset: float = 0.0  # seconds added to every timestamp (if_tsoffset)


@dataclass(slots=True)
class Chunk:
    """Records of one buffer, as columns. Valid until the next chunk is read (shared buffer)."""

    buf: np.ndarray  # uint8 view of the buffer
    data: np.ndarray  # int64 offset of each record's packet bytes in buf
    caplen: np.ndarray  # int64 captured length
    origlen: np.ndarray  # int64 original (wire) length
    ts: np.ndarray  # float64 seconds since the epoch
    linktype: np.ndarray  # int32 link type of each record
    frame0: int  # Wireshark frame number of the first record
    ticks: np.ndarray  # int64 raw timestamp in its interface's units (exact, for copies)
    iface: np.ndarray  # int64 index into Capture.interfaces (-1: not a packet)
    win: np.ndarray  # (n, PACKET_WINDOW) uint8: each packet's first bytes (beyond caplen: junk)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def frames(self) -> np.ndarray:
        return np.arange(self.frame0, self.frame0 + len(self.data), dtype=np.int64)

    def packet(self, i: int) -> bytes:
        """The captured bytes of record ``i`` (a copy: safe to keep)."""
        start = int(self.data[i])
        return self.buf[start : start + int(self.caplen[i])].tobytes()


@dataclass(frozen=True, slots=True)
class Record:
    """One packet record, copied out of the buffer: for tests and the rare slow path."""

    frame: int  # Wireshark's 1-based frame number
    ts: float
    origlen: int
    linktype: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Walked:
    """One walk of a buffer: the complete records' offsets and, for each, its header and first
    bytes gathered in the same memory pass. Made on the read-ahead thread for a freshly read
    buffer (both steps release the GIL), so the analysis of the previous chunk overlaps them."""

    idx: np.ndarray  # int64 offsets of the records in the buffer
    pos: int  # offset after the last complete record: where the next walk starts
    head: np.ndarray  # (n, width) uint8: each record's first bytes (its header included)
    full: bool  # the walk stopped at MAX_ROWS records: more may wait in the buffer
    flips: tuple[tuple[int, str], ...] = ()  # pcapng: (index, byte order) of a new section


@dataclass(slots=True)
class Capture:
    """An opened capture file; iterate :meth:`chunks` once."""

    path: Path
    format: str  # "pcap" or "pcapng"
    compressed: bool
    byteorder: str  # "<" or ">" (of the first section)
    warnings: list[ReadWarning] = field(default_factory=list)
    interfaces: list[Interface] = field(default_factory=list)
    frames: int = 0  # records read so far
    bytes_read: int = 0
    _stream: BinaryIO | None = None
    _detail: str = ""  # pcap: "us"/"ns"/"modified"
    _raw: BinaryIO | None = None  # the file itself, under any decompression
    size: int = 0  # bytes on disk (0 when unknown): small files get small buffers
    live: bool = False  # still being written: hand out records as they arrive

    @property
    def position(self) -> int:
        """Bytes of the file consumed so far (compressed bytes for gzip): for progress."""
        try:
            return self._raw.tell() if self._raw is not None else self.bytes_read
        except (OSError, ValueError):  # closed
            return self.bytes_read

    @property
    def linktypes(self) -> list[int]:
        return sorted({i.linktype for i in self.interfaces})

    @property
    def description(self) -> str:
        kind = self.format + (f" ({self._detail})" if self._detail else "")
        return kind + (", gzip" if self.compressed else "")

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Chunk]:
        """Yield the file's records, chunk by chunk; problems become :attr:`warnings`."""
        if self._stream is None:
            raise ValueError("capture already read or closed")
        stream, self._stream = self._stream, None
        if self.live:
            walker = _PcapWalker(self) if self.format == "pcap" else _PcapngWalker(self)
            try:
                yield from walker.run_live(stream, chunk_bytes)
            finally:
                stream.close()
            return
        if self.size and not self.compressed:
            # A small file needs no 16 MiB buffers (allocating them costs more than reading it);
            # a buffer must still hold the largest record.
            chunk_bytes = min(chunk_bytes, max(self.size, 2 * (MAX_CAPLEN + 64)))
        try:
            walker = _PcapWalker(self) if self.format == "pcap" else _PcapngWalker(self)
            yield from walker.run(stream, chunk_bytes)
        finally:
            stream.close()

    def records(self) -> Iterator[Record]:
        """Every record as a :class:`Record` (slow path: copies each packet)."""
        for chunk in self.chunks():
            for i in range(len(chunk)):
                yield Record(
                    chunk.frame0 + i,
                    float(chunk.ts[i]),
                    int(chunk.origlen[i]),
                    int(chunk.linktype[i]),
                    chunk.packet(i),
                )


STDIN = "-"  #: the path that names standard input (a pipe from ``tcpdump -w -``, ``zcat``)


def open_capture(
    path: str | os.PathLike[str],
    *,
    follow: threading.Event | None = None,
    quiet: Callable[[], None] | None = None,
) -> Capture:
    """Open ``path`` (:data:`STDIN`: standard input) and identify its format;
    :class:`InputError` if it is not a capture.

    ``follow``: the capture is still being written (``labkit analyze --follow``): records are
    handed out as they arrive, and at the end of a regular file reading waits for more until
    the event is set (a pipe ends when its writer closes it). ``quiet`` is then called every
    :data:`FOLLOW_POLL_S` while the writer has nothing more to give: the moment to look at
    what has been read, since nothing else will happen until more arrives."""
    p = Path(path)
    if str(path) != STDIN and p.is_dir():
        raise InputError(f"{p}: is a directory, expected a capture file")
    try:
        stdin = str(path) == STDIN
        if follow is None and stdin:
            raw: BinaryIO = open(sys.stdin.fileno(), "rb", closefd=False)  # noqa: SIM115
        elif follow is None:
            raw = open(p, "rb")  # noqa: SIM115 - handed to the Capture, closed there
        elif stdin or not p.is_file():
            fd = sys.stdin.fileno() if stdin else os.open(p, os.O_RDONLY)
            raw = io.BufferedReader(_Waiting(io.FileIO(fd, "rb", closefd=not stdin), quiet))
        else:
            raw = io.BufferedReader(_Growing(io.FileIO(p, "rb"), follow, quiet))
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read: {exc.strerror or exc}") from None
    try:
        cap = _identify(p, raw)
    except BaseException:
        raw.close()
        raise
    cap.live = follow is not None
    return cap


def _identify(p: Path, raw: BinaryIO) -> Capture:
    try:
        head = raw.read(4)
    except OSError as exc:
        raise InputError(f"{p}: cannot read: {exc.strerror or exc}") from None
    compressed = head[:2] == GZIP_MAGIC
    stream: BinaryIO = raw
    if compressed:
        # The magic goes back in front rather than seek(0): a pipe (`labkit analyze
        # <(zcat ...)`, /dev/stdin) cannot seek.
        stream = _GzipStream(_Prefixed(head, raw))  # type: ignore[assignment,arg-type]
        try:
            head = stream.read(4)
        except _HEAD_ERRORS as exc:
            raise InputError(f"{p}: gzip-compressed but the stream is broken: {exc}") from None
    if not head:
        raise InputError(f"{p}: empty file" + (" (after gzip decompression)" if compressed else ""))
    if head in _PCAP_MAGICS:
        order, nano, _ = _PCAP_MAGICS[head]
        detail = "modified" if _PCAP_MAGICS[head][2] == 24 else ("ns" if nano else "us")
        cap = Capture(p, "pcap", compressed, order, _detail=detail)
    elif len(head) == 4 and struct.unpack("<I", head)[0] == PCAPNG_SHB:
        cap = Capture(p, "pcapng", compressed, "<")
    else:
        what = _guess_kind(head)
        raise InputError(
            f"{p}: not a pcap or pcapng capture ({what})",
            hint="labkit reads pcap, pcapng and their .gz forms",
        )
    # Put the magic back in front of the stream for the walker.
    cap._stream = _Prefixed(head, stream)  # type: ignore[assignment]
    cap._raw = raw
    try:
        cap.size = os.fstat(raw.fileno()).st_size
    except OSError:
        cap.size = 0
    return cap


#: Compressions labkit does not read (gzip it does), by their magic, with the command that
#: undoes each: BZh is ASCII and was called "text", the others "bytes".
_OTHER_COMPRESSIONS = (
    (b"BZh", "bzip2-compressed", "bunzip2 -k"),
    (b"\xfd7zX", "xz-compressed", "unxz -k"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "unzstd"),
    (b"\x04\x22\x4d\x18", "lz4-compressed", "unlz4"),
    (b"PK\x03\x04", "a zip archive", "unzip"),
)


def _guess_kind(head: bytes) -> str:
    if len(head) < 4:
        return f"only {len(head)} bytes long"
    for magic, what, undo in _OTHER_COMPRESSIONS:
        if head.startswith(magic):
            return f"{what}: {undo} it first, or gzip it"
    if head.isascii() and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return f"looks like text, starts with {head.decode('ascii')!r}"
    return f"starts with bytes {head.hex(' ')}"


#: A gzip stream that has expanded past BOMB_FLOOR bytes at more than BOMB_RATIO times the
#: compressed bytes read is a decompression bomb: deflate tops out near 1032:1 (a run of one
#: byte), real captures of the most repetitive traffic stay below ~50:1.
BOMB_FLOOR = 16 << 20
BOMB_RATIO = 200


class GzipBomb(ValueError):
    """The gzip stream expands far beyond what any capture does."""


class _GzipStream(io.RawIOBase):
    """gzip decompression that hands out every byte before a corruption or a cut.

    ``gzip.GzipFile.readinto`` loses what it decompressed when the stream breaks inside a
    large read; customer files are often cut mid-download, so decompress piece by piece and
    raise only once the good bytes are delivered. Concatenated members are read in turn.
    A decompression bomb is refused once it has expanded past :data:`BOMB_FLOOR`.
    """

    PIECE = 1 << 20

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._z = _inflate.decompressobj(wbits=31)
        self._fed = False  # the current member's decompressor has seen bytes
        self._pending = b""
        self._error: Exception | None = None
        self._done = False
        self._in = 0  # compressed bytes read
        self._out = 0  # bytes decompressed

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        while not self._pending and not self._done and self._error is None:
            self._more(len(b))
        if self._pending:
            n = min(len(b), len(self._pending))
            b[:n] = self._pending[:n]
            self._pending = self._pending[n:]
            return n
        if self._error is not None:
            err, self._error = self._error, None
            self._done = True
            raise err
        return 0

    def _more(self, want: int) -> None:
        z = self._z
        data = z.unconsumed_tail
        if not data:
            data = self._raw.read(self.PIECE)
            self._in += len(data)
        if not data:
            self._done = True
            if self._fed and not z.eof:
                self._error = EOFError("the compressed stream ends before its end marker")
            return
        self._fed = True
        try:
            self._pending = z.decompress(data, max(want, self.PIECE))
        except _INFLATE_ERRORS as exc:
            self._error = exc
            return
        if z.eof:
            rest = z.unused_data
            self._z, self._fed = _inflate.decompressobj(wbits=31), False
            if rest.lstrip(b"\0"):  # the next member
                self._fed = True
                try:
                    self._pending += self._z.decompress(rest, self.PIECE)
                except _INFLATE_ERRORS as exc:
                    self._error = exc
            elif rest:  # zero padding after the last member
                self._done = True
        self._out += len(self._pending)
        consumed = self._in - len(self._z.unconsumed_tail)  # compressed bytes behind the output
        if self._out > BOMB_FLOOR and self._out > BOMB_RATIO * consumed:
            self._error = GzipBomb(
                f"the gzip stream expanded {self._out >> 20} MiB from {consumed >> 10} KiB, more "
                f"than {BOMB_RATIO} times: a decompression bomb, not a capture; stopped reading"
            )
            self._done = True

    def close(self) -> None:
        self._raw.close()
        super().close()


class _Prefixed(io.RawIOBase):
    """A stream with a few already-read bytes put back in front (gzip cannot seek cheaply)."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._prefix = prefix
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        if self._prefix:
            n = min(len(b), len(self._prefix))
            b[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        # readinto1: what the stream has now, so a live pipe's records are not held back
        # until a whole buffer arrives (the batch reader loops until its buffer is full).
        read = getattr(self._stream, "readinto1", None) or self._stream.readinto  # type: ignore[attr-defined]
        got: int | None = read(b)
        return got or 0

    def close(self) -> None:
        self._stream.close()
        super().close()


class _Live(io.RawIOBase):
    """A capture still being written, read unbuffered below the caller's buffer, so that
    "nothing to read yet" is the writer's truth, never bytes held back in a buffer of ours;
    ``quiet`` is called every :data:`FOLLOW_POLL_S` while the writer is silent."""

    def __init__(self, raw: io.FileIO, quiet: Callable[[], None] | None) -> None:
        self._raw = raw
        self._quiet = quiet or (lambda: None)

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        self._raw.close()
        super().close()


class _Growing(_Live):
    """A regular file: at its current end, wait for more (polling) until ``stop`` is set;
    then the end is the end."""

    def __init__(
        self, raw: io.FileIO, stop: threading.Event, quiet: Callable[[], None] | None
    ) -> None:
        super().__init__(raw, quiet)
        self._stop = stop

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        while True:
            n = self._raw.readinto(b) or 0
            if n or self._stop.is_set():
                return n
            self._quiet()
            self._stop.wait(FOLLOW_POLL_S)


class _Waiting(_Live):
    """A pipe or FIFO: before each read, wait until it has bytes or its writer closed it
    (which is its end)."""

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        while not select.select([self._raw], [], [], FOLLOW_POLL_S)[0]:
            self._quiet()
        return self._raw.readinto(b) or 0


FOLLOW_POLL_S = 0.2


def _fill_some(stream: BinaryIO, view: memoryview) -> tuple[int, str | None]:
    """One read: what the stream has now (at least one byte, unless it ended)."""
    try:
        return stream.readinto(view) or 0, None  # type: ignore[attr-defined]
    except GzipBomb as exc:
        return 0, str(exc)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        return 0, f"compressed stream is broken or cut short ({exc})"
    except OSError as exc:
        return 0, f"read error: {exc.strerror or exc}"


def _fill(stream: BinaryIO, view: memoryview) -> tuple[int, str | None]:
    """Read until ``view`` is full or the stream ends; a broken gzip stream ends it too."""
    got = 0
    while got < len(view):
        try:
            n = stream.readinto(view[got:])  # type: ignore[attr-defined]
        except GzipBomb as exc:
            return got, str(exc)
        except _STREAM_ERRORS as exc:
            return got, f"compressed stream is broken or cut short ({exc})"
        except OSError as exc:
            return got, f"read error: {exc.strerror or exc}"
        if not n:
            break
        got += n
    return got, None


def windows(a: np.ndarray, width: int) -> np.ndarray:
    """Every ``width``-byte window of ``a`` as rows of a 2-D view (no copy).

    ``windows(a, 40)[offsets]`` copies 40 bytes per offset in one call, about 30 ns a row:
    far cheaper than gathering header bytes one field at a time. Field columns are then views
    (``.view('>u2')[:, k]``). Offsets are clipped to stay inside ``a`` (see :data:`SLACK`).
    """
    return np.lib.stride_tricks.as_strided(
        a, shape=(len(a) - width + 1, width), strides=(1, 1), writeable=False
    )


def rows_at(a: np.ndarray, offsets: np.ndarray, width: int) -> np.ndarray:
    """``width`` bytes at each offset (non-negative; clipped to stay inside ``a``), as an
    (n, width) uint8 array. Compiled (:func:`walk.gather`) when the walk is: it fetches the
    records ahead while it copies, where numpy waits for each record's cache miss in turn;
    :func:`py_rows_at` is the reference."""
    if walk.gather is None:
        return py_rows_at(a, offsets, width)
    out = np.empty((len(offsets), width), np.uint8)
    walk.gather(a, np.ascontiguousarray(offsets, np.int64), width, out)
    return out


def py_rows_at(a: np.ndarray, offsets: np.ndarray, width: int) -> np.ndarray:
    """:func:`rows_at` with numpy alone: one fancy index of the windows."""
    return windows(a, width)[np.minimum(offsets, len(a) - width)]


def _zeroed(size: int) -> mmap.mmap:
    """A zero-filled, writable buffer whose pages the OS provides only when touched.

    ``bytearray(32 MiB)`` writes every byte (about 30 ms); an anonymous mapping costs nothing
    until used, so a small capture (or a fuzz campaign of thousands) pays only for its bytes.
    It indexes, slices and exports its buffer like a bytearray.
    """
    return mmap.mmap(-1, size)


class _Walker:
    """Shared chunk loop: fill the buffer, walk records, yield columns, keep the tail."""

    header_len = 0  # file header bytes consumed before records start

    def __init__(self, cap: Capture) -> None:
        self.cap = cap
        self.base = 0  # file offset of buf[0]
        self.stop = False  # corrupt from here on: read no further
        self.again = False  # walk again from the returned offset without reading more
        self.order = "<"  # byte order of the records at the walk's position
        # The walks' output, reused: the read-ahead thread and this one never walk at once
        # (a read is submitted after a walk and waited for before the next).
        self.offsets = np.empty(MAX_ROWS, np.int64)
        self.ahead: Walked | None = None  # the read-ahead thread's walk of the current buffer

    def walked(self, buf: Buf, pos: int, have: int) -> Walked:
        """The walk of ``buf[pos:have]``: the read-ahead thread's when it made it, else now.
        A walk that filled MAX_ROWS means walking this buffer again before reading more."""
        w, self.ahead = self.ahead, None
        if w is None or pos != 0:
            w = self.prewalk(buf, pos, have, self.order)
        self.again = w.full
        return w

    def prewalk(self, buf: Buf, pos: int, have: int, order: str) -> Walked:
        """Walk ``buf[pos:have]`` in byte order ``order``; reads no state that the consumer
        changes, so it runs on the read-ahead thread."""
        n, pos = self._advance(buf, 0, pos, have, order)
        return self._complete(buf, n, pos, have, order)

    def _advance(self, buf: Buf, n: int, pos: int, have: int, order: str) -> tuple[int, int]:
        """The record chain from ``pos`` on, as far as ``buf[:have]`` holds whole records, its
        offsets after the ``n`` found before: the new count and where the chain stopped. It
        stops at a record that does not fit yet (and goes on from there when more is read) or
        at one that can never be walked, wherever ``have`` is."""
        raise NotImplementedError

    def _complete(self, buf: Buf, n: int, pos: int, have: int, order: str) -> Walked:
        """The walk of the whole ``buf[:have]`` from the chain advanced so far: what a stop
        means (a section in the other byte order) and each record's first bytes."""
        raise NotImplementedError

    def _read_ahead(
        self, stream: BinaryIO, buf: mmap.mmap, view: memoryview, tail: int, order: str
    ) -> tuple[int, str | None, Walked | None]:
        """Fill ``buf`` after the ``tail`` bytes already there and walk it (read-ahead thread).

        The chain is advanced piece by piece as the bytes land: each offset depends on the
        load before it, so a walk of the whole buffer after the read waited on a cache miss
        at every record, where a :data:`READ_PIECE` just copied in is still in the core's
        cache (a tenth of the cost). An advance stops only at a record that does not fit yet
        (it resumes there) or at one that never can be walked (it stops there again), so the
        chain is the one a single walk finds; what a stop means is judged once, on the whole
        buffer. Not for gzip, whose bomb check counts what each read asks for."""
        if self.cap.compressed:
            n, error = _fill(stream, view[tail:])
            return n, error, self.prewalk(buf, 0, tail + n, order) if tail + n else None
        have, n, pos, error = tail, 0, 0, None
        while have < len(view):
            got, error = _fill(stream, view[have : have + READ_PIECE])
            have += got
            n, pos = self._advance(buf, n, pos, have, order)
            if error is not None or have < len(view) and got < READ_PIECE:
                break  # the end of the stream, or a read error
        return have - tail, error, self._complete(buf, n, pos, have, order) if have else None

    def warn(self, offset: int, message: str) -> None:
        self.cap.warnings.append(ReadWarning(offset, message))

    def run(self, stream: BinaryIO, chunk_bytes: int) -> Iterator[Chunk]:
        """Walk buffer after buffer. Two buffers: while the consumer works on one chunk, a
        helper thread reads the next (``readinto`` and zlib release the GIL), so the copy from
        the page cache overlaps the analysis instead of adding to it."""
        bufs = [_zeroed(chunk_bytes + SLACK) for _ in range(2)]
        views = [memoryview(b)[:chunk_bytes] for b in bufs]
        cur = 0
        buf = bufs[cur]
        have, error = _fill(stream, views[cur])
        self.cap.bytes_read = have
        pos = self.start(buf, have)
        eof = have < chunk_bytes
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="labkit-read")
        try:
            while not self.stop:
                chunk, pos = self.walk(buf, pos, have, eof)
                pending = None
                if not (self.stop or self.again or eof or pos == 0):
                    # Start reading the next buffer now: the unfinished tail goes first.
                    tail = have - pos
                    bufs[1 - cur][:tail] = buf[pos:have]
                    pending = pool.submit(
                        self._read_ahead, stream, bufs[1 - cur], views[1 - cur], tail, self.order
                    )
                if chunk is not None and len(chunk):
                    self.cap.frames += len(chunk)
                    yield chunk
                if self.stop:
                    break
                if self.again:  # more walked records wait in this buffer (MAX_ROWS cap)
                    self.again = False
                    continue
                if eof:
                    if pos < have:
                        self.truncated(buf, pos, have)
                    break
                if pending is None:
                    self.warn(
                        self.base,
                        f"a record larger than the {chunk_bytes}-byte read "
                        f"buffer: the file is corrupt from here on",
                    )
                    break
                n, error, self.ahead = pending.result()
                self.cap.bytes_read += n
                self.base += pos
                have = have - pos + n
                cur = 1 - cur
                buf = bufs[cur]
                pos = 0
                eof = have < chunk_bytes
        finally:
            pool.shutdown(wait=True)
        if error:
            self.warn(self.base + have, error)
        for v in views:
            v.release()

    def run_live(self, stream: BinaryIO, chunk_bytes: int) -> Iterator[Chunk]:
        """Walk a capture that is still being written: the complete records of every read are
        handed out at once instead of after a full buffer, so findings follow the traffic.
        No read-ahead thread: the writer's pace is the limit, not the disk's."""
        buf = _zeroed(chunk_bytes + SLACK)
        view = memoryview(buf)[:chunk_bytes]
        need = 24 if self.cap.format == "pcap" else 0  # the file header start() reads
        have = pos = 0
        started = False
        error = None
        try:
            while not self.stop:
                n, error = _fill_some(stream, view[have:])
                have += n
                self.cap.bytes_read += n
                eof = n == 0
                if not started:
                    if have < need and not eof:
                        continue
                    pos, started = self.start(buf, have), True
                while not self.stop:
                    chunk, pos = self.walk(buf, pos, have, eof)
                    if chunk is not None and len(chunk):
                        self.cap.frames += len(chunk)
                        yield chunk
                    if not self.again:
                        break
                    self.again = False
                if self.stop:
                    break
                if eof:
                    if pos < have:
                        self.truncated(buf, pos, have)
                    break
                if pos == 0 and have == chunk_bytes:
                    self.warn(
                        self.base,
                        f"a record larger than the {chunk_bytes}-byte read "
                        f"buffer: the file is corrupt from here on",
                    )
                    break
                buf[: have - pos] = buf[pos:have]  # the unfinished record goes first
                self.base += pos
                have -= pos
                pos = 0
        finally:
            view.release()
        if error:
            self.warn(self.base + have, error)

    def start(self, buf: Buf, have: int) -> int:
        raise NotImplementedError

    def walk(self, buf: Buf, pos: int, have: int, eof: bool) -> tuple[Chunk | None, int]:
        raise NotImplementedError

    def truncated(self, buf: Buf, pos: int, have: int) -> None:
        raise NotImplementedError


class _PcapWalker(_Walker):
    def start(self, buf: Buf, have: int) -> int:
        cap = self.cap
        if have < 24:
            self.warn(0, f"pcap file header cut short: {have} of 24 bytes")
            self.stop = True
            return have
        magic = bytes(buf[:4])
        self.order, nano, self.rec_len = _PCAP_MAGICS[magic]
        _vmaj, _vmin, _zone, _sig, snaplen, network = struct.unpack_from(
            self.order + "HHiIII", buf, 4
        )
        # The upper bits of `network` carry FCS information (pcap-linktype(7)); the link type
        # is the low 16 bits.
        cap.interfaces.append(Interface(network & 0xFFFF, snaplen, 1e9 if nano else 1e6))
        self.linktype = network & 0xFFFF
        self.divisor = 1e9 if nano else 1e6
        self.frame = 1
        return 24

    def _advance(self, buf: Buf, n: int, pos: int, have: int, order: str) -> tuple[int, int]:
        k, pos = walk.pcap(buf, self.offsets[n:], pos, have, self.rec_len, walk.swapped(order))
        return n + k, pos

    def _complete(self, buf: Buf, n: int, pos: int, have: int, order: str) -> Walked:
        idx = self.offsets[:n].copy()  # a stop needs no judging: the record does not fit
        head = rows_at(np.frombuffer(buf, dtype=np.uint8), idx, self.rec_len + PACKET_WINDOW)
        return Walked(idx, pos, head, n == MAX_ROWS)

    def walk(self, buf: Buf, pos: int, have: int, eof: bool) -> tuple[Chunk | None, int]:
        w = self.walked(buf, pos, have)
        idx, pos, head = w.idx, w.pos, w.head
        a = np.frombuffer(buf, dtype=np.uint8)
        if len(idx):
            # Records are contiguous: each captured length is the distance to the next record.
            caplen = np.diff(idx, append=pos) - self.rec_len
            bad = np.flatnonzero(caplen > MAX_CAPLEN)
            if len(bad):
                # Everything after an absurd length is garbage: stop at it, as Wireshark does.
                k = int(bad[0])
                self.warn(
                    self.base + int(idx[k]),
                    f"record {self.frame + k} claims {int(caplen[k])} "
                    f"captured bytes (more than {MAX_CAPLEN}): the file is corrupt from here on; "
                    f"analyzed the {self.frame + k - 1} records before it",
                )
                idx, caplen, head = idx[:k], caplen[:k], head[:k]
                self.stop = True
            hdr = np.ascontiguousarray(head[:, :16]).view(self.order + "u4").astype(np.int64)
            sec, frac = hdr[:, 0], hdr[:, 1]
            ticks = sec * int(self.divisor) + frac
            ts = sec + frac / self.divisor
            n = len(idx)
            chunk = Chunk(
                a,
                idx + self.rec_len,
                caplen,
                hdr[:, 3],
                ts,
                np.full(n, self.linktype, dtype=np.int32),
                self.frame,
                ticks,
                np.zeros(n, np.int64),
                head[:, self.rec_len :],
            )
            self.frame += n
        else:
            chunk = None
        if not (self.stop or self.again) and pos + self.rec_len <= have:
            # The walk stopped at a record that does not fit the buffer: absurd or just split.
            caplen = struct.unpack_from(self.order + "I", buf, pos + 8)[0]
            if caplen > MAX_CAPLEN:
                self.warn(
                    self.base + pos,
                    f"record {self.frame} claims {caplen} captured bytes "
                    f"(more than {MAX_CAPLEN}): the file is corrupt from here on; analyzed "
                    f"the {self.frame - 1} records before it",
                )
                self.stop = True
        return chunk, pos

    def truncated(self, buf: Buf, pos: int, have: int) -> None:
        left = have - pos
        if left < self.rec_len:
            what = f"{left} of {self.rec_len} header bytes"
        else:
            caplen = struct.unpack_from(self.order + "I", buf, pos + 8)[0]
            what = f"{left - self.rec_len} of {caplen} packet bytes"
        self.warn(
            self.base + pos,
            f"file ends inside record {self.frame} ({what}): the capture "
            f"was cut short; analyzed the {self.frame - 1} complete records before it",
        )


class _PcapngWalker(_Walker):
    """pcapng: walk blocks, handle the rare non-packet blocks in Python, packets as columns."""

    def start(self, buf: Buf, have: int) -> int:
        self.frame = 1
        self.wild_warned = False
        self.section_base = 0  # index in cap.interfaces of this section's interface 0
        self.section_ifaces = 0
        # Sections are told apart by their number, not their base: a section that declares
        # no interface has the same base as the next one, and must not borrow its interfaces.
        self.section = 0
        self.warned_sections: set[int] = set()
        return 0

    def walk(self, buf: Buf, pos: int, have: int, eof: bool) -> tuple[Chunk | None, int]:
        a = np.frombuffer(buf, dtype=np.uint8)
        segs: list[tuple[np.ndarray, ...]] = []
        while True:  # each pass consumes at least the section header it restarts at
            pos, flipped = self._segment(a, buf, pos, have, segs)
            if not flipped or self.stop:
                break
        if not segs:
            return None, pos
        idx, head, types, base, nif, big, sec = (np.concatenate(x) for x in zip(*segs))
        self._warn_no_idb(idx, (nif == 0) & ~np.isin(types, _OTHER_RECORDS), sec)
        return self._packets(a, idx, head, types, base, nif, big), pos

    def _segment(
        self, a: np.ndarray, buf: Buf, pos: int, have: int, segs: list[tuple[np.ndarray, ...]]
    ) -> tuple[int, bool]:
        """Walk blocks in the current byte order; (next offset, whether a section in the
        other byte order starts there). A section in the other order makes the walk read
        garbage after its SHB, so the walk stops at it and goes on in that order."""
        w = self.walked(buf, pos, have)
        idx, pos, flips, head = w.idx, w.pos, w.flips, w.head
        # Each block's byte order: its section's (sections may differ).
        marks = [0] + [k for k, _o in flips] + [len(idx)]
        orders = [self.order] + [o for _k, o in flips]
        big = np.repeat(np.array([o == ">" for o in orders]), np.diff(marks))
        raw = np.ascontiguousarray(head[:, :4])
        types = np.where(big, raw.view(">u4")[:, 0], raw.view("<u4")[:, 0]).astype(np.int64)
        # Non-packet blocks change state (a new section, interfaces) or are skipped, in file
        # order. Interface blocks only add interfaces (a packet names an interface declared
        # before it), so only a new section splits the packets: a hostile file alternating
        # IDBs and packets costs no more than a plain one.
        record = np.isin(types, _RECORD_BLOCKS)
        # Each record's section: its first interface's index and how many it declared (known
        # once the segment is walked; a packet names an interface declared before it).
        sections = [(0, self.section_base, self.section)]  # (first block, base, number)
        counts = {self.section: self.section_ifaces}
        end = len(idx)
        flipped = False
        for k in map(int, np.flatnonzero(~record)):
            off = int(idx[k])
            if types[k] == PCAPNG_SHB:
                order = self._shb_order(buf, off)
                if order is None:
                    self.stop, end, pos = True, k, off
                    break
                self.order = order
                self._shb(off)
                sections.append((k + 1, self.section_base, self.section))
                counts[self.section] = 0
            elif types[k] == PCAPNG_IDB:
                self._idb(buf, off)
                counts[self.section] = self.section_ifaces
        starts = [k for k, _b, _s in sections] + [end]
        reps = np.diff(starts)
        base = np.repeat(np.array([b for _k, b, _s in sections], np.int64), reps)
        nif = np.repeat(np.array([counts[s] for _k, _b, s in sections], np.int64), reps)
        sec = np.repeat(np.array([s for _k, _b, s in sections], np.int64), reps)
        sel = record[:end]
        if sel.any():
            segs.append(
                (
                    idx[:end][sel],
                    head[:end][sel],
                    types[:end][sel],
                    base[sel],
                    nif[sel],
                    big[:end][sel],
                    sec[sel],
                )
            )
        if not (self.stop or flipped or self.again) and pos + 12 <= have:
            return pos, self._check_stop(buf, pos)
        return pos, flipped

    def _advance(self, buf: Buf, n: int, pos: int, have: int, order: str) -> tuple[int, int]:
        k, pos = walk.pcapng(buf, self.offsets[n:], pos, have, walk.swapped(order))
        return n + k, pos

    def _complete(self, buf: Buf, n: int, pos: int, have: int, order: str) -> Walked:
        """Blocks of ``buf[:have]``, at most MAX_ROWS. A section header in the other byte
        order stops a walk in this one (its length reads as garbage): the walk goes on there
        in that order, and :attr:`Walked.flips` says where."""
        flips: list[tuple[int, str]] = []
        total = n
        while True:
            total, pos = self._advance(buf, total, pos, have, order)
            if total < MAX_ROWS and pos + 12 <= have and buf[pos : pos + 4] == _SHB_BYTES:
                new = _BOM.get(bytes(buf[pos + 8 : pos + 12]))
                if new is not None and new != order:
                    order = new
                    flips.append((total, order))
                    continue
            break
        idx = self.offsets[:total].copy()
        # Type, length and an EPB's fields and first packet bytes, in one gather.
        head = rows_at(np.frombuffer(buf, dtype=np.uint8), idx, _EPB_HEAD + PACKET_WINDOW)
        return Walked(idx, pos, head, total == MAX_ROWS, tuple(flips))

    def _check_stop(self, buf: Buf, pos: int) -> bool:
        """The walk stopped at ``pos`` with bytes left: a new byte order (True), corruption
        (stop), or a record split by the end of the buffer."""
        btype, blen = struct.unpack_from(self.order + "II", buf, pos)
        if btype == PCAPNG_SHB:
            order = self._shb_order(buf, pos)
            if order is None:
                self.stop = True
            elif order != self.order:
                self.order = order
                return True
            blen = struct.unpack_from(self.order + "I", buf, pos + 4)[0]
        if not self.stop and (blen > MAX_BLOCK or blen < 12 or blen % 4):
            self.warn(
                self.base + pos,
                f"block after frame {self.frame - 1} claims length "
                f"{blen}: the file is corrupt from here on; analyzed the "
                f"{self.frame - 1} records before it",
            )
            self.stop = True
        return False

    def _shb_order(self, buf: Buf, off: int) -> str | None:
        bom = bytes(buf[off + 8 : off + 12])
        if bom == struct.pack("<I", PCAPNG_BOM):
            return "<"
        if bom == struct.pack(">I", PCAPNG_BOM):
            return ">"
        self.warn(
            self.base + off,
            "pcapng section header with an unknown byte-order magic "
            f"{bom.hex()}: the file is corrupt from here on",
        )
        return None

    def _shb(self, off: int) -> None:
        self.section += 1
        self.section_base = len(self.cap.interfaces)
        self.section_ifaces = 0
        if off == 0:
            self.cap.byteorder = self.order

    def _idb(self, buf: Buf, off: int) -> None:
        o = self.order
        blen = struct.unpack_from(o + "I", buf, off + 4)[0]
        linktype, _res, snaplen = struct.unpack_from(o + "HHI", buf, off + 8)
        divisor, offset = 1e6, 0.0
        # Options: code(2) length(2) value padded to 4 (if_tsresol 9, if_tsoffset 14).
        p, end = off + 16, off + blen - 4
        while p + 4 <= end:
            code, length = struct.unpack_from(o + "HH", buf, p)
            if code == OPT_ENDOFOPT:
                break
            if code == IF_TSRESOL and length >= 1:
                v = buf[p + 4]
                divisor = float(2 ** (v & 0x7F)) if v & 0x80 else float(10**v)
            elif code == IF_TSOFFSET and length >= 8:
                offset = float(struct.unpack_from(o + "q", buf, p + 4)[0])
            p += 4 + (length + 3) // 4 * 4
        self.cap.interfaces.append(Interface(linktype, snaplen, divisor, offset))
        self.section_ifaces += 1

    def _packets(
        self,
        a: np.ndarray,
        idx: np.ndarray,
        head: np.ndarray,
        types: np.ndarray,
        base: np.ndarray,
        nif: np.ndarray,
        big: np.ndarray,
    ) -> Chunk | None:
        """Columns for packet blocks ``idx`` (``head``: their first bytes, see :meth:`prewalk`);
        ``base``/``nif``: each one's section's first interface index and interface count;
        ``big``: its section is big-endian."""
        n = len(idx)
        if not n:
            return None

        def u32(raw: np.ndarray, rows_big: np.ndarray) -> np.ndarray:
            """(m, 4k) bytes -> (m, k) integers, each row in its own section's byte order."""
            raw = np.ascontiguousarray(raw)
            le = raw.view("<u4").astype(np.int64)
            if not rows_big.any():
                return le
            return np.where(rows_big[:, None], raw.view(">u4").astype(np.int64), le)

        blen = u32(head[:, 4:8], big)[:, 0]
        epb = types == PCAPNG_EPB
        spb = types == PCAPNG_SPB
        pb = types == PCAPNG_PB
        data = idx + _EPB_HEAD
        if epb.all():  # the usual file: every field straight from the gathered heads
            win = head[:, _EPB_HEAD:]
            iface, hi, lo, caplen, origlen = np.ascontiguousarray(u32(head[:, 8:_EPB_HEAD], big).T)
        else:
            iface, hi, lo, caplen, origlen = np.zeros((5, n), np.int64)
            win = np.empty((n, PACKET_WINDOW), np.uint8)
            if epb.any():
                g = head[epb]
                iface[epb], hi[epb], lo[epb], caplen[epb], origlen[epb] = u32(
                    g[:, 8:_EPB_HEAD], big[epb]
                ).T
                win[epb] = g[:, _EPB_HEAD:]
        if pb.any():
            e = idx[pb]
            raw16 = np.ascontiguousarray(rows_at(a, e + 8, 2))
            iface[pb] = np.where(big[pb], raw16.view(">u2")[:, 0], raw16.view("<u2")[:, 0])
            hi[pb], lo[pb], caplen[pb], origlen[pb] = u32(rows_at(a, e + 12, 16), big[pb]).T
        if spb.any():
            e = idx[spb]
            origlen[spb] = u32(rows_at(a, e + 8, 4), big[spb])[:, 0]
            data[spb] = e + 12
            caplen[spb] = np.minimum(origlen[spb], blen[spb] - 16)
        sje = np.isin(types, _OTHER_RECORDS)
        if sje.any():  # a frame in Wireshark, nothing to analyze here
            data[sje] = idx[sje] + 8
            caplen[sje] = origlen[sje] = 0
        # A packet must fit its block; an interface must have been declared.
        room = blen - (data - idx) - 4
        bad = (caplen > room) | (caplen > MAX_CAPLEN) | (caplen < 0)
        bad_if = (~sje) & ~spb & (iface >= nif)
        bad_if |= spb & (nif == 0)
        for k in map(int, np.flatnonzero(bad | (bad_if & (nif > 0)))):  # no IDB: _warn_no_idb
            why = (
                f"packet block claims {int(caplen[k])} captured bytes, its block holds {int(room[k])}"
                if bad[k]
                else f"packet block names interface {int(iface[k])}, the section "
                f"declared {int(nif[k])}"
            )
            self.warn(self.base + int(idx[k]), f"frame {self.frame + k}: {why}; frame skipped")
            caplen[k] = 0
        gi = np.where(bad_if, 0, iface) + base
        # Tables of the interfaces these sections declared only: many sections or interfaces
        # in a file cost nothing per packet.
        lo_if = int(base.min())
        local = gi - lo_if
        ifs = self.cap.interfaces[lo_if:]
        if ifs:
            lt_tab = np.array([i.linktype for i in ifs], np.int32)
            div_tab = np.array([i.ts_divisor for i in ifs])
            off_tab = np.array([i.ts_offset for i in ifs])
            snap_tab = np.array([i.snaplen or MAX_CAPLEN for i in ifs], np.int64)
            local = np.minimum(local, len(ifs) - 1)
            linktype = lt_tab[local]
            skip = bad_if | sje | bad
            linktype[skip] = -1
            ticks = (hi << 32) | lo
            ts = ticks / div_tab[local] + off_tab[local]
            ts[bad_if] = np.nan  # read with another interface's resolution: not a time
            self._drop_wild_times(ts, idx)
            if spb.any():
                caplen[spb] = np.minimum(caplen[spb], snap_tab[local[spb]])
                ts[spb] = np.nan  # SPBs carry no timestamp
        else:
            linktype = np.full(n, -1, np.int32)
            ts = np.full(n, np.nan)
            ticks = np.zeros(n, np.int64)
            skip = np.ones(n, bool)
        if not epb.all():
            win[~epb] = rows_at(a, data[~epb], PACKET_WINDOW)
        chunk = Chunk(
            a, data, caplen, origlen, ts, linktype, self.frame, ticks, np.where(skip, -1, gi), win
        )
        self.frame += n
        return chunk

    def _warn_no_idb(self, idx: np.ndarray, orphan: np.ndarray, sec: np.ndarray) -> None:
        """One warning per section that has packets but declares no interface (``orphan``:
        such packets), instead of one per packet: they have no link type to be read with."""
        for s in np.unique(sec[orphan]).tolist():
            if s not in self.warned_sections:
                self.warned_sections.add(s)
                k = int(np.argmax((sec == s) & orphan))
                self.warn(
                    self.base + int(idx[k]),
                    f"frame {self.frame + k}: its pcapng section declares no interface (no "
                    "IDB): the section's packets are skipped",
                )

    def _drop_wild_times(self, ts: np.ndarray, idx: np.ndarray) -> None:
        """Times no calendar can show (an ``if_tsresol`` that does not fit the ticks, a huge
        ``if_tsoffset``) become "no time", like an SPB's: every renderer formats dates
        within years 1-9999, and such a time is wrong anyway. Warned once per file."""
        wild = (ts < MIN_TIME) | (ts >= MAX_TIME)  # NaN (no time already) is neither
        if not wild.any():
            return
        k = int(np.argmax(wild))
        if not self.wild_warned:
            self.wild_warned = True
            self.warn(
                self.base + int(idx[k]),
                f"frame {self.frame + k}: timestamp outside the years 1-9999 (its interface's "
                "if_tsresol or if_tsoffset does not fit its packets): such frames are "
                "analyzed without a time",
            )
        ts[wild] = np.nan

    def truncated(self, buf: Buf, pos: int, have: int) -> None:
        left = have - pos
        if left >= 8:
            blen = struct.unpack_from(self.order + "I", buf, pos + 4)[0]
            what = f"{left} of {blen} block bytes"
        else:
            what = f"{left} of 8 block header bytes"
        self.warn(
            self.base + pos,
            f"file ends inside the block after frame {self.frame - 1} "
            f"({what}): the capture was cut short; analyzed the {self.frame - 1} "
            f"complete records before it",
        )


#: An EPB's type, length, interface, timestamp and lengths: the bytes before its packet data.
_EPB_HEAD = 28
_SHB_BYTES = struct.pack("<I", PCAPNG_SHB)  # the same in both byte orders
_BOM = {struct.pack("<I", PCAPNG_BOM): "<", struct.pack(">I", PCAPNG_BOM): ">"}
