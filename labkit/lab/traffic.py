"""A bounded TCP download from the lab's server to its client: the traffic of the seed's case.

The client connects (its SYN carries the MSS of its route: through the tunnel, the tun MTU
minus 40), the server sends ``size`` bytes and closes. Each socket is created inside its
node's namespace (:func:`labkit.lab.nsenter.inside`) and used from this process; both
ends give up after ``timeout`` seconds, so a black hole ends the transfer, not the run.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

from labkit.lab import nsenter


@dataclass(frozen=True, slots=True)
class Transfer:
    requested: int
    received: int
    seconds: float

    @property
    def completed(self) -> bool:
        return self.received == self.requested


def download(
    server_ns: str, client_ns: str, server_addr: str, port: int, size: int, timeout: float
) -> Transfer:
    """Client in ``client_ns`` downloads ``size`` bytes from ``server_addr:port``."""
    with nsenter.inside(server_ns):
        listener = socket.create_server((server_addr, port), reuse_port=False)
    with nsenter.inside(client_ns):
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.settimeout(timeout)
    client.settimeout(timeout)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(timeout)
            try:
                conn.sendall(bytes(i & 0xFF for i in range(size)))
            except OSError:
                pass  # the client gave up (black hole): nothing more to do

    worker = threading.Thread(target=serve, daemon=True)
    worker.start()
    received = 0
    started = time.monotonic()
    deadline = started + timeout
    try:
        try:
            client.connect((server_addr, port))
        except OSError:
            return Transfer(size, 0, round(time.monotonic() - started, 3))
        while received < size and time.monotonic() < deadline:
            client.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = client.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += len(chunk)
    finally:
        client.close()
        elapsed = time.monotonic() - started
        worker.join(timeout + 1)
        listener.close()
    return Transfer(size, received, round(elapsed, 3))
