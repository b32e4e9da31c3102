"""Findings: what labkit concludes, with evidence a person can check in Wireshark.

Finding ids are a contract (like Zeek's ``Notice::Type`` names): users' scripts match on
them, so they never change meaning. Each is documented here, in the one table every
detector, log parser and renderer uses.

A finding's own fields (``packet_size``, ``mtu``, ``attempts`` ...) go in ``fields``; a field
the evidence cannot support is left out, never guessed (DESIGN.md section 5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["info", "warning", "error"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "error": 2}

#: id -> (default severity, what it means). The ids and their fields are the contract.
FINDING_TYPES: dict[str, tuple[Severity, str]] = {
    "dtls-established": ("info", "a DTLS tunnel completed its handshake (fields: version, port)"),
    "dtls-unanswered": (
        "error",
        "DTLS ClientHellos got no answer: UDP blocked on the path "
        "(fields: client, server, port, attempts)",
    ),
    "dtls-absent": (
        "warning",
        "a TLS VPN session to a head-end exists but no DTLS attempt is "
        "visible: traffic runs in the TLS tunnel only",
    ),
    "dtls-nondefault-port": (
        "warning",
        "DTLS is attempted on a port other than 443 (fields: port)",
    ),
    "dtls-other": (
        "info",
        "DTLS that is not an AnyConnect tunnel (WebRTC after STUN, CoAP, CAPWAP, test "
        "servers): counted and described, never a VPN problem (fields: client, server, port)",
    ),
    "syn-mss": ("info", "the MSS a TCP SYN announces (fields: mss)"),
    "oversized-df": (
        "warning",
        "DF-set packets larger than the tunnel MTU (fields: packet_size, tunnel_mtu, count)",
    ),
    "icmp-frag-needed": (
        "warning",
        "ICMP type 3 code 4 / ICMPv6 Packet Too Big (fields: mtu, original_length)",
    ),
    "mtu-mismatch": (
        "error",
        "packets sized for one MTU where the path allows only a smaller "
        "one: the 1418-vs-1347 failure (fields: packet_size, tunnel_mtu)",
    ),
    "icmp-bogus-mtu": (
        "info",
        "ICMP frag-needed / Packet Too Big with an MTU no path can have (zero, below the "
        "protocol minimum, or one the quoted packet fits in): never taken as a limit "
        "(fields: mtu, reason)",
    ),
    "pmtud-working": (
        "info",
        "ICMP frag-needed / Packet Too Big, and the sender then sent data at or below that MTU "
        "and nothing larger: the path MTU is smaller, and path-MTU discovery handles it "
        "(fields: mtu, adapted_after_s)",
    ),
    "pmtud-black-hole": (
        "error",
        "the same oversized segment retransmitted, never "
        "acknowledged, with no ICMP: PMTUD is broken",
    ),
    "vpn-reconnect": (
        "warning",
        "the client opened a new TLS session to the same head-end (fields: gap_s)",
    ),
    "cstp-connect": (
        "info",
        "the head-end's CSTP CONNECT response, decrypted (fields: "
        "x_cstp_mtu, x_dtls_mtu, x_cstp_base_mtu, x_dtls_port)",
    ),
}


@dataclass(frozen=True, slots=True)
class Evidence:
    """One frame a person can open: Wireshark's 1-based frame number in ``file`` (or the line
    of a log file: ASA syslog, DART)."""

    file: str
    frame: int  # for a log file: its 1-based line number
    time: float | None  # seconds since the epoch; None (or NaN: a pcapng SPB) when there is none

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"file": self.file, "frame": self.frame}
        # A Simple Packet Block carries no timestamp: the key is left out, never NaN (not JSON).
        if self.time is not None and not math.isnan(self.time):
            doc["time"] = round(self.time, 6)
        return doc


@dataclass(frozen=True, slots=True)
class Finding:
    """One conclusion. Validated on construction: an unknown id is a bug, not a finding."""

    id: str
    summary: str
    evidence: tuple[Evidence, ...] = ()
    wireshark_filter: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    severity: Severity | None = None  # None: the id's default severity

    def __post_init__(self) -> None:
        if self.id not in FINDING_TYPES:
            raise ValueError(f"unknown finding id {self.id!r}")
        if self.severity is None:
            object.__setattr__(self, "severity", FINDING_TYPES[self.id][0])
        elif self.severity not in SEVERITY_RANK:
            raise ValueError(f"unknown severity {self.severity!r}")

    @property
    def is_problem(self) -> bool:
        """Warnings and errors make ``labkit analyze`` exit 1 (DESIGN.md section 5)."""
        return SEVERITY_RANK[self.severity or "info"] >= SEVERITY_RANK["warning"]

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": self.id,
            "severity": self.severity,
            "summary": self.summary,
            "evidence": [e.to_json() for e in self.evidence],
            "wireshark_filter": self.wireshark_filter,
        }
        doc.update(self.fields)
        return doc
