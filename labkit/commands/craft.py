"""``labkit craft``: write the packets of the failure (or of a test) to a pcap/pcapng file.

One subcommand per builder of :mod:`labkit.craft`; the command only parses options, reads
an original packet from a capture when asked, and writes the file through
:func:`labkit.fileio.atomic_output`. Every number it does not get on the command line comes
from the MTU model via the builders. Each packet is printed as a one-line Scapy summary.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from labkit import mtu
from labkit.errors import EXIT_OK, InputError, UsageError
from labkit.fileio import atomic_output, binary_stdout, check_output_path, is_stdout

if TYPE_CHECKING:
    from scapy.packet import Packet

MAX_COUNT = 10000  # a crafted file is for a lab or a test, not a flood
SUFFIXES = (".pcap", ".pcapng")

_HELP = {
    "syn": "TCP SYN announcing an MSS (default: the tunnel MSS of the MTU model)",
    "oversized": "an IP packet of exactly --size bytes with DF set (default: the adapter MTU)",
    "icmp-frag-needed": "ICMP 3/4 (ICMPv6 Packet Too Big for IPv6) quoting an original packet",
    "dtls-hello": "a DTLS ClientHello (AnyConnect legacy 0x0100, DTLS 1.0 or 1.2)",
    "tls-hello": "a TLS 1.2 ClientHello with SNI",
    "cstp": "a cleartext CSTP packet in a TCP segment (lab/dissector tests only)",
}


def _int(text: str) -> int:
    """Decimal or 0x-prefixed integers (ports, sizes, MTUs, CSTP types)."""
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None


def _hex(text: str) -> bytes:
    cleaned = text.replace(":", "").replace(" ", "")
    cleaned = cleaned[2:] if cleaned.lower().startswith("0x") else cleaned
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid hex bytes {text!r}") from None


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("addresses, repetition and output")
    g.add_argument("--src", help="source address (default: a documentation address for the role)")
    g.add_argument("--dst", help="destination address")
    g.add_argument("--sport", type=_int, help="source port")
    g.add_argument("--dport", type=_int, help="destination port")
    g.add_argument(
        "--ipv6",
        action="store_true",
        help="use the IPv6 default addresses (implied by IPv6 --src/--dst)",
    )
    g.add_argument("--ttl", type=_int, default=64, help="IP TTL / hop limit (default %(default)s)")
    g.add_argument(
        "--count",
        type=_int,
        default=1,
        help=f"packets to write, 1..{MAX_COUNT}: retransmissions, IP id +1 each "
        "(default %(default)s)",
    )
    g.add_argument(
        "--interval",
        type=float,
        default=1.0,
        help="seconds between repeated packets (default %(default)s)",
    )
    g.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write a .pcap or .pcapng file ('-': pcap on standard output)",
    )
    g.add_argument("--force", action="store_true", help="overwrite an existing output file")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="packet", metavar="PACKET", required=True)
    cfg = mtu.predict(mtu.TunnelConfig())

    s = sub.add_parser("syn", help=_HELP["syn"], description=_HELP["syn"])
    s.add_argument("--mss", type=_int, help=f"MSS option (default {cfg.tunnel_mss})")
    s.add_argument(
        "--mtu",
        type=_int,
        help=f"sender's interface MTU, bounds the MSS (default {cfg.adapter_mtu})",
    )
    _common(s)

    s = sub.add_parser("oversized", help=_HELP["oversized"], description=_HELP["oversized"])
    s.add_argument("--size", type=_int, help=f"IP total length (default {cfg.adapter_mtu})")
    s.add_argument(
        "--proto",
        choices=("tcp", "udp", "icmp"),
        default="tcp",
        help="transport of the oversized packet (default %(default)s)",
    )
    s.add_argument("--no-df", action="store_true", help="leave the DF bit clear")
    _common(s)

    s = sub.add_parser(
        "icmp-frag-needed",
        help=_HELP["icmp-frag-needed"],
        description=_HELP["icmp-frag-needed"] + "; --src is the router that "
        "sends it (default: the head-end's inside interface)",
    )
    s.add_argument("--mtu", type=_int, help=f"next-hop MTU (default {cfg.tls_mtu}, the TLS MTU)")
    orig = s.add_mutually_exclusive_group()
    orig.add_argument(
        "--original",
        metavar="FILE[:FRAME]",
        help="quote this frame of a capture (default frame: the first IP packet)",
    )
    orig.add_argument(
        "--original-size",
        type=_int,
        help=f"quote a crafted DF packet of this size (default {cfg.adapter_mtu})",
    )
    s.add_argument(
        "--original-proto",
        choices=("tcp", "udp", "icmp"),
        default="tcp",
        help="protocol of the crafted original, sent from --dst to the tunnel "
        "client with --sport/--dport (default %(default)s)",
    )
    _common(s)

    s = sub.add_parser("dtls-hello", help=_HELP["dtls-hello"], description=_HELP["dtls-hello"])
    s.add_argument("--version", default="0x0100", help="DTLS version: 0x0100 (default), 1.0 or 1.2")
    s.add_argument("--port", type=_int, dest="port", help="DTLS port (default 443); as --dport")
    s.add_argument("--session-id", type=_hex, help="hex; AnyConnect's X-DTLS-Session-ID")
    s.add_argument("--cookie", type=_hex, default=b"", help="hex; the HelloVerifyRequest cookie")
    s.add_argument(
        "--cipher",
        action="append",
        help="suite to offer: OpenSSL name or 0xNNNN "
        "(repeatable; default: the model's DTLS cipher for 0x0100)",
    )
    _common(s)

    s = sub.add_parser("tls-hello", help=_HELP["tls-hello"], description=_HELP["tls-hello"])
    s.add_argument("--sni", help="server name (the head-end's host name)")
    _common(s)

    s = sub.add_parser(
        "cstp",
        help=_HELP["cstp"],
        description=_HELP["cstp"] + ". Real CSTP "
        "travels inside TLS; a cleartext one exercises dissectors and analyzers.",
    )
    s.add_argument(
        "--type",
        default="DATA",
        help="DATA, DPD-REQ, DPD-RESP, DISCONNECT, "
        "KEEPALIVE, COMPRESSED, TERMINATE or a number (default DATA)",
    )
    s.add_argument("--payload", type=_hex, help="hex payload (default: DATA carries an ICMP echo)")
    _common(s)


def _read_original(spec: str) -> tuple[Packet, str]:
    """The IP packet of ``FILE[:FRAME]`` (frames are 1-based and numbered as in Wireshark),
    read with labkit's capture reader (pcap, pcapng, either gzip-compressed): its outermost
    IP header on, where the analyzer's reading of the link layer finds it."""
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6

    from labkit.analyze.decode import locate
    from labkit.pcapio.reader import open_capture

    path, frame = spec, None
    head, sep, tail = spec.rpartition(":")
    if sep and tail.isascii() and tail.isdigit():  # ASCII: '²'.isdigit() is true, int('²') fails
        if len(tail) > 9:
            raise UsageError(f"--original {spec[:80]}: frame number too large")
        path, frame = head, int(tail)
        if frame < 1:
            raise UsageError(f"--original {spec}: frame numbers start at 1")
    if not Path(path).is_file():
        raise InputError(f"--original {path}: no such file")
    try:
        cap = open_capture(path)
    except InputError as exc:
        raise InputError(f"--original {exc}") from None
    with cap:
        for rec in cap.records():
            if frame is not None and rec.frame < frame:
                continue
            off, version, _why = locate(rec.data, rec.linktype, outermost=True)
            if version:
                return (IP if version == 4 else IPv6)(rec.data[off:]), path
            if rec.frame == frame:
                raise InputError(f"--original {path}: frame {frame} has no IP packet")
    where = f"has fewer than {frame} frames" if frame else "has no IP packet"
    reason = f" (reader: {cap.warnings[0]})" if cap.warnings else ""
    raise InputError(f"--original {path}: {where}{reason}")


