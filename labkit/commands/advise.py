"""``labkit advise CONFIG``: per group-policy MTUs, reconnect/black-hole risk and ranked fixes.

Reads an ASA running-config (or a fragment; ``-`` for stdin), prints what each group-policy's
AnyConnect users get and the fixes with their exact config lines. Exit 1 when a group-policy
is at risk (a DTLS failure would force a reconnect), 0 when none is, 2 when the file is not
readable or holds no ASA command labkit models.
"""

from __future__ import annotations

import argparse
import json
import sys

from labkit import mtu
from labkit.advise import Advice, PolicyAdvice, advise
from labkit.asa_config import parse
from labkit.commands import add_format_option
from labkit.errors import EXIT_OK, EXIT_PROBLEM, InputError
from labkit.fileio import read_input

MAX_CONFIG_BYTES = 64 * 1024 * 1024  # a running-config is kilobytes; refuse to slurp a disk image
MAX_WARNINGS = 20  # config lines reported one by one; the rest are counted


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "config", metavar="CONFIG", help="ASA running-config or fragment ('-' for stdin)"
    )
    p.add_argument(
        "--base-mtu",
        type=int,
        default=mtu.DEFAULT_BASE_MTU,
        help="the clients' NIC MTU, X-CSTP-Base-MTU (default %(default)s)",
    )
    add_format_option(p, "the advice")


def read_config(path: str) -> str:
    """The config's text; InputError (exit 2) for anything that is not a readable text file."""
    data = read_input(path, MAX_CONFIG_BYTES, "an ASA config")
    if b"\0" in data:
        raise InputError(
            f"{path}: binary data, not an ASA config", hint="give the text of 'show running-config'"
        )
    return data.decode("utf-8", errors="replace")


def _suite(name: str, span: tuple[int, int]) -> str:
    """The suite behind the number, and the spread over the suites the config allows."""
    lo, hi = span
    return name if lo == hi else f"{name}: the worst of {lo}..{hi} over the allowed suites"


def _policy_text(p: PolicyAdvice) -> list[str]:
    w = p.worst
    where = []
    if p.tunnel_groups:
        where.append(f"tunnel-groups {', '.join(p.tunnel_groups)}")
    if p.inherited_by:
        where.append(f"inherited by {', '.join(p.inherited_by)}")
    head = f"group-policy {p.name}" + ("" if p.defined else " (not in this text)")
    lines = [head + (f"  [{'; '.join(where)}]" if where else "")]
    cap = p.anyconnect_mtu
    lines.append(
        f"  anyconnect mtu {cap.value if cap.value is not None else 'not set (no cap)'}"
        f" ({cap.source}); DTLS {'enabled' if p.dtls.value else 'none'} ({p.dtls.source});"
        f" df-bit-ignore {'enable' if p.df_bit_ignore.value else 'disable'}"
        f" ({p.df_bit_ignore.source})"
    )
    if not p.anyconnect_allowed.value:
        lines.append(
            f"  not used by AnyConnect: vpn-tunnel-protocol has no ssl-client "
            f"({p.anyconnect_allowed.source})"
        )
        return lines
    lines += [
        f"  TLS (CSTP) MTU   {w.tls_mtu:>5}   {_suite(w.config.tls_cipher, p.tls_mtu_range)}",
        f"  DTLS MTU         {w.dtls_mtu:>5}   {_suite(w.config.dtls_cipher, p.dtls_mtu_range)}",
        f"  adapter MTU      {w.adapter_mtu:>5}   tunnel MSS {w.tunnel_mss}",
    ]
    if p.at_risk:
        lines.append(f"  AT RISK: {mtu.consequence(w)}")
        lines.append("  fixes, best first:")
        lines += [f"    {line}" for line in mtu.fixes_text(p.fixes)]
    else:
        reason = (
            "DTLS off: the adapter runs at the TLS MTU"
            if not w.config.dtls_enabled
            else f"the adapter MTU {w.adapter_mtu} fits the TLS MTU {w.tls_mtu}"
        )
        lines.append(f"  OK: a DTLS failure needs no reconnect ({reason})")
    return lines


def render_text(a: Advice) -> str:
    c = a.config
    s = a.suites
    out = [
        f"tcpmss {c.tcpmss} ({f'line {c.tcpmss_line}' if c.tcpmss_line else 'ASA default'}), "
        f"client NIC MTU {a.base_mtu}",
        f"TLS {s.tls_version} suites: {', '.join(s.tls) or '(none modelled)'}",
        f"DTLS suites: {', '.join(f'{n} (DTLS {v})' for n, v in s.dtls) or '(none modelled)'}",
        "",
    ]
    for p in a.policies:
        out += _policy_text(p)
        out.append("")
    if a.notes:
        out.append("notes:")
        out += [f"  - {n}" for n in a.notes]
    risky = a.at_risk
    out.append(
        f"{len(risky)} of {len(a.policies)} group-policies at risk"
        + (f": {', '.join(risky)}" if risky else "")
    )
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    cfg = parse(read_config(args.config))
    if cfg.commands == 0:  # not a config: one line, not a warning per line of the file first
        raise InputError(
            f"{args.config}: no ASA command labkit models (sysopt connection tcpmss, "
            "ssl cipher, webvpn, group-policy, tunnel-group)",
            hint="give the text of 'show running-config'",
        )
    for w in cfg.warnings[:MAX_WARNINGS]:
        sys.stderr.write(
            f"labkit advise: warning: {args.config}:{w.line}: {w.message}: {w.text[:200]}\n"
        )
    if len(cfg.warnings) > MAX_WARNINGS:
        sys.stderr.write(
            f"labkit advise: warning: {args.config}: {len(cfg.warnings) - MAX_WARNINGS} "
            "more line(s) skipped\n"
        )
    result = advise(cfg, base_mtu=args.base_mtu)
    if args.format == "json":
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(render_text(result))
    return EXIT_PROBLEM if result.at_risk else EXIT_OK
