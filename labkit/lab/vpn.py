"""The ``ocserv`` head-end mode: Debian's ocserv in the head-end, openconnect in the client.

Facts this module depends on (checked on Debian 12, ocserv 1.1.6, openconnect 9.01):

* ocserv needs ``dtls-legacy`` and ``cisco-client-compat`` to speak AnyConnect's DTLS (the
  session resumed from ``X-DTLS-Session-ID``, DTLS 1.2 when the client offers
  X-DTLS12-CipherSuite, else 0x0100), ``dtls-psk = false`` or it
  leaves X-DTLS-MTU out, ``isolate-workers = false`` and ``use-occtl = false`` to run without
  its seccomp/occtl plumbing, and socket/pid paths we can write.
* ocserv answers a resuming DTLS ClientHello only when its session id is a live session's
  (ServerHello straight away, no HelloVerifyRequest); an unknown id gets silence.
* ocserv's ``mtu`` is the base (link) MTU: it subtracts the overhead of the DTLS cipher it
  negotiated and announces the result in both X-CSTP-MTU and X-DTLS-MTU, with the base in
  X-CSTP-Base-MTU. With legacy DTLS on, PSK off and ``try-mtu-discovery = false`` the two
  programs settle on DTLS 1.2 AES256-GCM-SHA384 (66 bytes: 20 IP, 8 UDP, 13 DTLS, 8 nonce,
  16 tag, 1 AnyConnect header): ``mtu = 1484`` announces the seed's 1418 and the client's
  tun comes up at 1418.
* ocserv lowers its own tun MTU (never raises it) when the CSTP socket's path MTU drops: it
  checks ``TCP_MAXSEG`` every 30 s (``PERIODIC_CHECK_TIME`` in its ``worker-vpn.c``) and
  sets path MTU less the same overhead, so a route MTU of 1413 toward the client makes it
  1347 while the client keeps 1418.
* openconnect brings its tun up at max(X-CSTP-MTU, X-DTLS-MTU) (``cstp.c``) and keeps it when
  DTLS fails; it writes an NSS key log when ``SSLKEYLOGFILE`` is set. Its default
  vpnc-script rewrites the host's resolv.conf, so the lab gives it :func:`client_script`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import ipaddress
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labkit import mtu
from labkit.lab import netops, nsenter
from labkit.lab.netops import LabError
from labkit.lab.state import Process
from labkit.lab.topology import (
    CLIENT_TUN,
    EDGE,
    HEADEND_ADDR,
    INSIDE,
    OUTSIDE,
    TUNNEL_DEVICE,
    TUNNEL_POOL,
    Topology,
)

USER = "lab"
PASSWORD = "labkit"  # a throw-away account in a throw-away namespace
START_TIMEOUT = 10.0
CONNECT_TIMEOUT = 25.0
# ocserv checks the CSTP socket's MSS every PERIODIC_CHECK_TIME = 30 s (worker-vpn.c).
OCSERV_CHECK_PERIOD = 30.0
# Pin the CSTP (TLS) suite to the seed's AES128-SHA over TLS 1.2, like the ASA of the seed.
TLS_PRIORITIES = (
    "NORMAL:%SERVER_PRECEDENCE:%COMPAT:-VERS-ALL:+VERS-TLS1.2:"
    "-CIPHER-ALL:+AES-128-CBC:-MAC-ALL:+SHA1"
)
# The DTLS suite ocserv and openconnect settle on with legacy DTLS on and PSK off: DTLS 1.2
# AES256-GCM-SHA384 (the client offers it in X-DTLS12-CipherSuite; ocserv picks it).
DTLS_CIPHER = "AES256-GCM-SHA384"
DTLS_VERSION = "1.2"
# ocserv's `mtu` is the base (link) MTU it subtracts the negotiated DTLS cipher's overhead
# from: the base that makes it announce the seed's DTLS MTU (1418) for that cipher.
BASE_MTU = mtu.dtls_base_mtu(mtu.dtls_mtu(), DTLS_CIPHER, DTLS_VERSION)


@dataclass(frozen=True, slots=True)
class Credentials:
    cert: Path
    key: Path
    passwd: Path
    pin: str  # openconnect --servercert pin-sha256:...


def make_credentials(folder: Path) -> Credentials:
    """A self-signed head-end certificate (made with ``cryptography``) and a password file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "labkit head-end")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HEADEND_ADDR))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "headend-cert.pem", folder / "headend-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pin = "pin-sha256:" + base64.b64encode(hashlib.sha256(spki).digest()).decode()
    passwd = folder / "ocpasswd"
    netops.run(["ocpasswd", "-c", str(passwd), USER], input_text=f"{PASSWORD}\n{PASSWORD}\n")
    return Credentials(cert_path, key_path, passwd, pin)


