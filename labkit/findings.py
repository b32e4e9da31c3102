"""Findings: what labkit concludes, with evidence a person can check in Wireshark.

Finding ids are a contract (like Zeek's ``Notice::Type`` names): users' scripts match on
them, so they never change meaning. Each id is one frozen dataclass here that declares the
id's own fields with their types, so a producer that misspells a field, or gives it the wrong
type, fails the type check instead of writing a JSON key no script expects.

A field the evidence cannot support is ``None`` and left out of ``fields`` and the JSON, never
guessed (DESIGN.md section 5). ``fields`` lists the id's fields in declaration order, then the
per-file filters; a later stage that completes a finding (a log naming the tunnel MTU a black
hole could not show) adds fields with :meth:`Finding.amended`, and those come after, in the
order they were added, as a dict merge would put them: the JSON's key order does not depend
on which stage knew a value first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, Literal, TypedDict, TypeVar

Severity = Literal["info", "warning", "error"]
#: A SYN's place, once head-ends are known: to a head-end, through its tunnel, or elsewhere.
Role = Literal["outer", "inner", "other"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "error": 2}

_F = TypeVar("_F", bound="Finding")


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


class Located(TypedDict):
    """Where a finding's evidence is: the fields every finding has besides its own, as a
    producer passes them (``**located``), checked by the type checker like the rest."""

    evidence: tuple[Evidence, ...]
    wireshark_filter: str
    wireshark_filters: dict[str, str] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One conclusion; each finding id is a subclass declaring that id's fields.

    ``severity`` None is the id's default. ``wireshark_filters`` names each file's filter when
    the evidence spans files (``wireshark_filter`` is then the first file's)."""

    id: ClassVar[str]
    default_severity: ClassVar[Severity]
    meaning: ClassVar[str]  #: what the id means, for people (FINDING_TYPES, the docs)

    summary: str
    evidence: tuple[Evidence, ...] = ()
    wireshark_filter: str = ""
    severity: Severity | None = None
    wireshark_filters: dict[str, str] | None = None
    #: fields added after the finding was made, in the order they came (see the module doc)
    late: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if type(self) not in FINDING_CLASSES:
            raise TypeError(f"{type(self).__name__} is not a finding id's class")
        if self.severity is None:
            object.__setattr__(self, "severity", self.default_severity)
        elif self.severity not in SEVERITY_RANK:
            raise ValueError(f"unknown severity {self.severity!r}")

    @property
    def is_problem(self) -> bool:
        """Warnings and errors make ``labkit analyze`` exit 1 (DESIGN.md section 5)."""
        return SEVERITY_RANK[self.severity or "info"] >= SEVERITY_RANK["warning"]

    @property
    def fields(self) -> dict[str, Any]:
        """The id's fields the evidence supports (None left out), then the per-file filters,
        then fields added later in the order they were added."""
        names = [*own_fields(type(self)), "wireshark_filters"]
        out = {n: getattr(self, n) for n in names if n not in self.late}
        out.update((n, getattr(self, n)) for n in self.late)
        return {k: v for k, v in out.items() if v is not None}

    def amended(self: _F, changes: Mapping[str, Any]) -> _F:
        """This finding with ``changes`` to its fields, merged as into a dict: a field it
        already shows keeps its place, one it did not show comes last. Only the id's own
        fields (and ``wireshark_filters``) exist: any other name is a bug."""
        names = set(own_fields(type(self))) | {"wireshark_filters"}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"{self.id} has no field(s) {', '.join(unknown)}")
        shown = self.fields
        late = self.late + tuple(k for k in changes if k not in shown and k not in self.late)
        return replace(self, late=late, **changes)

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


_BASE_FIELDS = frozenset(
    ("summary", "evidence", "wireshark_filter", "severity", "wireshark_filters", "late")
)


def own_fields(cls: type[Finding]) -> tuple[str, ...]:
    """The fields ``cls``'s id declares, in order (the JSON keys after the common ones)."""
    return _OWN_FIELDS[cls]


@dataclass(frozen=True, slots=True, kw_only=True)
class DtlsEstablished(Finding):
    id: ClassVar[str] = "dtls-established"
    default_severity: ClassVar[Severity] = "info"
    meaning: ClassVar[str] = "a DTLS tunnel completed its handshake (fields: version, port)"

    version: str | None  # the record/hello version as 0x%04x, when one was seen
    version_name: str | None
    port: int
    client: str
    server: str
    resumed: bool | None = None
    # The rest only when the handshake is in the capture (not for a mid-stream start).
    hello_verify_request: bool | None = None
    retransmitted_hellos: int | None = None
    attempts: int | None = None
    cipher: str | None = None
    more_pairs: int | None = None  # pairs of the same kind this one stands for


