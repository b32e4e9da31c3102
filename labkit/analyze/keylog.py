"""NSS key log text in, secrets by client random out (sans-IO).

The format (NSS "Key Log Format", also written by OpenSSL's ``SSL_CTX_set_keylog_callback``,
GnuTLS's ``SSLKEYLOGFILE`` and Python's ``keylog_filename``): one ``LABEL <client random hex>
<secret hex>`` per line, ``#`` comments. TLS 1.2 uses ``CLIENT_RANDOM`` (the 48-byte master
secret); TLS 1.3 the ``*_TRAFFIC_SECRET*`` labels.

Why not Scapy's ``parse_nss_keys``: it returns nothing at all when one line is off (a blank
line, a truncated last line), and a customer's key log often has such lines. Here a bad line
is counted and the rest is kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

MAX_EXAMPLES: Final = 5
# LABEL, then the key the secret is filed under (the 32-byte client random; for the ``RSA``
# label the first 8 bytes of the encrypted pre-master secret), then the secret.
_LINE: Final = re.compile(
    r"^([A-Z][A-Z0-9_]*) ((?:[0-9a-fA-F]{2}){8,64}) ((?:[0-9a-fA-F]{2}){1,128})$"
)
#: Labels that decrypt a TLS 1.2 (CLIENT_RANDOM) or TLS 1.3 (the rest) session.
TLS12_LABEL: Final = "CLIENT_RANDOM"
TLS13_LABELS: Final = frozenset(
    {
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    }
)


@dataclass(frozen=True, slots=True)
class KeyLog:
    #: label -> client random -> secret: the shape Scapy's tlsSession.nss_keys expects.
    secrets: dict[str, dict[bytes, bytes]] = field(default_factory=dict)
    lines: int = 0
    malformed: int = 0
    examples: tuple[tuple[int, str], ...] = ()  # (line number, text) of the first bad lines

    def can_decrypt(self, client_random: bytes) -> bool:
        """A TLS 1.2 master secret or the TLS 1.3 traffic secrets for this session."""
        if client_random in self.secrets.get(TLS12_LABEL, {}):
            return True
        return all(client_random in self.secrets.get(label, {}) for label in TLS13_LABELS)


def parse_keylog(text: str | Iterable[str]) -> KeyLog:
    """Secrets of a key log's text, or of its lines one at a time: a file is streamed, so a
    64 MiB key log of junk costs its valid entries, not a list of its lines (1.7 GB)."""
    secrets: dict[str, dict[bytes, bytes]] = {}
    malformed = 0
    examples: list[tuple[int, str]] = []
    n = 0
    for n, raw in enumerate(text.splitlines() if isinstance(text, str) else text, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            malformed += 1
            if len(examples) < MAX_EXAMPLES:
                examples.append((n, line[:120]))
            continue
        secrets.setdefault(m.group(1), {})[bytes.fromhex(m.group(2))] = bytes.fromhex(m.group(3))
    return KeyLog(secrets, n, malformed, tuple(examples))