def ocserv_config(folder: Path, creds: Credentials, topo: Topology) -> str:
    """ocserv.conf for the lab: the hard-won settings of the module docstring."""
    pool = TUNNEL_POOL.split("/")[0]
    return "\n".join(
        [
            f'auth = "plain[passwd={creds.passwd}]"',
            f"listen-host = {HEADEND_ADDR}",
            "tcp-port = 443",
            f"udp-port = {topo.dtls_port}",
            f"socket-file = {folder / 'ocserv.sock'}",
            f"pid-file = {folder / 'ocserv.pid'}",
            f"server-cert = {creds.cert}",
            f"server-key = {creds.key}",
            "isolate-workers = false",
            "use-occtl = false",
            "max-clients = 8",
            "max-same-clients = 8",
            "rate-limit-ms = 0",
            "keepalive = 300",
            "dpd = 60",
            "mobile-dpd = 300",
            "switch-to-tcp-timeout = 25",
            "try-mtu-discovery = false",
            f"mtu = {BASE_MTU}",
            f'tls-priorities = "{TLS_PRIORITIES}"',
            "auth-timeout = 60",
            "cookie-timeout = 300",
            "deny-roaming = false",
            "rekey-time = 172800",
            "rekey-method = ssl",
            f"device = {TUNNEL_DEVICE}",
            f"ipv4-network = {pool}",
            "ipv4-netmask = 255.255.255.0",
            f"route = {INSIDE.network}",
            "cisco-client-compat = true",
            "dtls-legacy = true",
            "dtls-psk = false",
            "log-level = 2",
            "",
        ]
    )


def client_script() -> str:
    """openconnect's --script: address, MTU and split routes on the tun, nothing else.

    openconnect exports INTERNAL_IP4_ADDRESS, INTERNAL_IP4_MTU and CISCO_SPLIT_INC_<i>_ADDR /
    _MASKLEN (the vpnc-script interface); the real vpnc-script would also rewrite
    /etc/resolv.conf, which a lab must never do.
    """
    return """#!/bin/sh
# labkit's openconnect script: tun address, MTU and routes only (no DNS, no host files).
case "$reason" in
  connect)
    ip link set dev "$TUNDEV" up mtu "${INTERNAL_IP4_MTU:-1300}"
    ip addr add "$INTERNAL_IP4_ADDRESS/32" peer "$INTERNAL_IP4_ADDRESS" dev "$TUNDEV"
    i=0
    while [ "$i" -lt "${CISCO_SPLIT_INC:-0}" ]; do
      eval net=\\$CISCO_SPLIT_INC_${i}_ADDR
      eval len=\\$CISCO_SPLIT_INC_${i}_MASKLEN
      ip route replace "$net/$len" dev "$TUNDEV"
      i=$((i + 1))
    done
    echo "mtu=$INTERNAL_IP4_MTU address=$INTERNAL_IP4_ADDRESS" >> "${0%/*}/script.log" ;;
esac
exit 0
"""


def _spawn(
    ns: str,
    argv: list[str],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    stdin_text: str | None = None,
) -> int:
    """Start a long-running program in ``ns``, detached from our session, logging to ``log``."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            netops.in_ns(ns, *argv),
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    if stdin_text is not None:
        assert proc.stdin is not None
        proc.stdin.write(stdin_text.encode())
    if proc.stdin is not None:
        proc.stdin.close()
    return proc.pid  # `ip netns exec` execs the program: this is its pid


def _wait_for(
    what: str, check: Callable[[], bool], timeout: float, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = ""
    if log is not None and log.exists():
        lines = log.read_text(errors="replace").strip().splitlines()
        tail = f"; last log line: {lines[-1]}" if lines else ""
    raise LabError(f"{what} did not happen within {timeout:.0f} s{tail}")


def start_ocserv(folder: Path, ns: str, topo: Topology) -> Process:
    creds = make_credentials(folder)
    conf = folder / "ocserv.conf"
    conf.write_text(ocserv_config(folder, creds, topo), encoding="utf-8")
    (folder / "pin").write_text(creds.pin + "\n", encoding="utf-8")
    log = folder / "ocserv.log"
    pid = _spawn(ns, ["ocserv", "--foreground", "--config", str(conf)], log)
    _wait_for(
        "ocserv listening on TCP 443",
        lambda: "listening (TCP)" in log.read_text(errors="replace") or not alive(pid),
        START_TIMEOUT,
        log,
    )
    if not alive(pid):
        raise LabError(f"ocserv exited at start; see {log}")
    return Process("ocserv", pid, ns, "ocserv")


def start_openconnect(folder: Path, ns: str) -> Process:
    script = folder / "client-script.sh"
    script.write_text(client_script(), encoding="utf-8")
    script.chmod(0o755)
    pin = (folder / "pin").read_text().strip()
    log = folder / "openconnect.log"
    argv = [
        "openconnect",
        "--protocol=anyconnect",
        "--non-inter",
        "--passwd-on-stdin",
        "--user",
        USER,
        "--servercert",
        pin,
        "--script",
        str(script),
        "--interface",
        CLIENT_TUN,
        "--disable-ipv6",
        "--verbose",
        "--timestamp",
        HEADEND_ADDR,
    ]
    pid = _spawn(
        ns,
        argv,
        log,
        env={"SSLKEYLOGFILE": str(folder / "sslkeylog.txt")},
        stdin_text=PASSWORD + "\n",
    )
    _wait_for(
        "openconnect bringing its tunnel up",
        lambda: (folder / "script.log").exists() or not alive(pid),
        CONNECT_TIMEOUT,
        log,
    )
    if not alive(pid):
        raise LabError(f"openconnect exited before the tunnel came up; see {log}")
    return Process("openconnect", pid, ns, "openconnect")


# A CONNECT response header as openconnect --verbose --timestamp logs it.
_HEADER = re.compile(
    r"^(?:\[[^]]*\] )?(X-CSTP-MTU|X-DTLS-MTU|X-CSTP-Base-MTU|X-DTLS-Port"
    r"|X-DTLS-Session-ID|X-DTLS-CipherSuite|X-DTLS12-CipherSuite): (\S+)",
    re.M,
)


def connect_info(openconnect_log: str) -> dict[str, object]:
    """What openconnect's verbose log shows of the CONNECT response and DTLS (last session)."""
    info: dict[str, object] = {}
    for name, value in _HEADER.findall(openconnect_log):
        key = name.lower().replace("-", "_")
        info[key] = int(value) if value.isdigit() and "session" not in key else value
    info["dtls_established"] = "Established DTLS connection" in openconnect_log
    return info


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def is_ours(proc: Process) -> bool:
    """True if ``proc.pid`` still runs the program we started (pids get reused).

    /proc/PID/exe, not cmdline: ocserv rewrites its process title to "ocserv-main".
    """
    try:
        return os.path.basename(os.readlink(f"/proc/{proc.pid}/exe")) == proc.exe
    except OSError:
        return False