class _Flow:
    """The addresses and ports of one subcommand: the options, else the role defaults."""

    def __init__(
        self,
        args: argparse.Namespace,
        src: tuple[str, str],
        dst: tuple[str, str],
        sport: int,
        dport: int,
    ) -> None:
        v6 = args.ipv6 or any(a is not None and ":" in a for a in (args.src, args.dst))
        self.src: str = args.src or src[v6]
        self.dst: str = args.dst or dst[v6]
        self.sport = _port(args.sport, sport)
        self.dport = _port(args.dport, dport)


def _port(value: int | None, default: int) -> int:
    if value is None:
        return default
    if not 0 <= value <= 0xFFFF:
        raise UsageError(f"port {value}: expected 0..65535")
    return value


Builder = Callable[[int, float], "Packet"]  # (IP id, capture time) -> packet


def _builder(args: argparse.Namespace) -> tuple[Builder, list[str]]:
    """The chosen subcommand as a function of (IP id, time), and the files it reads."""
    from labkit import craft as c

    ttl = args.ttl
    tunnel_client, server = (c.TUNNEL_CLIENT, c.TUNNEL_CLIENT6), (c.SERVER, c.SERVER6)
    client, headend = (c.CLIENT, c.CLIENT6), (c.HEADEND, c.HEADEND6)
    if args.packet == "syn":
        f = _Flow(args, tunnel_client, server, c.CLIENT_PORT, c.SERVER_PORT)
        return (
            lambda i, t: c.syn(
                f.src, f.dst, f.sport, f.dport, mss=args.mss, mtu=args.mtu, ttl=ttl, ip_id=i, time=t
            )
        ), []
    if args.packet == "oversized":
        f = _Flow(args, server, tunnel_client, c.SERVER_PORT, c.CLIENT_PORT)
        return (
            lambda i, t: c.oversized(
                f.src,
                f.dst,
                f.sport,
                f.dport,
                size=args.size,
                proto=args.proto,
                df=not args.no_df,
                ttl=ttl,
                ip_id=i,
                time=t,
            )
        ), []
    if args.packet == "icmp-frag-needed":
        inputs: list[str] = []
        if args.original:
            original, path = _read_original(args.original)
            inputs.append(path)
        else:
            # The crafted original goes from the server (the ICMP's destination) to the
            # tunnel client, on --sport/--dport; the ICMP comes from --src, a router.
            f = _Flow(
                args, (c.HEADEND_INSIDE, c.HEADEND_INSIDE6), server, c.SERVER_PORT, c.CLIENT_PORT
            )
            receiver = tunnel_client[c.is_ipv6(f.dst)]
            original = c.oversized(
                f.dst,
                receiver,
                f.sport,
                f.dport,
                size=args.original_size,
                proto=args.original_proto,
            )
        return (
            lambda i, t: c.icmp_frag_needed(
                original, args.mtu, src=args.src, dst=args.dst, ttl=ttl, ip_id=i, time=t
            )
        ), inputs
    if args.packet == "dtls-hello":
        if args.port is not None and args.dport is not None and args.port != args.dport:
            raise UsageError(f"--port {args.port} and --dport {args.dport} disagree")
        if args.port is not None:
            args.dport = args.port
        f = _Flow(args, client, headend, c.CLIENT_PORT, c.DTLS_PORT)
        suites = [_suite(name) for name in args.cipher] if args.cipher else None
        version = c.dtls_version(args.version)
        return (
            lambda i, t: c.dtls_client_hello(
                f.src,
                f.dst,
                f.sport,
                f.dport,
                version=version,
                session_id=args.session_id,
                cookie=args.cookie,
                cipher_suites=suites,
                ttl=ttl,
                ip_id=i,
                time=t,
            )
        ), []
    if args.packet == "tls-hello":
        f = _Flow(args, client, headend, c.CLIENT_PORT, c.HTTPS_PORT)
        return (
            lambda i, t: c.tls_client_hello(
                f.src, f.dst, f.sport, f.dport, sni=args.sni, ttl=ttl, ip_id=i, time=t
            )
        ), []
    f = _Flow(args, client, headend, c.CLIENT_PORT, c.HTTPS_PORT)  # cstp
    ptype = c.cstp_type(args.type)
    return (
        lambda i, t: c.cstp(
            ptype,
            args.payload,
            src=f.src,
            dst=f.dst,
            sport=f.sport,
            dport=f.dport,
            ttl=ttl,
            ip_id=i,
            time=t,
        )
    ), []


