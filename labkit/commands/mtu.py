"""``labkit mtu``: print the MTU prediction for one head-end/client configuration."""

from __future__ import annotations

import argparse
import json

from labkit import mtu
from labkit.commands import add_format_option
from labkit.errors import EXIT_OK, EXIT_PROBLEM
from labkit.wire import DTLS_VERSION_NAMES, parse_dtls_version


def _dtls_version(text: str) -> str:
    """Any spelling of a DTLS version (``dtls1.2``, ``0xfefd``: see
    :func:`labkit.wire.parse_dtls_version`) as every command spells it; an unknown one is
    passed on for ``choices`` to refuse with the list."""
    code = parse_dtls_version(text)
    return text if code is None else DTLS_VERSION_NAMES[code]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--base-mtu",
        type=int,
        default=mtu.DEFAULT_BASE_MTU,
        help="client NIC MTU, X-CSTP-Base-MTU (default %(default)s)",
    )
    p.add_argument(
        "--tcpmss",
        type=int,
        default=mtu.DEFAULT_TCPMSS,
        help="ASA 'sysopt connection tcpmss' (default %(default)s)",
    )
    p.add_argument(
        "--tls-cipher", default=mtu.DEFAULT_CIPHER, help="CSTP TLS suite (default %(default)s)"
    )
    p.add_argument(
        "--dtls-cipher", default=mtu.DEFAULT_CIPHER, help="DTLS suite (default %(default)s)"
    )
    p.add_argument(
        "--tls-version",
        default="1.2",
        choices=mtu.TLS_VERSIONS,
        help="CSTP TLS version (default %(default)s)",
    )
    p.add_argument(
        "--dtls-version",
        default="0x0100",
        type=_dtls_version,
        choices=mtu.DTLS_VERSIONS,
        help="0x0100 is AnyConnect's legacy DTLS (default %(default)s)",
    )
    p.add_argument(
        "--anyconnect-mtu",
        type=int,
        default=None,
        metavar="N",
        help="group-policy 'anyconnect mtu N' cap",
    )
    p.add_argument("--no-dtls", action="store_true", help="DTLS disabled on the head-end")
    p.add_argument(
        "--df-bit-ignore", action="store_true", help="'anyconnect ssl df-bit-ignore enable' set"
    )
    p.add_argument("--ipv6", action="store_true", help="inner traffic is IPv6 (MSS = MTU - 60)")
    add_format_option(p, "the prediction")


def config_from_args(args: argparse.Namespace) -> mtu.TunnelConfig:
    return mtu.TunnelConfig(
        base_mtu=args.base_mtu,
        tcpmss=args.tcpmss,
        tls_cipher=mtu.cipher(args.tls_cipher).name,
        dtls_cipher=mtu.cipher(args.dtls_cipher).name,
        tls_version=args.tls_version,
        dtls_version=args.dtls_version,
        anyconnect_mtu=args.anyconnect_mtu,
        ipv6=args.ipv6,
        dtls_enabled=not args.no_dtls,
        df_bit_ignore=args.df_bit_ignore,
    )


def render_text(p: mtu.Prediction) -> str:
    c = p.config
    ip = "IPv6" if c.ipv6 else "IPv4"
    lines = [
        f"configuration: base MTU {c.base_mtu}, tcpmss {c.tcpmss}, TLS {c.tls_version} "
        f"{c.tls_cipher}, DTLS {c.dtls_version} {c.dtls_cipher}"
        + (f", anyconnect mtu {c.anyconnect_mtu}" if c.anyconnect_mtu else "")
        + ("" if c.dtls_enabled else ", DTLS disabled")
        + (", df-bit-ignore enabled" if c.df_bit_ignore else ""),
        "",
        f"  TLS (CSTP) MTU, as the ASA computes it  {p.tls_mtu:>5}   tcpmss - 5 TLS - 8 CSTP - MAC",
        f"  TLS (CSTP) MTU, wire-accurate            {p.tls_mtu_wire:>5}   whole record in one {c.tcpmss}-byte segment",
        f"  DTLS MTU                                 {p.dtls_mtu:>5}",
        f"  adapter MTU while DTLS is assumed        {p.adapter_mtu:>5}",
        f"  tunnel MSS ({ip} SYN inside the tunnel) {p.tunnel_mss:>5}",
        "",
    ]
    if p.mismatch:
        lines.append(f"MISMATCH: {mtu.consequence(p)}")
        lines += ["", "fixes, best first:"]
        lines += [f"  {line}" for line in mtu.fixes_text(p.fixes)]
    else:
        lines.append(mtu.consequence(p))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    prediction = mtu.predict(config_from_args(args))
    if args.format == "json":
        print(json.dumps(prediction.to_json(), indent=2))
    else:
        print(render_text(prediction))
    # Exit 1 on a mismatch, like `advise` at risk: scripts test the exit code, not the text.
    return EXIT_PROBLEM if prediction.mismatch else EXIT_OK
