"""``labkit demo``: the seed's case end to end on bundled data, for a first look.

Prints the MTU prediction for the seed's configuration (tcpmss 1380, AES128-SHA, base MTU
1500) and writes the packets of the failure -- the inner SYN with MSS 1378, the server's
1418-byte DF segment and the head-end's ICMP 3/4 with next-hop MTU 1347 -- to a pcapng file
a person can open in Wireshark.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from labkit import mtu
from labkit.commands.mtu import render_text
from labkit.errors import EXIT_OK
from labkit.fileio import atomic_output


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output-dir", metavar="DIR",
                   help="folder for the demo's files (default: a new temporary folder)")
    p.add_argument("--force", action="store_true", help="overwrite the demo's files in DIR")


def _failure_packets(prediction: mtu.Prediction) -> list:
    from labkit import craft  # Scapy: imported only when packets are written

    syn = craft.syn(mss=prediction.tunnel_mss, time=craft.EPOCH)
    big = craft.oversized(size=prediction.adapter_mtu, time=craft.EPOCH + 0.05)
    icmp = craft.icmp_frag_needed(big, mtu=prediction.tls_mtu, time=craft.EPOCH + 0.0501)
    return [craft.ether(p) for p in (syn, big, icmp)]


def run(args: argparse.Namespace) -> int:
    out_dir = Path(args.output_dir) if args.output_dir else Path(tempfile.mkdtemp(prefix="labkit-demo-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    prediction = mtu.predict(mtu.TunnelConfig())
    print("== the seed's configuration: labkit mtu")
    print(render_text(prediction))
    print()

    from scapy.utils import wrpcapng

    target = out_dir / "failure-packets.pcapng"
    packets = _failure_packets(prediction)
    with atomic_output(target, force=args.force) as tmp:
        wrpcapng(str(tmp), packets)
    print(f"== the packets of the failure: {target}")
    for pkt in packets:
        print(f"  {pkt.summary()}")
    return EXIT_OK
