"""The TLS detector's session view behaves as the Mapping it claims to be.

``values()`` is made row by row for speed; a Mapping's values are a view, so a caller may
take their length or walk them twice (sort, then report), which a bare generator would
silently turn into an empty second pass.
"""

from __future__ import annotations

from labkit.analyze import scan_file
from tests.helpers.paths import PUBLIC


def test_session_values_are_a_view_that_can_be_walked_twice() -> None:
    facts = scan_file(str(PUBLIC / "tls12-decryption.pcap")).facts
    assert facts is not None
    sessions = facts.tls.sessions
    values = sessions.values()
    first = list(values)
    assert first, "the capture holds a TLS session"
    assert list(values) == first
    assert len(values) == len(first)
    assert first == [sessions[k] for k in sessions]
