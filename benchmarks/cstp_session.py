"""Write a GB-scale AnyConnect TLS (CSTP) session and its NSS key log, with what it carries.

    python -m benchmarks.cstp_session -o /tmp/cstp.pcap --size 1g   # + cstp.pcap.keylog

For the full-featured run (``labkit analyze --keylog --plot``, :mod:`benchmarks.fullrun`):
the decryptor needs a session whose plaintext is known packet for packet, as
``tests/data/make_cstp_captures.py`` makes for the tests, but a thousand times larger. That
script captures a loopback exchange with tcpdump; here both ends are OpenSSL through Python's
``ssl`` on memory BIOs (no socket, no network, no capture to lose packets), TLS 1.2 with
AES128-SHA as the tests' capture, the client writing the key log (``keylog_filename``). The
TLS byte streams are cut into TCP segments of the head-end's MSS 1380 with the benchmark
generator's frame builders and written as a pcap with the head-end's ACKs.

Inside: the CONNECT request and the head-end's ``200 CONNECTED`` (X-CSTP-MTU 1347, X-DTLS-MTU
1418), then a download through the tunnel: 1347-byte IPv4 DF packets to the client in CSTP
DATA, one 52-byte ACK packet back for every four, a DPD exchange every 10 000 packets. The
truth (``FILE.truth.json``): CSTP packets by type each way, the largest DATA each way, TLS
records each way.
"""

from __future__ import annotations

import argparse
import datetime
import json
import socket
import ssl
import struct
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.generate import EPOCH_US, size_arg, truth_path
from benchmarks.mixes import HEADEND, HEADEND_MSS
from benchmarks.traffic import ACK, PSH, SYN, Context, TcpConn, syn_options
from benchmarks.wire import Host, Payload
from labkit.errors import EXIT_USAGE, LabkitError
from labkit.fileio import atomic_output
from labkit.mtu import dtls_mtu, tls_mtu_asa
from labkit.pcapio.writer import PcapFileWriter
from labkit.wire import LINKTYPE_ETHERNET

CLIENT = Host.v4(198, 51, 100, 23)
CLIENT_PORT = 50123
TLS_MTU = tls_mtu_asa()  # 1347: the head-end's X-CSTP-MTU, the largest packet to the client
DTLS_MTU = dtls_mtu()  # 1418: its X-DTLS-MTU
ACK_PACKET = 52  # an inner TCP ACK with timestamps
ACK_EVERY = 4  # inner packets to the client per ACK back: keeps the records under labkit's bound
DPD_EVERY = 10_000
SEGMENT_GAP_US = 100  # about 110 Mbit/s of tunnel traffic

CONNECT_REQUEST = (
    "CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\n"
    "Host: vpn.example.test\r\n"
    "User-Agent: Open AnyConnect VPN Agent v9.12\r\n"
    "X-CSTP-Version: 1\r\n"
    "X-CSTP-Base-MTU: 1500\r\n"
    "X-CSTP-MTU: 1406\r\n"
    "X-DTLS-Master-Secret: " + "A5" * 48 + "\r\n"
    "X-DTLS-CipherSuite: AES256-SHA:AES128-SHA\r\n"
    "\r\n"
)
CONNECT_RESPONSE = (
    "HTTP/1.1 200 CONNECTED\r\n"
    "X-CSTP-Version: 1\r\n"
    "X-CSTP-Address: 192.168.100.10\r\n"
    "X-CSTP-Netmask: 255.255.255.0\r\n"
    "X-DTLS-Session-ID: " + "9b" * 32 + "\r\n"
    "X-DTLS-Port: 443\r\n"
    "X-DTLS-CipherSuite: AES128-SHA\r\n"
    f"X-DTLS-MTU: {DTLS_MTU}\r\n"
    "X-CSTP-Base-MTU: 1500\r\n"
    f"X-CSTP-MTU: {TLS_MTU}\r\n"
    "\r\n"
)
CSTP_TYPES = {0: "DATA", 3: "DPD-REQ", 4: "DPD-RESP"}


