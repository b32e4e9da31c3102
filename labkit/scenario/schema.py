"""What a scenario file states: frozen dataclasses, one per section of the YAML.

A scenario states *configuration* (addresses, head-end knobs, path filters, the client's
timeline) and never a derived number: MTUs and MSS values come from :mod:`labkit.mtu`
(see :mod:`labkit.scenario.numbers`). An ``overrides`` section may force a number; it is
reported as an override wherever the number is shown. The YAML layout and every key are
documented in ``configs/scenarios/README.md``; :mod:`labkit.scenario.loader` reads it.

Times are integer microseconds from the scenario's start (YAML gives seconds), so a build
never depends on float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labkit import mtu
from labkit.errors import InputError

US = 1_000_000  #: microseconds per second

#: ``overrides`` keys: the numbers a scenario may force instead of taking the model's.
OVERRIDABLE = ("tls_mtu", "dtls_mtu", "adapter_mtu", "tunnel_mss")


@dataclass(frozen=True, slots=True)
class Hosts:
    """Every address of the picture: client, head-end (outside and inside), LAN server."""

    client_outside: str
    client_tunnel: str  # the pool address on the client's virtual adapter
    head_end_outside: str
    head_end_inside: str
    head_end_name: str  # the TLS SNI and the CONNECT Host header
    server: str
    server_port: int

    @property
    def inner_ipv6(self) -> bool:
        return ":" in self.client_tunnel


@dataclass(frozen=True, slots=True)
class HeadEnd:
    """The head-end's knobs (ASA commands in the README)."""

    tcpmss: int = mtu.DEFAULT_TCPMSS
    tls_cipher: str = mtu.DEFAULT_CIPHER
    tls_version: str = "1.2"
    dtls: bool = True
    dtls_cipher: str = mtu.DEFAULT_CIPHER
    dtls_version: str = "0x0100"
    dtls_port: int = mtu.DEFAULT_DTLS_PORT
    anyconnect_mtu: int | None = None
    df_bit_ignore: bool = False
    icmp_unreachables: bool = True


@dataclass(frozen=True, slots=True)
class Client:
    base_mtu: int = mtu.DEFAULT_BASE_MTU  # the client NIC's MTU, sent as X-CSTP-Base-MTU


@dataclass(frozen=True, slots=True)
class PathKnobs:
    """Filters and delays between the hosts (the captures sit at the client and the server)."""

    dtls_udp_blocked: bool = False  # UDP to the DTLS port dropped between client and head-end
    icmp_blocked: bool = False  # ICMP dropped between head-end and server
    outside_rtt_us: int = 20_000
    inside_rtt_us: int = 1_000


@dataclass(frozen=True, slots=True)
class Connect:
    """The parent TLS tunnel and the CSTP CONNECT exchange."""

    at_us: int
    line: int


@dataclass(frozen=True, slots=True)
class Dtls:
    """DTLS ClientHellos at the client's backoff; the path decides whether they are answered."""

    at_us: int
    line: int
    attempts: int = 4
    timeout_us: int = US  # RFC 6347 4.2.4.1: 1 s initial timer, doubled per retransmission
    reconnect_delay_us: int = US  # from giving up on DTLS to the new TLS session, if one is needed


@dataclass(frozen=True, slots=True)
class Flow:
    """One inner TCP connection: the client sends a short request, the server answers with
    full-sized segments (a bulk download, like ``iperf3 -R``)."""

    at_us: int
    line: int
    segments: int = 4  # full-sized data segments the server sends (within its initial window)
    retries: int = 3  # RTO retransmissions before the server gives up on an unacknowledged one


Step = Connect | Dtls | Flow


@dataclass(frozen=True, slots=True)
class Override:
    name: str  # one of OVERRIDABLE
    value: int
    line: int


@dataclass(frozen=True, slots=True)
class ExpectedFinding:
    """A finding the analyzer must report: its id and the fields that must match."""

    id: str
    fields: tuple[tuple[str, object], ...]
    line: int

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, **dict(self.fields)}


@dataclass(frozen=True, slots=True)
class Expect:
    report: tuple[ExpectedFinding, ...] = ()
    not_report: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Scenario:
    """One scenario file, validated."""

    name: str
    description: str
    source: str  # the file it was read from, as given
    seed: int
    hosts: Hosts
    head_end: HeadEnd
    client: Client
    path: PathKnobs
    timeline: tuple[Step, ...]
    overrides: tuple[Override, ...] = ()
    expect: Expect = field(default_factory=Expect)
    lines: tuple[tuple[str, int], ...] = ()  # dotted key -> line, for errors found later

    def line_of(self, key: str) -> int:
        """The line of ``key`` (or of its nearest stated parent), 1 when unknown."""
        table = dict(self.lines)
        while key:
            if key in table:
                return table[key]
            key = key.rpartition(".")[0]
        return 1

    @property
    def summary(self) -> str:
        """The description's first sentence, for ``labkit scenario list``."""
        first = " ".join(self.description.split()).split(". ")[0]
        return first.rstrip(".")

    def tunnel_config(self) -> mtu.TunnelConfig:
        h = self.head_end
        return mtu.TunnelConfig(
            base_mtu=self.client.base_mtu,
            tcpmss=h.tcpmss,
            tls_cipher=h.tls_cipher,
            dtls_cipher=h.dtls_cipher,
            tls_version=h.tls_version,
            dtls_version=h.dtls_version,
            anyconnect_mtu=h.anyconnect_mtu,
            ipv6=self.hosts.inner_ipv6,
            dtls_enabled=h.dtls,
            df_bit_ignore=h.df_bit_ignore,
        )


class ScenarioError(InputError):
    """A scenario file that cannot be used: says ``file:line: key: what is wrong``."""

    @classmethod
    def at(cls, source: str, line: int, key: str, message: str) -> ScenarioError:
        where = f"{source}:{line}: " + (f"{key}: " if key else "")
        return cls(where + message)
