"""Write a deterministic, realistic mixed capture for the analyzer benchmark, with its truth.

    python -m benchmarks.generate -o /tmp/bench.pcap                 # 1 M packets, ~0.9 GB
    python -m benchmarks.generate -o /tmp/bench.pcapng --packets 50000
    python -m benchmarks.generate -o /tmp/big.pcap --size 5g

Conversations (see :mod:`benchmarks.traffic`) start at exponential intervals and run
concurrently; a heap merges their packets in time order. The same seed gives the same
bytes. Next to the capture goes ``FILE.truth.json``: the facts the generator put in
(SYNs by MSS, ICMP 3/4 by MTU, DF packets over the tunnel MTU, DTLS ClientHellos and
answered flows, TLS ClientHellos, retransmissions), counted from the packets written.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import itertools
import json
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from benchmarks.traffic import (
    ADAPTER_MTU,
    MS,
    SEC,
    TUNNEL_MSS,
    TUNNEL_MTU,
    Context,
    DtlsPlan,
    Pkt,
    PmtuEvent,
    TcpPlan,
    Truth,
    arp_exchange,
    dns_lookup,
    dtls_session,
    tls_download,
)
from benchmarks.wire import Host, PcapngWriter, PcapWriter
from labkit.errors import EXIT_USAGE, LabkitError, UsageError
from labkit.fileio import atomic_output

HEADEND_ADDRESS = "203.0.113.10"  # the ASA's outside address
HEADEND = Host.v4(*map(int, HEADEND_ADDRESS.split(".")))
ASA_INSIDE = Host.v4(172, 16, 0, 1)  # sends ICMP 3/4 with the TLS tunnel MTU
ROUTERS = {1400: Host.v4(172, 16, 0, 2), 1280: Host.v4(172, 16, 0, 3)}  # other narrow links
RESOLVER = Host.v4(10, 0, 0, 53)
GATEWAY = Host.v4(10, 0, 0, 1)

CLIENT_MSS = ((TUNNEL_MSS, 50), (1460, 20), (1452, 10), (1360, 10), (536, 5), (1380, 5))
SERVER_MSS = ((1460, 80), (1380, 10), (1452, 10))
OUTER_CLIENT_MSS = ((1460, 60), (1452, 20), (1360, 15), (1380, 5))
HEADEND_MSS = 1380  # `sysopt connection tcpmss` default
DTLS_VERSIONS = ((0x0100, 70), (0xFEFD, 20), (0xFEFF, 10))
MEAN_ARRIVAL_US = 8 * MS


def _pick(ctx: Context, table: tuple[tuple[int, int], ...]) -> int:
    values, weights = zip(*table)
    return ctx.rng.choices(values, weights)[0]


def _vlan(ctx: Context) -> int | None:
    return ctx.rng.choice((10, 20, 30)) if ctx.rng.random() < 0.15 else None


def _port(ctx: Context) -> int:
    return ctx.rng.randrange(32768, 61000)


def inner_download(ctx: Context, t0: int, event: str | None = None) -> list[Iterator[Pkt]]:
    """A download inside the tunnel; ``event`` (else drawn at random) is what the path does
    to its big segments: "icmp" (the head-end's ICMP 3/4, MTU 1347), "blackhole" (the same,
    ICMP filtered), "router" (another narrow hop, a Linux-style long quote) or nothing."""
    rng = ctx.rng
    cmss, smss = _pick(ctx, CLIENT_MSS), _pick(ctx, SERVER_MSS)
    if event is None:
        roll = rng.random()
        if cmss == TUNNEL_MSS:
            event = "icmp" if roll < 0.3 else "blackhole" if roll < 0.38 else None
        elif roll < 0.15:
            event = "router"
    elif event in ("icmp", "blackhole"):
        cmss, smss = TUNNEL_MSS, 1460
    else:
        cmss, smss = 1460, 1460
    size = min(cmss, smss)
    pmtu = None
    if event == "icmp" and size + 40 > ctx.tunnel_mtu:
        pmtu = PmtuEvent(ctx.tunnel_mtu, ASA_INSIDE)
    elif event == "blackhole" and size + 40 > ctx.tunnel_mtu:
        pmtu = PmtuEvent(ctx.tunnel_mtu, None, retries=rng.randrange(3, 7))
    elif event == "router":
        mtu = rng.choice([m for m in ROUTERS if m < size + 40] or [0])
        pmtu = PmtuEvent(mtu, ROUTERS[mtu], quote=548) if mtu else None
    plan = TcpPlan(
        ctx.host(10, 10),
        ctx.host(172, 16),
        _port(ctx),
        443,
        _vlan(ctx),
        cmss,
        smss,
        rtt=rng.randrange(10 * MS, 80 * MS),
        gap=rng.randrange(100, 1500),
        segments=rng.randrange(50, 2500),
        sized=True,
        loss=0.002,
        pmtu=pmtu,
    )
    return [tls_download(ctx, t0, plan)]


def _dtls_plan(
    ctx: Context, client: Host, rtt: int, dtls: tuple[int, bool] | None = None
) -> DtlsPlan:
    """A DTLS attempt; ``dtls`` = (version, answered) when not drawn at random."""
    rng = ctx.rng
    version, answered = dtls or (_pick(ctx, DTLS_VERSIONS), rng.random() < 0.6)
    return DtlsPlan(
        client,
        HEADEND,
        _port(ctx),
        443,
        None,
        version,
        answered=answered,
        completed=rng.random() < 0.9,
        attempts=rng.randrange(3, 6),
        early_retry=rng.random() < 0.15,
        rtt=rtt,
        records=rng.randrange(10, 300),
    )


def outer_session(
    ctx: Context, t0: int, dtls: tuple[int, bool] | None = None
) -> list[Iterator[Pkt]]:
    """An AnyConnect session as the head-end's outside sees it: TLS (CSTP), then DTLS."""
    rng = ctx.rng
    client = ctx.host(100, 64)
    rtt = rng.randrange(20 * MS, 120 * MS)
    plan = TcpPlan(
        client,
        HEADEND,
        _port(ctx),
        443,
        None,
        _pick(ctx, OUTER_CLIENT_MSS),
        HEADEND_MSS,
        rtt=rtt,
        gap=rng.randrange(200, 3000),
        segments=rng.randrange(50, 1500),
        sized=False,
        loss=0.001,
        outer=True,
    )
    flows = [tls_download(ctx, t0, plan)]
    if dtls or rng.random() < 0.85:  # the rest never try DTLS (dtls-absent)
        flows.append(dtls_session(ctx, t0 + 4 * rtt + 50 * MS, _dtls_plan(ctx, client, rtt, dtls)))
    return flows


