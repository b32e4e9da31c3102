"""Write a deterministic, realistic mixed capture for the analyzer benchmark, with its truth.

    python -m benchmarks.generate -o /tmp/bench.pcap                 # 1 M packets, ~0.9 GB
    python -m benchmarks.generate -o /tmp/bench.pcapng --packets 50000
    python -m benchmarks.generate -o /tmp/big.pcap --size 5g
    python -m benchmarks.generate -o /tmp/he.pcap --mix headend --packets 200000

Conversations (see :mod:`benchmarks.traffic`; which ones and how often: the mix,
:mod:`benchmarks.mixes`) start at exponential intervals and run
concurrently; a heap merges their packets in time order. The same seed gives the same
bytes. Next to the capture goes ``FILE.truth.json``: the facts the generator put in
(SYNs by MSS, ICMP 3/4 by MTU, DF packets over the tunnel MTU, DTLS ClientHellos and
answered flows, TLS ClientHellos, retransmissions), counted from the packets written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from benchmarks.mixes import MIXES, packets
from benchmarks.traffic import ADAPTER_MTU, SEC, TUNNEL_MTU, Context, Truth
from labkit.errors import EXIT_USAGE, LabkitError, UsageError
from labkit.fileio import atomic_output
from labkit.pcapio import writer as writer_module
from labkit.pcapio.writer import PcapFileWriter, PcapngFileWriter
from labkit.wire import LINKTYPE_ETHERNET
from labkit.wire import checksum as checksum_module

EPOCH_US = 1_767_225_600 * SEC  # 2026-01-01 00:00:00 UTC: fixed, so files are reproducible


def generate(
    out: Path,
    *,
    fmt: str,
    count: int | None,
    size: int | None,
    seed: int,
    tunnel_mtu: int,
    mix: str = "bulk",
) -> dict[str, object]:
    """Write the capture to ``out``; return the truth document (not yet written)."""
    ctx = Context(seed, tunnel_mtu)
    truth = Truth()
    started = time.perf_counter()
    written = n = last_ts = 0
    with open(out, "wb", buffering=1 << 20) as f:
        if fmt == "pcapng":
            writer: PcapFileWriter | PcapngFileWriter = PcapngFileWriter(
                f, application="labkit benchmarks/generate.py"
            )
            writer.interface(LINKTYPE_ETHERNET)
        else:
            writer = PcapFileWriter(f, LINKTYPE_ETHERNET)
        written = f.tell()
        for pkt in packets(ctx, MIXES[mix]):
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
        "mix": mix,
        "mix_summary": MIXES[mix].summary,
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


#: What decides a generated capture's bytes: the generator's files and the labkit modules
#: it writes through (the checksums and the capture writer).
SOURCES = ("generate.py", "mixes.py", "traffic.py", "wire.py")


def generator_version() -> str:
    """A digest of the generator's source: a capture is reused only by the same generator."""
    digest = hashlib.sha256()
    paths = [Path(__file__).parent / n for n in SOURCES]
    for path in (*paths, Path(writer_module.__file__), Path(checksum_module.__file__)):
        digest.update(path.read_bytes())
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
    p.add_argument(
        "--mix",
        choices=tuple(MIXES),
        default="bulk",
        help="the traffic mix (benchmarks/mixes.py; default bulk)",
    )
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
                mix=args.mix,
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
        f"wrote {args.output} ({args.mix} mix, {doc['packets']} packets, {doc['bytes'] / 1e6:.1f} MB, {fmt}) "
        f"in {doc['generate_s']} s; truth in {sidecar}"
    )
    print(json.dumps(doc["truth"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