def _suite(text: str) -> int | str:
    """A suite given as ``0xNNNN`` or by its OpenSSL name."""
    if text.lower().startswith("0x"):
        try:
            return int(text, 16)
        except ValueError:
            raise UsageError(f"--cipher {text!r}: not a hex suite code") from None
    return text


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.count <= MAX_COUNT:
        raise UsageError(f"--count {args.count}: expected 1..{MAX_COUNT}")
    if args.interval < 0:
        raise UsageError(f"--interval {args.interval}: expected a non-negative number of seconds")
    if not 1 <= args.ttl <= 255:
        raise UsageError(f"--ttl {args.ttl}: expected 1..255")
    stream = is_stdout(args.output)
    if not stream and args.output is not None:
        if Path(args.output).suffix.lower() not in SUFFIXES:
            raise UsageError(f"{args.output}: expected a .pcap or .pcapng file name")
        check_output_path(args.output, force=args.force)  # fail before any work
    out = binary_stdout("a pcap capture") if stream else None

    from labkit import craft

    build, inputs = _builder(args)
    packets = [
        craft.ether(build(1 + i, craft.EPOCH + i * args.interval)) for i in range(args.count)
    ]
    if out is not None:  # `-o -`: pcap on standard output (tcpdump -r - reads it)
        _write_frames(out, packets, pcapng=False)
        out.flush()
    elif args.output is not None:
        _write(Path(args.output), packets, force=args.force, inputs=inputs)
    for pkt in packets:
        print(pkt.summary(), file=sys.stderr if stream else sys.stdout)
    return EXIT_OK


def _write(path: Path, packets: list[Packet], *, force: bool, inputs: list[str]) -> None:
    with atomic_output(path, force=force, inputs=inputs) as tmp, open(tmp, "wb") as fh:
        _write_frames(fh, packets, pcapng=path.suffix.lower() == ".pcapng")


def _write_frames(out: BinaryIO, packets: list[Packet], *, pcapng: bool) -> None:
    """The Ethernet frames through labkit's capture writer, at their Scapy times."""
    from labkit.pcapio.writer import PcapFileWriter, PcapngFileWriter
    from labkit.wire import LINKTYPE_ETHERNET

    if pcapng:
        ng = PcapngFileWriter(out, application="labkit craft")
        ng.interface(LINKTYPE_ETHERNET)
        for pkt in packets:
            ng.write(round(float(pkt.time) * 1e6), bytes(pkt))
    else:
        pcap = PcapFileWriter(out, LINKTYPE_ETHERNET)
        for pkt in packets:
            pcap.write(round(float(pkt.time) * 1e6), bytes(pkt))