def dtls_only(ctx: Context, t0: int, dtls: tuple[int, bool] | None = None) -> list[Iterator[Pkt]]:
    """A DTLS attempt whose TLS session began before the capture did."""
    return [
        dtls_session(
            ctx, t0, _dtls_plan(ctx, ctx.host(100, 64), ctx.rng.randrange(20 * MS, 120 * MS), dtls)
        )
    ]


def https_short(ctx: Context, t0: int) -> list[Iterator[Pkt]]:
    rng = ctx.rng
    plan = TcpPlan(
        ctx.host(10, 10),
        ctx.host(172, 16),
        _port(ctx),
        443,
        _vlan(ctx),
        _pick(ctx, CLIENT_MSS),
        _pick(ctx, SERVER_MSS),
        rtt=rng.randrange(5 * MS, 60 * MS),
        gap=rng.randrange(100, 1000),
        segments=rng.randrange(1, 8),
        sized=False,
    )
    return [tls_download(ctx, t0, plan)]


def dns(ctx: Context, t0: int) -> list[Iterator[Pkt]]:
    return [dns_lookup(ctx, t0, ctx.host(10, 10), RESOLVER, _vlan(ctx))]


def arp_noise(ctx: Context, t0: int) -> list[Iterator[Pkt]]:
    asker = Host.v4(10, 0, 0, ctx.rng.randrange(2, 250))
    return [arp_exchange(ctx, t0, asker, GATEWAY, _vlan(ctx))]


Spawner = Callable[[Context, int], list[Iterator[Pkt]]]
MIX: tuple[tuple[Spawner, float], ...] = (
    (inner_download, 0.04),
    (outer_session, 0.012),
    (dtls_only, 0.03),
    (https_short, 0.25),
    (dns, 0.45),
    (arp_noise, 0.218),
)


#: Conversations every capture opens with, so that even a few thousand packets hold each
#: fact the benchmark checks: the customer's problem is in the capture they send.
PRELUDE: tuple[Spawner, ...] = (
    partial(outer_session, dtls=(0x0100, False)),
    partial(inner_download, event="icmp"),
    partial(inner_download, event="blackhole"),
    partial(dtls_only, dtls=(0xFEFD, True)),
    partial(inner_download, event="router"),
    partial(dtls_only, dtls=(0xFEFF, True)),
)


def packets(ctx: Context) -> Iterator[Pkt]:
    """Every conversation's packets merged in time order, endlessly; the caller stops."""
    spawners, weights = zip(*MIX)
    heap: list[tuple[int, int, Pkt, Iterator[Pkt]]] = []
    order = itertools.count()
    prelude = list(PRELUDE)
    t_next = 0
    while True:
        while not heap or t_next <= heap[0][0]:
            spawn = prelude.pop(0) if prelude else ctx.rng.choices(spawners, weights)[0]
            for flow in spawn(ctx, t_next):
                first = next(flow, None)
                if first is not None:
                    heapq.heappush(heap, (first.ts, next(order), first, flow))
            t_next += int(ctx.rng.expovariate(1 / MEAN_ARRIVAL_US)) + 1
        _, _, pkt, flow = heapq.heappop(heap)
        yield pkt
        following = next(flow, None)
        if following is not None:
            heapq.heappush(heap, (following.ts, next(order), following, flow))


