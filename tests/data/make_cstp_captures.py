"""Write the CSTP-over-TLS test captures: a real TLS exchange on loopback, captured by tcpdump.

    sudo python3 tests/data/make_cstp_captures.py    # writes cstp-tls12.* and cstp-tls13.*

Why: the decryptor needs a capture whose plaintext is known byte for byte. Python's ``ssl``
(OpenSSL) plays both ends on 127.0.0.1 and writes an NSS key log (``keylog_filename``);
tcpdump records the loopback. The client and server speak what OpenConnect and ocserv speak
(OpenConnect ``cstp.c``, ocserv ``worker-http.c``): an XML auth POST on a first connection,
then on a second one ``CONNECT /CSCOSSLC/tunnel`` (with the client's own X-CSTP-MTU 1406) and
``HTTP/1.1 200 CONNECTED`` with the head-end's X-CSTP-MTU 1347, X-DTLS-MTU 1418,
X-CSTP-Base-MTU 1500 and X-DTLS-Port 443, then CSTP packets: DPD request/response, keepalive,
and IPv4 data packets of known sizes (largest 1347 to the client, 1300 from it).

Packets go to loopback only (HELPERS.md network safety). The captures are committed; rerun
this only to change them (TLS randomness makes every run's bytes differ).
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the checkout: the CSTP builders are the benchmark's

from benchmarks.cstp_session import cstp, ipv4, make_cert  # noqa: E402

PORT = 8443

CONNECT_REQUEST = (
    "CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\n"
    "Host: vpn.example.test\r\n"
    "User-Agent: Open AnyConnect VPN Agent v9.12\r\n"
    "Cookie: webvpn=3A1F9C\r\n"
    "X-CSTP-Version: 1\r\n"
    "X-CSTP-Hostname: lab-client\r\n"
    "X-CSTP-Accept-Encoding: lzs\r\n"
    "X-CSTP-Base-MTU: 1500\r\n"
    "X-CSTP-MTU: 1406\r\n"
    "X-CSTP-Address-Type: IPv6,IPv4\r\n"
    "X-DTLS-Master-Secret: " + "A5" * 48 + "\r\n"
    "X-DTLS-CipherSuite: AES256-SHA:AES128-SHA:DES-CBC3-SHA\r\n"
    "\r\n"
)
CONNECT_RESPONSE = (
    "HTTP/1.1 200 CONNECTED\r\n"
    "X-CSTP-Version: 1\r\n"
    "X-CSTP-Server-Name: ocserv 1.1.6\r\n"
    "X-CSTP-DPD: 90\r\n"
    "X-CSTP-Address: 192.168.100.10\r\n"
    "X-CSTP-Netmask: 255.255.255.0\r\n"
    "X-CSTP-Keepalive: 32400\r\n"
    "X-CSTP-Idle-Timeout: none\r\n"
    "X-DTLS-Session-ID: " + "9b" * 32 + "\r\n"
    "X-DTLS-Port: 443\r\n"
    "X-DTLS-Rekey-Time: 172838\r\n"
    "X-DTLS-Keepalive: 32400\r\n"
    "X-DTLS-CipherSuite: AES128-SHA\r\n"
    "X-DTLS-DPD: 90\r\n"
    "X-DTLS-MTU: 1418\r\n"
    "X-CSTP-Base-MTU: 1500\r\n"
    "X-CSTP-MTU: 1347\r\n"
    "\r\n"
)
AUTH_BODY = b'<?xml version="1.0" encoding="UTF-8"?>\n<config-auth client="vpn" type="complete"><auth id="success"/></config-auth>\n'


def server_script(conn: ssl.SSLSocket, first: bool) -> None:
    req = b""
    while b"\r\n\r\n" not in req:
        req += conn.recv(4096)
    if first:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: "
            + str(len(AUTH_BODY)).encode()
            + b"\r\nSet-Cookie: webvpn=3A1F9C\r\n"
            b"X-Transcend-Version: 1\r\n\r\n" + AUTH_BODY
        )
        return
    conn.sendall(CONNECT_RESPONSE.encode())
    got = b""
    while len(got) < 8:
        got += conn.recv(4096)
    conn.sendall(cstp(4))  # DPD response to the client's DPD request
    for size in (60, 1347, 1347, 576):
        conn.sendall(cstp(0, ipv4(size, "192.168.10.20", "192.168.100.10")))
        time.sleep(0.01)
    conn.sendall(cstp(7))
    time.sleep(0.05)


def client_script(ctx: ssl.SSLContext, first: bool) -> None:
    with (
        socket.create_connection(("127.0.0.1", PORT)) as raw,
        ctx.wrap_socket(raw, server_hostname="vpn.example.test") as s,
    ):
        if first:
            s.sendall(
                b"POST / HTTP/1.1\r\nHost: vpn.example.test\r\nX-CSTP-MTU: 1406\r\n"
                b"Content-Length: 5\r\n\r\nhello"
            )
            s.recv(4096)
            return
        s.sendall(CONNECT_REQUEST.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        s.sendall(cstp(3))  # DPD request
        for size in (60, 1300, 120):
            s.sendall(cstp(0, ipv4(size, "192.168.100.10", "192.168.10.20")))
            time.sleep(0.01)
        s.sendall(cstp(7))
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            s.settimeout(0.3)
            try:
                if not s.recv(65536):
                    break
            except TimeoutError:
                break


def make(name: str, version: ssl.TLSVersion, ciphers: str | None) -> None:
    pcap, keylog = HERE / f"{name}.pcap", HERE / f"{name}.keylog"
    for p in (pcap, keylog):
        p.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = make_cert(Path(tmp))
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(cert, key)
        sctx.minimum_version = sctx.maximum_version = version
        if ciphers:
            sctx.set_ciphers(ciphers)
        cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        cctx.check_hostname, cctx.verify_mode = False, ssl.CERT_NONE
        cctx.minimum_version = cctx.maximum_version = version
        cctx.keylog_filename = str(keylog)
        if ciphers:
            cctx.set_ciphers(ciphers)
        dump = subprocess.Popen(
            [
                "tcpdump",
                "-i",
                "lo",
                "-U",
                "--immediate-mode",
                "-s",
                "0",
                "-w",
                str(pcap),
                f"tcp port {PORT}",
            ],
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
        try:
            with socket.socket() as lsock:
                lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                lsock.bind(("127.0.0.1", PORT))
                lsock.listen(2)

                def serve() -> None:
                    for first in (True, False):
                        conn, _ = lsock.accept()
                        with sctx.wrap_socket(conn, server_side=True) as c:
                            server_script(c, first)

                t = threading.Thread(target=serve)
                t.start()
                client_script(cctx, True)
                client_script(cctx, False)
                t.join(timeout=10)
            time.sleep(0.5)
        finally:
            dump.terminate()
            dump.wait(timeout=10)
    print(f"wrote {pcap} ({pcap.stat().st_size} bytes) and {keylog}")


def main() -> int:
    if os.geteuid() != 0:
        print("needs root for tcpdump on lo", file=sys.stderr)
        return 2
    make("cstp-tls12", ssl.TLSVersion.TLSv1_2, "AES128-SHA")
    make("cstp-tls13", ssl.TLSVersion.TLSv1_3, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