def cstp(ptype: int, payload: bytes = b"") -> bytes:
    """A CSTP packet: 'STF' 1, payload length, type, 0 (DESIGN.md section 3)."""
    return b"STF\x01" + struct.pack("!HBB", len(payload), ptype, 0) + payload


def ipv4(size: int, src: str, dst: str) -> bytes:
    """An IPv4/TCP packet of ``size`` bytes with DF set: what the tun device hands CSTP."""
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        size,
        1,
        0x4000,
        64,
        6,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    tcp = struct.pack("!HHIIBBHHH", 443, 50000, 1, 1, 0x50, 0x10, 65535, 0, 0)
    return ip + tcp + bytes(size - len(ip) - len(tcp))


def make_cert(tmp: Path) -> tuple[Path, Path]:
    """A self-signed RSA certificate for the head-end and its key, as PEM files in ``tmp``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vpn.example.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


#: OpenSSL's SSL_OP_NO_ENCRYPT_THEN_MAC (Python's ssl has no name for it): the record layout
#: of TLS 1.2 CBC without RFC 7366, the MAC inside the encryption.
NO_ENCRYPT_THEN_MAC = 1 << 19


def _contexts(
    tmp: Path, keylog: Path, cipher: str, etm: bool, version: ssl.TLSVersion
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(*make_cert(tmp))
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    client.keylog_filename = str(keylog)
    for ctx in (server, client):
        ctx.minimum_version = ctx.maximum_version = version
        ctx.set_ciphers(cipher)
        if not etm:
            ctx.options |= NO_ENCRYPT_THEN_MAC
    return server, client


class _Wire:
    """The two TLS byte streams as TCP segments on the wire, written as they are produced."""

    def __init__(self, writer: PcapFileWriter, ctx: Context) -> None:
        self.writer = writer
        self.conn = TcpConn(ctx, CLIENT, HEADEND, CLIENT_PORT, 443, None, outer=True)
        self.t = 0
        self.bytes = 0
        self.packets = 0
        self._unacked = [0, 0]
        self._pending = [b"", b""]

    def frame(self, frame: bytes) -> None:
        self.bytes += self.writer.write(EPOCH_US + self.t, frame)
        self.packets += 1
        self.t += SEGMENT_GAP_US

    def send(self, side: int, data: bytes, *, push: bool) -> None:
        """``data`` from ``side`` (0 client, 1 head-end) into the byte stream: full segments
        go out at once (a busy sender's TCP coalesces records), the rest with ``push``; the
        other side acknowledges every second segment."""
        pending = self._pending[side] + data
        cut = len(pending) if push else len(pending) - len(pending) % HEADEND_MSS
        for at in range(0, cut, HEADEND_MSS):
            piece = Payload.of(pending[at : min(at + HEADEND_MSS, cut)])
            self.frame(self.conn.segment(side, PSH | ACK, piece)[0])
            self._unacked[side] += 1
            if self._unacked[side] == 2:
                self._unacked[side] = 0
                self.frame(self.conn.segment(1 - side, ACK)[0])
        self._pending[side] = pending[cut:]


def _pump(
    src: ssl.MemoryBIO, dst: ssl.MemoryBIO, wire: _Wire, side: int, push: bool = True
) -> bool:
    """Move what one end's TLS wrote to the other end, through the wire."""
    data = src.read()
    wire.send(side, data, push=push)
    dst.write(data)
    return bool(data)


def generate(
    out: Path,
    keylog: Path,
    size: int,
    *,
    cipher: str = "AES128-SHA",
    etm: bool = True,
    version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
) -> dict[str, object]:
    """Write the session to ``out`` (its key log to ``keylog``) until ``size`` bytes, in TLS
    ``version`` with the OpenSSL suite ``cipher`` (TLS 1.1 needs ``...:@SECLEVEL=0``);
    ``etm``: allow encrypt-then-MAC (RFC 7366), which OpenSSL negotiates for CBC suites unless
    told not to."""
    started = time.perf_counter()
    sent: dict[str, Counter[str]] = {"to-client": Counter(), "to-server": Counter()}
    largest = {"to-client": 0, "to-server": 0}
    with tempfile.TemporaryDirectory() as tmp, open(out, "wb", buffering=1 << 20) as f:
        sctx, cctx = _contexts(Path(tmp), keylog, cipher, etm, version)
        c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
        client = cctx.wrap_bio(c_in, c_out, server_hostname="vpn.example.test")
        server = sctx.wrap_bio(s_in, s_out, server_side=True)
        wire = _Wire(PcapFileWriter(f, LINKTYPE_ETHERNET), Context(1))
        wire.frame(wire.conn.segment(0, SYN, options=syn_options(1460))[0])
        wire.frame(wire.conn.segment(1, SYN | ACK, options=syn_options(HEADEND_MSS))[0])
        wire.frame(wire.conn.segment(0, ACK)[0])
        done = [False, False]
        while not all(done):
            for i, end in enumerate((client, server)):
                if not done[i]:
                    try:
                        end.do_handshake()
                        done[i] = True
                    except ssl.SSLWantReadError:
                        pass
            moved = _pump(c_out, s_in, wire, 0) | _pump(s_out, c_in, wire, 1)
            if not moved and not all(done):
                raise RuntimeError("TLS handshake stalled")
        client.write(CONNECT_REQUEST.encode())
        _pump(c_out, s_in, wire, 0)
        server.write(CONNECT_RESPONSE.encode())
        _pump(s_out, c_in, wire, 1)
        big = cstp(0, ipv4(TLS_MTU, "192.168.10.20", "192.168.100.10"))
        small = cstp(0, ipv4(ACK_PACKET, "192.168.100.10", "192.168.10.20"))
        n = 0
        while wire.bytes < size:
            n += 1
            if n % DPD_EVERY == 0:
                client.write(cstp(3))
                _pump(c_out, s_in, wire, 0)
                server.write(cstp(4))
                _pump(s_out, c_in, wire, 1)
                sent["to-server"]["DPD-REQ"] += 1
                sent["to-client"]["DPD-RESP"] += 1
            server.write(big)
            _pump(s_out, c_in, wire, 1, push=n % ACK_EVERY == 0)
            sent["to-client"]["DATA"] += 1
            largest["to-client"] = TLS_MTU
            if n % ACK_EVERY == 0:
                client.write(small)
                _pump(c_out, s_in, wire, 0)
                sent["to-server"]["DATA"] += 1
                largest["to-server"] = ACK_PACKET
        wire.send(1, b"", push=True)  # the head-end's last partial segment
        records = {d: sum(c.values()) + 1 for d, c in sent.items()}  # + the CONNECT head
    return {
        "file": str(out),
        "keylog": str(keylog),
        "packets": wire.packets,
        "bytes": wire.bytes,
        "tls": f"TLS 1.{(version.value & 0xFF) - 1} {cipher.split(':')[0]}",
        "x_cstp_mtu": TLS_MTU,
        "x_dtls_mtu": DTLS_MTU,
        "cstp": {d: dict(sorted(c.items())) for d, c in sent.items()},
        "largest_data": largest,
        "tls_application_records": records,
        "generate_s": round(time.perf_counter() - started, 2),
    }


def keylog_path(capture: Path) -> Path:
    return capture.with_name(capture.name + ".keylog")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.cstp_session", description=__doc__.split("\n")[0]
    )
    p.add_argument("-o", "--output", required=True, type=Path, help="capture file to write")
    p.add_argument("--size", type=size_arg, default=10**9, help="file size (default 1g)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    args = p.parse_args(argv)
    keys, sidecar = keylog_path(args.output), truth_path(args.output)
    try:
        with (
            atomic_output(args.output, force=args.force) as tmp,
            atomic_output(keys, force=args.force) as tmp_keys,
            atomic_output(sidecar, force=args.force) as tmp_truth,
        ):
            doc = generate(tmp, tmp_keys, args.size)
            doc["file"], doc["keylog"] = str(args.output), str(keys)
            tmp_truth.write_text(json.dumps(doc, indent=2) + "\n")
    except LabkitError as exc:
        sys.stderr.write(f"cstp_session: error: {exc}\n")
        return EXIT_USAGE
    print(
        f"wrote {args.output} ({doc['packets']} packets, {doc['bytes'] / 1e6:.1f} MB) and "
        f"{keys} in {doc['generate_s']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