EPOCH_US = 1_767_225_600 * SEC  # 2026-01-01 00:00:00 UTC: fixed, so files are reproducible


def generate(
    out: Path, *, fmt: str, count: int | None, size: int | None, seed: int, tunnel_mtu: int
) -> dict[str, object]:
    """Write the capture to ``out``; return the truth document (not yet written)."""
    ctx = Context(seed, tunnel_mtu)
    truth = Truth()
    started = time.perf_counter()
    written = n = last_ts = 0
    with open(out, "wb", buffering=1 << 20) as f:
        writer = PcapngWriter(f) if fmt == "pcapng" else PcapWriter(f)
        written = f.tell()
        for pkt in packets(ctx):
            written += writer.write(EPOCH_US + pkt.ts, pkt.frame)
            if pkt.tags:
                truth.add(pkt.tags)
            n += 1
            last_ts = pkt.ts
            if (count is not None and n >= count) or (size is not None and written >= size):
                break
    return {
        "file": str(out),
        "generator": generator_version(),
        "format": fmt,
        "packets": n,
        "bytes": written,
        "seed": seed,
        "duration_s": round(last_ts / SEC, 3),
        "tunnel_mtu": tunnel_mtu,
        "adapter_mtu": ADAPTER_MTU,
        "generate_s": round(time.perf_counter() - started, 2),
        "truth": truth.to_json(),
        "definitions": (Truth.__doc__ or "").strip(),
    }


_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}


def parse_size(text: str) -> int:
    """'700m', '5g', '123456' -> bytes (decimal units, as disk sizes are quoted)."""
    t = text.strip().lower().removesuffix("b")
    unit = t[-1:] if t[-1:] in _UNITS and not t[-1:].isdigit() else ""
    try:
        value = float(t[:-1] if unit else t) * _UNITS[unit]
    except ValueError:
        raise UsageError(f"size {text!r}: expected a number with k, m or g, e.g. 5g") from None
    if value < 1:
        raise UsageError(f"size {text!r}: must be positive")
    return int(value)


def size_arg(text: str) -> int:
    """:func:`parse_size` for argparse: a bad size is a usage error, not a traceback."""
    try:
        return parse_size(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def generator_version() -> str:
    """A digest of the generator's source: a capture is reused only by the same generator."""
    digest = hashlib.sha256()
    for name in ("generate.py", "traffic.py", "wire.py"):
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()[:12]


def truth_path(capture: Path) -> Path:
    return capture.with_name(capture.name + ".truth.json")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, type=Path, help="capture file to write")
    p.add_argument(
        "--format",
        choices=("pcap", "pcapng"),
        help="file format (default: from the extension, else pcap)",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--packets", type=int, help="number of packets (default 1000000)")
    group.add_argument("--size", type=size_arg, help="stop at this file size instead, e.g. 5g")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument(
        "--tunnel-mtu",
        type=int,
        default=TUNNEL_MTU,
        help=f"the TLS tunnel MTU that DF packets are counted against (default {TUNNEL_MTU})",
    )
    p.add_argument("--force", action="store_true", help="overwrite existing files")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.generate", description=__doc__.split("\n")[0]
    )
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        count = args.packets if args.size is None else None
        if args.size is None and count is None:
            count = 1_000_000
        if count is not None and count < 1:
            raise UsageError(f"--packets {count}: must be at least 1")
        fmt = args.format or ("pcapng" if args.output.suffix == ".pcapng" else "pcap")
        sidecar = truth_path(args.output)
        with (
            atomic_output(args.output, force=args.force) as tmp,
            atomic_output(sidecar, force=args.force) as tmp_truth,
        ):
            doc = generate(
                tmp,
                fmt=fmt,
                count=count,
                size=args.size,
                seed=args.seed,
                tunnel_mtu=args.tunnel_mtu,
            )
            doc["file"] = str(args.output)
            tmp_truth.write_text(json.dumps(doc, indent=2) + "\n")
    except LabkitError as exc:
        sys.stderr.write(f"generate: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("generate: interrupted\n")
        return 130
    print(
        f"wrote {args.output} ({doc['packets']} packets, {doc['bytes'] / 1e6:.1f} MB, {fmt}) "
        f"in {doc['generate_s']} s; truth in {sidecar}"
    )
    print(json.dumps(doc["truth"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