@dataclass(frozen=True, slots=True, kw_only=True)
class DtlsUnanswered(Finding):
    id: ClassVar[str] = "dtls-unanswered"
    default_severity: ClassVar[Severity] = "error"
    meaning: ClassVar[str] = (
        "DTLS ClientHellos got no answer: UDP blocked on the path "
        "(fields: client, server, port, attempts)"
    )

    client: str
    server: str
    port: int
    attempts: int
    version: str | None = None
    hello_verify_requests: int | None = None
    icmp_unreachable: int | None = None
    more_pairs: int | None = None  # pairs of the same kind this one stands for


@dataclass(frozen=True, slots=True, kw_only=True)
class DtlsAbsent(Finding):
    id: ClassVar[str] = "dtls-absent"
    default_severity: ClassVar[Severity] = "warning"
    meaning: ClassVar[str] = (
        "a TLS VPN session to a head-end exists but no DTLS attempt is "
        "visible: traffic runs in the TLS tunnel only"
    )

    client: str
    server: str
    tls_sessions: int
    more_pairs: int | None = None  # clients of the same head-end this one stands for


@dataclass(frozen=True, slots=True, kw_only=True)
class DtlsNondefaultPort(Finding):
    id: ClassVar[str] = "dtls-nondefault-port"
    default_severity: ClassVar[Severity] = "warning"
    meaning: ClassVar[str] = "DTLS is attempted on a port other than 443 (fields: port)"

    port: int
    client: str
    server: str
    established: bool
    more_pairs: int | None = None  # pairs of the same kind this one stands for


@dataclass(frozen=True, slots=True, kw_only=True)
class DtlsOther(Finding):
    id: ClassVar[str] = "dtls-other"
    default_severity: ClassVar[Severity] = "info"
    meaning: ClassVar[str] = (
        "DTLS that is not an AnyConnect tunnel (WebRTC after STUN, CoAP, CAPWAP, test "
        "servers): counted and described, never a VPN problem (fields: client, server, port)"
    )

    client: str
    server: str
    port: int
    version: str | None
    webrtc: bool
    established: bool
    attempts: int | None = None
    more_pairs: int | None = None  # pairs of the same kind this one stands for


