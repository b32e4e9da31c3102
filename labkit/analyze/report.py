"""What an analysis returns: per-file facts, findings, the verdict. Renderers only read this."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labkit.analyze.diagnosis import Diagnosis, Fragmented, diagnose
from labkit.analyze.grouping import CaseGroup
from labkit.analyze.sources import SourceReport
from labkit.errors import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE
from labkit.findings import Finding

if TYPE_CHECKING:
    from labkit.analyze.decrypt import DecryptReport
    from labkit.analyze.plotdata import Sampler


@dataclass(frozen=True, slots=True)
class AnalyzeOptions:
    """Knobs of one analysis. ``tunnel_mtu``: the MTU the tunnel carries, when known from
    elsewhere (``--tunnel-mtu``); ``headends``: head-end addresses (``--headend``);
    ``max_flows``: the ceiling of each per-flow table of a file (None: the default,
    :data:`labkit.analyze.engine.MAX_FLOWS`, which fits in 1 GB of RSS); ``tunnel_dtls``:
    what decrypted CONNECT responses name, set by the judge like the head-ends they name."""

    tunnel_mtu: int | None = None
    headends: tuple[str, ...] = ()
    max_flows: int | None = None
    one_case: bool = False  # judge every file together (``--one-case``), related or not
    tunnel_dtls: tuple[TunnelDtls, ...] = ()


@dataclass(frozen=True, slots=True)
class TunnelDtls:
    """A decrypted CONNECT response's DTLS: the TLS session's client and head-end addresses
    and the X-DTLS-Session-ID (lower-case hex) the head-end gave that client, which the
    client's DTLS ClientHello then carries, whatever addresses NAT gives it on the way."""

    client: str
    headend: str
    session_id: str


@dataclass(frozen=True, slots=True)
class FileReport:
    """One input file: what it is, where it was captured, what went wrong reading it."""

    path: str
    format: str = ""
    packets: int = 0
    ip_packets: int = 0
    linktypes: tuple[str, ...] = ()
    capture_point: str = "unknown"  # outside | tunnel | inside | unknown
    capture_point_reason: str = ""
    cannot_show: str = ""
    cannot_tell: tuple[str, ...] = ()  # verdicts this file's packets leave open, and why
    warnings: tuple[str, ...] = ()
    error: str | None = None  # set when nothing in the file could be analyzed
    first_time: float | None = None
    last_time: float | None = None
    seconds: float = 0.0  # analysis wall time
    stage_seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)  # FileFacts.census
    flows_judged_early: int = 0  # dropped at the per-flow tables' ceiling (a warning says so)

    @property
    def analyzable(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "path": self.path,
            "format": self.format,
            "packets": self.packets,
            "ip_packets": self.ip_packets,
            "linktypes": list(self.linktypes),
            "capture_point": self.capture_point,
            "capture_point_reason": self.capture_point_reason,
            "cannot_show": self.cannot_show,
            "warnings": list(self.warnings),
            "flows_judged_early": self.flows_judged_early,
        }
        if self.error:
            doc["error"] = self.error
        if self.cannot_tell:
            doc["cannot_tell"] = list(self.cannot_tell)
        if self.first_time is not None and self.last_time is not None:
            doc["first_time"] = round(self.first_time, 6)
            doc["duration_s"] = round(self.last_time - self.first_time, 6)
        if self.counts:
            doc["counts"] = self.counts
        return doc


@dataclass(frozen=True, slots=True)
class Report:
    files: tuple[FileReport, ...]
    findings: tuple[Finding, ...]
    verdict: str
    options: AnalyzeOptions = AnalyzeOptions()
    sources: tuple[SourceReport, ...] = ()  # ASA syslog, DART, key log (labkit.analyze.sources)
    cases: tuple[CaseGroup, ...] = ()  # which files were judged together, and why
    # What the one pass collected for the renderers and the log join, per capture path
    decrypted: tuple[tuple[str, DecryptReport], ...] = ()  # with a key log
    samples: tuple[tuple[str, Sampler], ...] = ()  # for the plot
    fragments: tuple[Fragmented, ...] = ()  # IPv4 fragments per file, for the diagnosis

    @property
    def diagnosis(self) -> Diagnosis:
        """Derived, never stored: it always matches the findings (logs join them later)."""
        return diagnose(self.findings, self.files, self.fragments)

    @property
    def analyzable(self) -> bool:
        return any(f.analyzable for f in self.files) or any(s.analyzable for s in self.sources)

    @property
    def problem(self) -> bool:
        return any(f.is_problem for f in self.findings)

    @property
    def exit_code(self) -> int:
        """0 no problem, 1 a warning or error finding, 2 nothing could be analyzed."""
        if not self.analyzable:
            return EXIT_USAGE
        return EXIT_PROBLEM if self.problem else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        diagnosis = self.diagnosis
        return {
            "verdict": self.verdict,
            "diagnosis": diagnosis.to_json(),
            "fixes": diagnosis.fixes_json(),
            "problem": self.problem,
            "files": [f.to_json() for f in self.files],
            "sources": [s.to_json() for s in self.sources],
            "findings": [f.to_json() for f in self.findings],
            "cases": [c.to_json() for c in self.cases],
            "options": {
                "tunnel_mtu": self.options.tunnel_mtu,
                "headends": list(self.options.headends),
                "one_case": self.options.one_case,
            },
        }
