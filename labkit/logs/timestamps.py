"""Timestamps as ASA syslog lines and DART exports write them, to seconds since the epoch.

Naive timestamps (the ASA's ``logging timestamp``, BSD syslog, DART) carry no zone; labkit
reads them as UTC and leaves the alignment to the caller's clock offset (``--clock-offset``),
so two sources from machines in different zones can still be put on one timeline.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timezone
from typing import Final

MONTHS: Final[dict[str, int]] = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}


def naive_epoch(
    year: int, month: int, day: int, hour: int, minute: int, second: float
) -> float | None:
    """Seconds since the epoch for a naive UTC time; None when the fields are no date."""
    try:
        whole = datetime(year, month, day, hour, minute, int(second))
    except ValueError:
        return None
    return calendar.timegm(whole.timetuple()) + (second - int(second))


_ISO: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2}(?:\.\d+)?)(Z|[+-]\d{2}:?\d{2})?"
)


def iso_epoch(text: str) -> float | None:
    """RFC 3339 / RFC 5424 ``2022-11-16T01:28:50.123Z`` (a zone when given, else UTC)."""
    m = _ISO.fullmatch(text)
    if not m:
        return None
    y, mo, d, h, mi = (int(g) for g in m.groups()[:5])
    t = naive_epoch(y, mo, d, h, mi, float(m.group(6)))
    zone = m.group(7)
    if t is None or not zone or zone == "Z":
        return t
    sign = 1 if zone[0] == "+" else -1
    digits = zone[1:].replace(":", "")
    return t - sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)


def to_iso(t: float) -> str:
    """UTC ISO 8601 with milliseconds, for reports."""
    return (
        datetime.fromtimestamp(t, tz=timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