@dataclass(frozen=True, slots=True, kw_only=True)
class SynMss(Finding):
    id: ClassVar[str] = "syn-mss"
    default_severity: ClassVar[Severity] = "info"
    meaning: ClassVar[str] = "the MSS a TCP SYN announces (fields: mss)"

    mss: int
    # Both only when the head-end is seen lowering the MSS between two capture points.
    mss_before_clamping: int | None = None
    clamped_by: str | None = None
    direction: Literal["syn", "syn-ack"]
    role: Role | None = None  # None: no head-end known
    ip_version: int
    implied_mtu: int
    count: int
    servers: list[str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OversizedDf(Finding):
    id: ClassVar[str] = "oversized-df"
    default_severity: ClassVar[Severity] = "warning"
    meaning: ClassVar[str] = (
        "DF-set packets larger than the tunnel MTU (fields: packet_size, tunnel_mtu, count)"
    )

    packet_size: int
    tunnel_mtu: int
    count: int
    sizes: dict[str, int]  # IP size (a JSON key: text) -> packets, the most common five


@dataclass(frozen=True, slots=True, kw_only=True)
class IcmpFragNeeded(Finding):
    id: ClassVar[str] = "icmp-frag-needed"
    default_severity: ClassVar[Severity] = "warning"
    meaning: ClassVar[str] = (
        "ICMP type 3 code 4 / ICMPv6 Packet Too Big (fields: mtu, original_length)"
    )

    mtu: int
    original_length: int | None = None  # None: no quote long enough to hold it
    ip_version: int
    original_lengths: list[int] | None = None  # only when the quotes name several
    count: int
    reporters: list[str]
    quoted_flows: list[str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MtuMismatch(Finding):
    id: ClassVar[str] = "mtu-mismatch"
    default_severity: ClassVar[Severity] = "error"
    meaning: ClassVar[str] = (
        "packets sized for one MTU where the path allows only a smaller "
        "one: the 1418-vs-1347 failure (fields: packet_size, tunnel_mtu)"
    )

    packet_size: int
    # None when only a black hole shows the size (no ICMP, no --tunnel-mtu, no log).
    tunnel_mtu: int | None = None
    tunnel_mtu_source: str | None = None
    excess_bytes: int | None = None
    sender_kept_oversized: bool | None = None  # True, or left out
    also_from: list[str] | None = None  # the logs or decrypted CONNECTs that say it too


@dataclass(frozen=True, slots=True, kw_only=True)
class IcmpBogusMtu(Finding):
    id: ClassVar[str] = "icmp-bogus-mtu"
    default_severity: ClassVar[Severity] = "info"
    meaning: ClassVar[str] = (
        "ICMP frag-needed / Packet Too Big with an MTU no path can have (zero, below the "
        "protocol minimum, or one the quoted packet fits in): never taken as a limit "
        "(fields: mtu, reason)"
    )

    mtu: int
    reason: str
    ip_version: int
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PmtudWorking(Finding):
    id: ClassVar[str] = "pmtud-working"
    default_severity: ClassVar[Severity] = "info"
    meaning: ClassVar[str] = (
        "ICMP frag-needed / Packet Too Big, and the sender then sent data at or below that MTU "
        "and nothing larger: the path MTU is smaller, and path-MTU discovery handles it "
        "(fields: mtu, adapted_after_s)"
    )

    mtu: int
    ip_version: int
    adapted_after_s: float | None = None  # None: no fitting data packet was timed


@dataclass(frozen=True, slots=True, kw_only=True)
class PmtudBlackHole(Finding):
    id: ClassVar[str] = "pmtud-black-hole"
    default_severity: ClassVar[Severity] = "error"
    meaning: ClassVar[str] = (
        "the same oversized segment retransmitted, never "
        "acknowledged, with no ICMP: PMTUD is broken"
    )

    packet_size: int
    segment_length: int
    copies: int
    flow: str
    recovered_by_smaller_segments: bool
    tunnel_mtu: int | None = None  # --tunnel-mtu, when given


@dataclass(frozen=True, slots=True, kw_only=True)
class VpnReconnect(Finding):
    id: ClassVar[str] = "vpn-reconnect"
    default_severity: ClassVar[Severity] = "warning"
    meaning: ClassVar[str] = (
        "the client opened a new TLS session to the same head-end (fields: gap_s)"
    )

    # Each source tells part: DART the reason and head-end name, a capture the addresses and
    # ports, the ASA the user and the gap. Whatever none of them told is left out.
    reason_code: int | None = None
    client: str | None = None
    server: str | None = None
    port: int | None = None
    gap_s: float | None = None
    previous_client_port: int | None = None
    client_port: int | None = None
    user: str | None = None
    client_public_ip: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CstpConnect(Finding):
    id: ClassVar[str] = "cstp-connect"
    default_severity: ClassVar[Severity] = "info"
    meaning: ClassVar[str] = (
        "the head-end's CSTP CONNECT response, decrypted (fields: "
        "x_cstp_mtu, x_dtls_mtu, x_cstp_base_mtu, x_dtls_port)"
    )

    # The head-end's headers: each left out when the response does not carry it.
    x_cstp_mtu: int | None = None
    x_dtls_mtu: int | None = None
    x_cstp_base_mtu: int | None = None
    x_dtls_port: int | None = None
    dtls_cipher: str | None = None
    client: str
    server: str
    tls: str
    client_x_cstp_mtu: int | None = None
    cstp_to_client: dict[str, int] | None = None  # CSTP packet type -> count
    cstp_to_server: dict[str, int] | None = None
    largest_data_to_client: int | None = None
    largest_data_to_server: int | None = None
    keylog_needed_for_filter: bool = True  # its filter needs the key log to match


#: Every finding id's class, in the order the ids are documented.
FINDING_CLASSES: tuple[type[Finding], ...] = (
    DtlsEstablished,
    DtlsUnanswered,
    DtlsAbsent,
    DtlsNondefaultPort,
    DtlsOther,
    SynMss,
    OversizedDf,
    IcmpFragNeeded,
    MtuMismatch,
    IcmpBogusMtu,
    PmtudWorking,
    PmtudBlackHole,
    VpnReconnect,
    CstpConnect,
)

#: id -> (default severity, what it means). The ids and their fields are the contract.
FINDING_TYPES: dict[str, tuple[Severity, str]] = {
    c.id: (c.default_severity, c.meaning) for c in FINDING_CLASSES
}

_OWN_FIELDS: dict[type[Finding], tuple[str, ...]] = {
    c: tuple(f.name for f in fields(c) if f.name not in _BASE_FIELDS) for c in FINDING_CLASSES
}
