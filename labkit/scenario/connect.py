"""The CSTP CONNECT exchange that opens AnyConnect's tunnel, as text.

The client sends ``CONNECT /CSCOSSLC/tunnel`` with its base MTU and the DTLS master secret;
the head-end answers ``200 OK`` with the tunnel's addresses and both MTUs (header names from
OpenConnect ``cstp.c``, ``start_cstp_connection``; DESIGN.md section 3). Inside a scenario
the text travels encrypted: its length decides the size of the TLS records, and the response
is shown in clear as a frame comment in ``outside.pcapng``.
"""

from __future__ import annotations

from dataclasses import dataclass

USER_AGENT = "Cisco AnyConnect VPN Agent for Windows 4.10.07061"


@dataclass(frozen=True, slots=True)
class ConnectParams:
    host: str  # the head-end's name
    tunnel_address: str
    base_mtu: int
    tls_mtu: int  # X-CSTP-MTU
    dtls_mtu: int  # X-DTLS-MTU
    dtls_port: int
    dtls_cipher: str
    dtls: bool  # X-DTLS-* headers are sent only when DTLS is enabled
    cookie: str  # webvpn session cookie, hex
    dtls_session_id: str  # 64 hex digits
    master_secret: str  # 96 hex digits


def request(p: ConnectParams) -> str:
    lines = [
        "CONNECT /CSCOSSLC/tunnel HTTP/1.1",
        f"Host: {p.host}",
        f"User-Agent: {USER_AGENT}",
        f"Cookie: webvpn={p.cookie}",
        "X-CSTP-Version: 1",
        "X-CSTP-Hostname: labkit-client",
        f"X-CSTP-Base-MTU: {p.base_mtu}",
        "X-CSTP-Address-Type: IPv6,IPv4",
        "X-CSTP-Full-IPv6-Capability: true",
    ]
    if p.dtls:
        lines += [
            f"X-DTLS-Master-Secret: {p.master_secret}",
            f"X-DTLS-CipherSuite: {p.dtls_cipher}",
        ]
    return "\r\n".join(lines) + "\r\n\r\n"


def response(p: ConnectParams) -> str:
    v6 = ":" in p.tunnel_address
    address = (
        [f"X-CSTP-Address-IP6: {p.tunnel_address}/64"]
        if v6
        else [f"X-CSTP-Address: {p.tunnel_address}", "X-CSTP-Netmask: 255.255.255.0"]
    )
    lines = [
        "HTTP/1.1 200 OK",
        "X-CSTP-Version: 1",
        *address,
        "X-CSTP-Lease-Duration: 1209600",
        "X-CSTP-Session-Timeout: none",
        "X-CSTP-Idle-Timeout: 1800",
        "X-CSTP-Keepalive: 20",
        "X-CSTP-DPD: 30",
        f"X-CSTP-MTU: {p.tls_mtu}",
        f"X-CSTP-Base-MTU: {p.base_mtu}",
        "X-CSTP-Rekey-Method: new-tunnel",
    ]
    if p.dtls:
        lines += [
            f"X-DTLS-Session-ID: {p.dtls_session_id}",
            f"X-DTLS-Port: {p.dtls_port}",
            "X-DTLS-Keepalive: 20",
            "X-DTLS-DPD: 30",
            f"X-DTLS-MTU: {p.dtls_mtu}",
            f"X-DTLS-CipherSuite: {p.dtls_cipher}",
        ]
    return "\r\n".join(lines) + "\r\n\r\n"


def headline(p: ConnectParams) -> str:
    """The response's MTU headers on one line, for a frame comment."""
    parts = [f"X-CSTP-MTU: {p.tls_mtu}", f"X-CSTP-Base-MTU: {p.base_mtu}"]
    if p.dtls:
        parts += [f"X-DTLS-MTU: {p.dtls_mtu}", f"X-DTLS-Port: {p.dtls_port}"]
    return ", ".join(parts)
