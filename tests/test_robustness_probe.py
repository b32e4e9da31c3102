"""Probe targets are checked before anything is sent: no host in 0.0.0.0, a broadcast or a
multicast address; a path MTU probe to this node's own address measures nothing. Only the
validation runs here: each call is refused before a socket is opened (no namespaces)."""

from __future__ import annotations

import socket

import pytest

from labkit.errors import UsageError
from labkit.lab import probe


def _own_address() -> str | None:
    """This node's outward address (a UDP connect sends nothing), if it has a route."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
        except OSError:
            return None
        return s.getsockname()[0]


@pytest.mark.parametrize(
    "target, words",
    [
        ("0.0.0.0", "the unspecified address names no host"),
        ("255.255.255.255", "a broadcast address; a probe needs one host"),
        ("224.0.0.1", "a multicast address; a probe needs one host"),
        ("240.0.0.1", "a reserved address"),
    ],
)
def test_no_probe_goes_to_a_non_host(target: str, words: str) -> None:
    hello = b"\x16\xfe\xff" + bytes(10)
    with pytest.raises(UsageError, match=f"^target {target}: {words}"):
        probe.probe_pmtu(target, timeout=0.01, tries=1)
    with pytest.raises(UsageError, match=f"^target {target}: {words}"):
        probe.probe_dtls(target, 443, hello, timeout=0.01, tries=1)


def test_pmtu_to_this_nodes_own_address_is_refused() -> None:
    targets = ["127.0.0.1", "127.0.0.53"]
    own = _own_address()
    if own is not None and not own.startswith("127."):
        targets.append(own)
    for target in targets:
        with pytest.raises(UsageError, match=f"^target {target}: an address of this node"):
            probe.probe_pmtu(target, timeout=0.01, tries=1)