def stop(proc: Process, timeout: float = 5.0) -> None:
    """SIGTERM (openconnect says BYE, ocserv ends its workers), SIGKILL if it lingers."""
    if not is_ours(proc):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(proc.pid):
        time.sleep(0.1)
    if alive(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)


def headend_tun_mtu(ns: str) -> int | None:
    """The MTU of ocserv's tun device for the (first) client, None if there is none."""
    for name, entry in netops.addresses(ns).items():
        if name.startswith(TUNNEL_DEVICE):
            return entry["mtu"]
    return None


def lower_headend_mtu(
    headend_ns: str,
    client_tunnel_addr: str,
    target: int,
    *,
    log: Path | None = None,
    rounds: int = 3,
    timeout: float = 2 * OCSERV_CHECK_PERIOD + 5,
) -> int:
    """Bring ocserv's tun MTU down to ``target`` the way a real path does: a smaller path MTU
    toward the client on the CSTP socket, which ocserv reads at its next periodic check.

    Closed loop rather than ocserv's arithmetic re-derived: set a route MTU on the head-end
    toward the client's network, wait for ocserv's check, measure its tun MTU, correct the
    route by the difference. ocserv only ever lowers (``MIN(conn_mtu, ...)``), so each step
    aims at or above the target. The kernel refreshes a socket's MSS only when it sends, so
    a small datagram a second goes to the client's tunnel address meanwhile.
    Returns the route MTU that produced ``target``.
    """
    current = headend_tun_mtu(headend_ns)
    if current is None:
        raise LabError("ocserv has no tun device: is the client connected?")
    # ocserv's check sets its tun MTU to the path MTU less the DTLS overhead it took from its
    # `mtu` setting at the CONNECT (BASE_MTU - the tun MTU it started with: 66 for GCM), so
    # the first route MTU aims straight at the target and one check usually does it.
    route_mtu = target + (BASE_MTU - current)
    deadline = time.monotonic() + timeout
    with nsenter.inside(headend_ns):
        nudge = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with nudge:
        for _ in range(rounds):
            if current == target:
                return route_mtu
            if current < target:
                raise LabError(
                    f"ocserv's tun MTU went to {current}, below the wanted {target}; "
                    "ocserv never raises it again: reconnect the client and retry"
                )
            netops.add_route(
                headend_ns, EDGE.network, OUTSIDE.a_addr, "mtu", "lock", str(route_mtu), log=log
            )
            before = current
            # Correct the route only by a change ocserv made: a check that has not happened
            # yet says nothing about how far the route is from the target.
            while current == before:
                if time.monotonic() > deadline:
                    raise LabError(
                        f"ocserv kept its tun MTU at {current} for {timeout:.0f} s "
                        f"(wanted {target})"
                    )
                nudge.sendto(b"labkit: refresh the CSTP socket's MSS", (client_tunnel_addr, 9))
                time.sleep(1.0)
                current = headend_tun_mtu(headend_ns) or before
            route_mtu -= current - target
    if current != target:
        raise LabError(f"ocserv's tun MTU is {current} after {rounds} checks, wanted {target}")
    return route_mtu
