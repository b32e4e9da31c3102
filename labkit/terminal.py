"""Text for a terminal: untrusted characters made visible instead of obeyed.

File names, log lines and ASA config text reach labkit's output as the customer's machine
wrote them. Printed raw, an escape sequence in a file name recolours or clears the
engineer's terminal (or retitles its window), a carriage return overwrites what was printed,
and a newline in a name forges a line of the report: ``case\\nVERDICT: no problem found``.
So every control character (C0, DEL, C1: ``\\x9b`` is a CSI on some terminals) and the
bidirectional overrides (text shown in another order than it is read) are printed as their
Python escape. JSON needs none of this: ``json.dumps`` escapes them itself.

:func:`printable` escapes everything, for one value or one line; :class:`PrintableStream`
wraps ``sys.stdout``/``sys.stderr`` in the CLI and lets through only the layout characters
labkit itself writes (newline and tab; carriage return on stderr, for the progress line).
"""

from __future__ import annotations

from typing import Final, TextIO

_BIDI: Final = [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C]
_CONTROLS: Final = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), *_BIDI]


def _escape(c: int) -> str:
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


_ALL: Final = {c: _escape(c) for c in _CONTROLS}


def printable(text: str) -> str:
    """``text`` with every control and bidi-override character escaped: one line, shown as
    written."""
    return text.translate(_ALL)


class PrintableStream:
    """A text stream that escapes control characters on their way to ``inner``, keeping
    ``keep`` (the layout characters). Everything else (``buffer`` for binary output,
    ``isatty``, ``fileno``, ``encoding``) is ``inner``'s."""

    def __init__(self, inner: TextIO, keep: str = "\n\t") -> None:
        self._inner = inner
        self._table = {c: e for c, e in _ALL.items() if chr(c) not in keep}

    def write(self, text: str) -> int:
        self._inner.write(text.translate(self._table))
        return len(text)

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)
