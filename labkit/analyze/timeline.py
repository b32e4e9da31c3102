"""One timeline: the captures' findings joined with ASA syslog, DART and decrypted CSTP.

Decisions made here (the log parsers and the decryptor only collect events), each one a
piece of the seed's failure (DESIGN.md section 1):

* ``mtu-mismatch`` from the ASA: ``%ASA-6-722036`` "Transmitting large packet 1418 (threshold
  1347)" and ``%ASA-6-602101`` "PMTU-D packet 1418 bytes greater than effective mtu 1347" name
  the packet size and the TLS tunnel's MTU directly. Grouped by (size, MTU); when a capture
  finding has the same two numbers, the log lines join its evidence.
* ``mtu-mismatch`` from a decrypted CONNECT: the head-end announced X-DTLS-MTU above
  X-CSTP-MTU and DTLS did not come up (``dtls-unanswered`` for that client and head-end), or
  the tunnel carried a DATA packet larger than X-CSTP-MTU.
* ``vpn-reconnect`` from DART (reconfigure reason code 16, "Reconnecting to ...", "A new MTU
  needs to be applied ...") and from the ASA (722037/722023 closing the TLS tunnel, then
  722034/722032/722022 a new one): messages within ``EPISODE_S`` are one reconnect, told as
  the logs are read (:mod:`labkit.analyze.logfold`: no log is held whole); a reconnect within
  :data:`JOIN_S` of a capture's ``vpn-reconnect`` is the same one.
  ``gap_s`` is left out unless the ASA (or the capture) shows both the old tunnel's end and
  the new one's start.
* ``cstp-connect`` (info) for every decrypted tunnel, with the head-end's numbers only.

Log evidence names the log file and its line number in place of a frame, with the time on the
capture's clock (after ``--clock-offset``).
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Final

from labkit.analyze.report import TunnelDtls
from labkit.findings import CstpConnect, Evidence, Finding, MtuMismatch, VpnReconnect

if TYPE_CHECKING:  # named in annotations only: every analyze run reads this module (the
    # empty LogInputs), and the decryptor (cryptography) and the log parsers cost 40 ms to import
    from labkit.analyze.decrypt import DecryptReport, TunnelSession
    from labkit.analyze.logfold import DartFold, Reconnect, SyslogFold

JOIN_S: Final = 120.0  # a log reconnect this close to a capture's is the same incident


@dataclass(frozen=True, slots=True)
class LogInputs:
    """Everything besides the captures, already read (folded as read) and on the capture clock."""

    syslog: tuple[tuple[str, SyslogFold], ...] = ()
    dart: tuple[tuple[str, DartFold], ...] = ()
    decrypted: tuple[tuple[str, DecryptReport], ...] = ()


def _merge(
    f: Finding, evidence: Sequence[Evidence], summary: str, fields: dict[str, Any]
) -> Finding:
    """The same finding with more evidence: its filter still selects its capture frames."""
    return replace(
        f.amended(fields), summary=f"{f.summary} {summary}", evidence=f.evidence + tuple(evidence)
    )


def _near(f: Finding, when: float, window: float) -> bool:
    return any(e.time is not None and abs(e.time - when) <= window for e in f.evidence)


# --- mtu-mismatch from the ASA's own words ---------------------------------------------------


def _asa_mismatch(inputs: LogInputs) -> list[tuple[int, int, tuple[Evidence, ...], int, str]]:
    """(packet size, tunnel MTU, evidence, count, text) per size/MTU pair the ASA logged."""
    pairs = sorted({pair for _p, fold in inputs.syslog for pair in fold.mismatches})
    out = []
    for size, limit in pairs:
        folded = [m for _p, fold in inputs.syslog if (m := fold.mismatches.get((size, limit)))]
        evidence = tuple(ev for m in folded for ev in m.lines)
        count = sum(m.count for m in folded)
        ids = sorted(set().union(*(m.ids for m in folded)))
        large = next((m.first_large for m in folded if m.first_large is not None), None)
        who = f" for user {large.user} (group {large.group})" if large and large.user else ""
        text = (
            f"The ASA logged {count} packet(s) of {size} bytes{who} that its "
            f"{limit}-byte tunnel cannot carry ({', '.join(f'%ASA-{i}' for i in ids)})."
        )
        out.append((size, limit, evidence, count, text))
    return out


# --- decrypted CONNECT -------------------------------------------------------------------------


def _ip_port(endpoint: str) -> tuple[str, str]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), port


def syslog_year(
    first_capture_time: float | None, dart: Sequence[tuple[str, DartFold]], now: float
) -> tuple[int, str]:
    """The year for syslog timestamps that have none (BSD syslog ``Nov 16 01:28:50``), and
    where it comes from: the first capture, else the DART log, else ``now``."""
    first, origin = first_capture_time, "the year of the capture"
    if first is None:
        first = next((fold.first_time for _p, fold in dart if fold.events), None)
        origin = "the year of the DART log"
    if first is None:
        first, origin = now, "the current year: no capture or DART log to date them"
    return datetime.fromtimestamp(first, tz=timezone.utc).year, origin


def tunnel_headends(reports: Iterable[DecryptReport]) -> list[str]:
    """The server address of every decrypted CSTP tunnel: a head-end for the analyzer."""
    return [_ip_port(s.server)[0] for r in reports for s in r.tunnels]


def tunnel_dtls(reports: Iterable[DecryptReport]) -> list[TunnelDtls]:
    """Each decrypted CONNECT response's X-DTLS-Session-ID, with the tunnel's addresses."""
    out = []
    for r in reports:
        for s in r.tunnels:
            sid = (s.response.header("X-DTLS-Session-ID") or "") if s.response else ""
            if sid and len(sid) % 2 == 0 and all(c in string.hexdigits for c in sid):
                out.append(TunnelDtls(_ip_port(s.client)[0], _ip_port(s.server)[0], sid.lower()))
    return out


def _connect_finding(path: str, s: TunnelSession) -> Finding:
    assert s.response is not None
    client_ip, client_port = _ip_port(s.client)
    fam = "ipv6" if ":" in client_ip else "ip"
    filt = (
        f'(http.response.phrase == "CONNECTED") && ({fam}.dst == {client_ip}) && '
        f"(tcp.dstport == {client_port})"
    )
    cstp_mtu, dtls_mtu = s.head_end("X-CSTP-MTU"), s.head_end("X-DTLS-MTU")
    base, port = s.head_end("X-CSTP-Base-MTU"), s.head_end("X-DTLS-Port")
    client_mtu = s.request.header_int("X-CSTP-MTU") if s.request else None
    numbers = ", ".join(
        f"{k} {v}"
        for k, v in (
            ("X-CSTP-MTU", cstp_mtu),
            ("X-DTLS-MTU", dtls_mtu),
            ("X-CSTP-Base-MTU", base),
            ("X-DTLS-Port", port),
        )
        if v is not None
    )
    largest = [
        (d, st.largest_data)
        for d, st in (("to the client", s.to_client), ("to the head-end", s.to_server))
        if st.largest_data
    ]
    summary = (
        f"Decrypted CSTP CONNECT from {s.client} to head-end {s.server} ({s.tls}): the "
        f"head-end announced {numbers or 'no MTU header'}"
        + (f" (the client had asked for X-CSTP-MTU {client_mtu})" if client_mtu else "")
        + (
            ". Largest tunnelled packet " + ", ".join(f"{d} {n} bytes" for d, n in largest)
            if largest
            else ""
        )
        + "."
        + (
            f" X-DTLS-MTU exceeds X-CSTP-MTU by {dtls_mtu - cstp_mtu} bytes: whenever DTLS "
            f"fails, packets sized for {dtls_mtu} meet the {cstp_mtu}-byte TLS tunnel until "
            f"the client reconnects."
            if dtls_mtu is not None and cstp_mtu is not None and dtls_mtu > cstp_mtu
            else ""
        )
    )
    return CstpConnect(
        summary=summary,
        evidence=(Evidence(path, s.response.frame, s.response.time),),
        wireshark_filter=filt,
        x_cstp_mtu=cstp_mtu,
        x_dtls_mtu=dtls_mtu,
        x_cstp_base_mtu=base,
        x_dtls_port=port,
        dtls_cipher=s.dtls_cipher,
        client=s.client,
        server=s.server,
        tls=s.tls,
        client_x_cstp_mtu=client_mtu,
        cstp_to_client=dict(s.to_client.packets) or None,
        cstp_to_server=dict(s.to_server.packets) or None,
        largest_data_to_client=s.to_client.largest_data,
        largest_data_to_server=s.to_server.largest_data,
    )


def _decrypted_mismatch(
    path: str, s: TunnelSession, findings: Sequence[Finding]
) -> tuple[int, int, tuple[Evidence, ...], str] | None:
    cstp_mtu, dtls_mtu = s.head_end("X-CSTP-MTU"), s.head_end("X-DTLS-MTU")
    if cstp_mtu is None or s.response is None:
        return None
    client_ip, _ = _ip_port(s.client)
    server_ip, _ = _ip_port(s.server)
    # Positive evidence only: DTLS tried and unanswered. No DTLS in a capture may just be its
    # capture filter; the cstp-connect finding says what would happen then.
    no_dtls = any(
        f.id == "dtls-unanswered"
        and f.fields.get("client") == client_ip
        and f.fields.get("server") == server_ip
        for f in findings
    )
    evidence = [Evidence(path, s.response.frame, s.response.time)]
    parts = []
    size = None
    for what, st in (("the head-end sent", s.to_client), ("the client sent", s.to_server)):
        if st.largest_data and st.largest_data > cstp_mtu and st.largest_frame is not None:
            evidence.append(Evidence(path, st.largest_frame, st.largest_time))
            parts.append(
                f"{what} a {st.largest_data}-byte packet into the TLS tunnel "
                f"(frame {st.largest_frame})"
            )
            size = max(size or 0, st.largest_data)
    if dtls_mtu is not None and dtls_mtu > cstp_mtu and no_dtls:
        parts.insert(
            0,
            f"DTLS did not come up, so the adapter stays at X-DTLS-MTU {dtls_mtu} "
            f"while the TLS tunnel carries X-CSTP-MTU {cstp_mtu}",
        )
        size = max(size or 0, dtls_mtu)
    if size is None:
        return None
    text = f"The decrypted CONNECT (frame {s.response.frame}) shows it: " + "; ".join(parts) + "."
    return size, cstp_mtu, tuple(evidence), text


# --- reconnects ----------------------------------------------------------------------------------


def _reconnect_findings(findings: list[Finding], inputs: LogInputs) -> list[Finding]:
    logged: list[Reconnect] = sorted(
        [r for _p, fold in inputs.dart for r in fold.reconnects()]
        + [r for _p, fold in inputs.syslog for r in fold.reconnects()],
        key=lambda r: r.time,
    )
    # Log reconnects close together (DART on the client, ASA on the head-end) are one incident.
    incidents: list[list[Reconnect]] = []
    for r in logged:
        if incidents and r.time - incidents[-1][-1].time <= JOIN_S:
            incidents[-1].append(r)
        else:
            incidents.append([r])
    out = list(findings)
    for inc in incidents:
        evidence = tuple(e for r in inc for e in r.evidence)
        text = " ".join(r.text for r in inc)
        fields: dict[str, Any] = {}
        for r in inc:
            for k, v in r.fields.items():
                fields.setdefault(k, v)
        i = next(
            (
                i
                for i, f in enumerate(out)
                if f.id == "vpn-reconnect" and _near(f, inc[0].time, JOIN_S)
            ),
            None,
        )
        if i is not None:
            out[i] = _merge(
                out[i], evidence, text, {k: v for k, v in fields.items() if k not in out[i].fields}
            )
        else:
            out.append(VpnReconnect(summary=text, evidence=evidence).amended(fields))
    return out


# --- the join ----------------------------------------------------------------------------------


def join(findings: Sequence[Finding], inputs: LogInputs) -> list[Finding]:
    """The capture findings with the logs' and the decrypted tunnel's evidence added."""
    out = list(findings)
    mismatches: list[tuple[int, int, tuple[Evidence, ...], str, str]] = [
        (size, limit, ev, text, "asa-syslog") for size, limit, ev, _n, text in _asa_mismatch(inputs)
    ]
    for path, report in inputs.decrypted:
        for s in report.tunnels:
            out.append(_connect_finding(path, s))
            m = _decrypted_mismatch(path, s, findings)
            if m is not None:
                mismatches.append((*m, "decrypted CONNECT"))
    for size, limit, evidence, text, source in mismatches:
        # The same packets, and the same tunnel MTU or one the capture could not see (a black
        # hole shows the size, not the limit): the log or the CONNECT completes the finding.
        i = next(
            (
                i
                for i, f in enumerate(out)
                if f.id == "mtu-mismatch"
                and f.fields.get("packet_size") == size
                and f.fields.get("tunnel_mtu") in (limit, None)
            ),
            None,
        )
        if i is not None:
            fields: dict[str, Any] = {
                "also_from": list(out[i].fields.get("also_from", [])) + [source]
            }
            if out[i].fields.get("tunnel_mtu") is None:
                fields.update(tunnel_mtu=limit, tunnel_mtu_source=source, excess_bytes=size - limit)
            out[i] = _merge(out[i], evidence, text, fields)
        else:
            summary = (
                f"Packets sized for MTU {size} meet a tunnel that carries only {limit} bytes: "
                + text
            )
            out.append(
                MtuMismatch(
                    summary=summary,
                    evidence=evidence,
                    packet_size=size,
                    tunnel_mtu=limit,
                    tunnel_mtu_source=source,
                    excess_bytes=size - limit,
                )
            )
    out = _reconnect_findings(out, inputs)
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(out, key=lambda f: (order[f.severity or "info"], f.id))
