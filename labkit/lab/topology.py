"""The lab's topology: four nodes in a line, the knobs, and the YAML file that sets them.

    client --(edge)-- router --(outside)-- headend --(inside)-- server

Every node is a network namespace named ``lk-<lab>-<node>``; every interface is created
inside its namespace (never in the host's), so deleting the namespaces deletes everything
``lab up`` made. Addresses come from 198.18.0.0/15 (RFC 2544, benchmarking): a range no
real network routes, so a lab packet can never be mistaken for, or leak to, a real host.

The knobs are those of the seed's case (DESIGN.md section 1): the head-end's TLS MTU on its
client-facing side (1347 = ``tls_mtu_asa(1380, "AES128-SHA")``, never written by hand),
UDP to the DTLS port dropped at the router, ICMP unreachables from the head-end dropped.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from labkit import mtu, yamlguard
from labkit.errors import InputError, UsageError
from labkit.fileio import read_input

HeadendMode = Literal["kernel", "ocserv"]
HEADEND_MODES: tuple[str, ...] = ("kernel", "ocserv")
NODES: tuple[str, ...] = ("client", "router", "headend", "server")
PREFIX = "lk"
LAB_NAME_RE = re.compile(r"[a-z0-9]{1,12}")  # fullmatch: "$" would let a trailing newline in
DEFAULT_LAB = "default"
MAX_TOPOLOGY_BYTES = 1 << 20  # a topology is a page of YAML


@dataclass(frozen=True, slots=True)
class Link:
    """One veth pair: ``a`` end in node ``a_node``, ``b`` end in ``b_node``, a /24 between."""

    name: str
    a_node: str
    a_if: str
    a_addr: str
    b_node: str
    b_if: str
    b_addr: str
    prefix_len: int = 24

    @property
    def network(self) -> str:
        return str(ipaddress.ip_interface(f"{self.a_addr}/{self.prefix_len}").network)


# The addressing plan. Interface names are short (IFNAMSIZ is 16) and the same in every lab:
# they live in the lab's own namespaces, so two labs never collide on them.
LINKS: tuple[Link, ...] = (
    Link("edge", "client", "lk-c-r", "198.18.1.2", "router", "lk-r-c", "198.18.1.1"),
    Link("outside", "router", "lk-r-h", "198.18.2.1", "headend", "lk-h-r", "198.18.2.2"),
    Link("inside", "headend", "lk-h-s", "198.18.3.1", "server", "lk-s-h", "198.18.3.2"),
)
EDGE, OUTSIDE, INSIDE = LINKS
TUNNEL_POOL = "198.18.100.0/24"  # ocserv's address pool for VPN clients
TUNNEL_DEVICE = "lkvpn"  # ocserv names its devices lkvpn0, lkvpn1...; openconnect's is lkvpn0
CLIENT_TUN = "lkvpn0"
HEADEND_ADDR = OUTSIDE.b_addr  # where the client connects: TLS and DTLS
SERVER_ADDR = INSIDE.b_addr

# Static routes: (node, destination, gateway). In kernel mode the router also reaches the
# inside through the head-end; in ocserv mode the client reaches it through its tunnel, whose
# route openconnect's script sets.
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("client", "default", EDGE.b_addr),
    ("headend", "default", OUTSIDE.a_addr),
    ("server", "default", INSIDE.a_addr),
)
KERNEL_ROUTES: tuple[tuple[str, str, str], ...] = (("router", INSIDE.network, OUTSIDE.b_addr),)


@dataclass(frozen=True, slots=True)
class Topology:
    """The knobs of one lab. ``tls_mtu`` None means no MTU drop on the head-end's client side."""

    headend: HeadendMode = "kernel"
    tls_mtu: int | None = field(default_factory=lambda: mtu.tls_mtu_asa())
    block_dtls: bool = True
    block_icmp: bool = False
    dtls_port: int = mtu.DEFAULT_DTLS_PORT
    clamp_mss: int | None = None  # head-end rewrites SYN MSS options above this (ASA tcpmss)
    description: str = ""

    def __post_init__(self) -> None:
        if self.headend not in HEADEND_MODES:
            raise UsageError(
                f"head-end mode {self.headend!r}: expected one of {', '.join(HEADEND_MODES)}"
            )
        if self.tls_mtu is not None and not mtu.MIN_IPV4_MTU <= self.tls_mtu <= 1500:
            raise UsageError(
                f"TLS MTU {self.tls_mtu}: expected {mtu.MIN_IPV4_MTU}..1500 "
                "(the lab's links are Ethernet, MTU 1500)"
            )
        if not 1 <= self.dtls_port <= 65535:
            raise UsageError(f"DTLS port {self.dtls_port}: expected 1..65535")
        if self.clamp_mss is not None and not mtu.MIN_TCPMSS <= self.clamp_mss <= mtu.MAX_TCPMSS:
            raise UsageError(
                f"clamp_mss {self.clamp_mss}: expected {mtu.MIN_TCPMSS}..{mtu.MAX_TCPMSS}"
            )

    def to_json(self) -> dict[str, object]:
        return {
            "headend": self.headend,
            "tls_mtu": self.tls_mtu,
            "block_dtls": self.block_dtls,
            "block_icmp": self.block_icmp,
            "dtls_port": self.dtls_port,
            "clamp_mss": self.clamp_mss,
            "description": self.description,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Topology:
        return cls(
            headend=data["headend"],
            tls_mtu=data["tls_mtu"],
            block_dtls=data["block_dtls"],
            block_icmp=data["block_icmp"],
            dtls_port=data["dtls_port"],
            clamp_mss=data.get("clamp_mss"),
            description=data.get("description", ""),
        )


def netns_name(lab: str, node: str) -> str:
    return f"{PREFIX}-{lab}-{node}"


def check_lab_name(lab: str) -> str:
    if not LAB_NAME_RE.fullmatch(lab):
        raise UsageError(f"lab name {lab!r}: expected 1-12 lowercase letters or digits")
    return lab


# --- the YAML file -------------------------------------------------------------------------

_KEYS = (
    "description",
    "headend",
    "tls_mtu",
    "tcpmss",
    "tls_cipher",
    "block_dtls",
    "block_icmp",
    "dtls_port",
    "clamp_mss",
)


class _Constructor(yaml.constructor.SafeConstructor):
    """SafeConstructor that remembers the line of every mapping key, for line-numbered errors."""


def _construct_mapping(c: _Constructor, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = {}
    lines = {}
    for key_node, value_node in node.value:
        key = c.construct_object(key_node)
        mapping[key] = c.construct_object(value_node, deep=True)
        lines[key] = key_node.start_mark.line + 1
    mapping["__lines__"] = lines
    return mapping


# PyYAML's stubs expect constructors registered on a Loader; a bare constructor class takes
# them the same way at run time.
_Constructor.add_constructor(  # type: ignore[type-var]
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def _expect(path: Path, line: int, key: str, value: Any, kind: type, what: str) -> Any:
    # bool is an int in Python: a YAML `true` must not pass as an MTU.
    if value is None and kind is not bool:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InputError(f"{path}:{line}: {key}: expected {what}, got {value!r}")
    return value


def load_topology(path: str | Path) -> Topology:
    """Read a topology file; every error names the file, the line and the key."""
    p = Path(path)
    raw = read_input(p, MAX_TOPOLOGY_BYTES, "a topology file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: not UTF-8 text (byte {exc.start}); not a topology file") from None
    try:
        root = yamlguard.compose(text, max_depth=4, what="a topology is one mapping of knobs")
        data = None if root is None else yamlguard.construct(_Constructor(), root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise InputError(f"{p}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    except yamlguard.YamlRefused as exc:
        raise InputError(f"{p}:{exc.line}: {exc.message}") from None
    if not isinstance(data, dict):
        raise InputError(f"{p}: expected a mapping of topology keys ({', '.join(_KEYS)})")
    lines: dict[str, int] = data.pop("__lines__")
    for key in data:
        if key not in _KEYS:
            raise InputError(f"{p}:{lines[key]}: unknown key {key!r}; known: {', '.join(_KEYS)}")
    kw: dict[str, Any] = {}

    def line(key: str) -> int:
        """The line of a key; 0 for one the file leaves out (its default applies)."""
        return lines.get(key, 0)

    if "description" in data:
        kw["description"] = (
            _expect(p, line("description"), "description", data["description"], str, "text") or ""
        )
    if "headend" in data:
        mode = data["headend"]
        if mode not in HEADEND_MODES:
            raise InputError(
                f"{p}:{line('headend')}: headend: expected one of "
                f"{', '.join(HEADEND_MODES)}, got {mode!r}"
            )
        kw["headend"] = mode
    for key in ("block_dtls", "block_icmp"):
        if key in data:
            kw[key] = _expect(p, line(key), key, data[key], bool, "true or false")
    if "dtls_port" in data:
        kw["dtls_port"] = _expect(
            p, line("dtls_port"), "dtls_port", data["dtls_port"], int, "a port number 1..65535"
        )
    if "clamp_mss" in data:
        kw["clamp_mss"] = _expect(
            p,
            line("clamp_mss"),
            "clamp_mss",
            data["clamp_mss"],
            int,
            "an MSS in bytes, or null for none",
        )
    if "tls_mtu" in data and ("tcpmss" in data or "tls_cipher" in data):
        raise InputError(
            f"{p}:{line('tls_mtu')}: give either tls_mtu or tcpmss/tls_cipher, not both"
        )
    if "tls_mtu" in data:
        kw["tls_mtu"] = _expect(
            p, line("tls_mtu"), "tls_mtu", data["tls_mtu"], int, "an MTU in bytes, or null for none"
        )
    elif "tcpmss" in data or "tls_cipher" in data:
        # The ASA's own arithmetic (labkit.mtu), so the file states the config, not the result.
        tcpmss = _expect(
            p,
            line("tcpmss"),
            "tcpmss",
            data.get("tcpmss", mtu.DEFAULT_TCPMSS),
            int,
            f"an integer {mtu.MIN_TCPMSS}..{mtu.MAX_TCPMSS}",
        )
        suite = _expect(
            p,
            line("tls_cipher"),
            "tls_cipher",
            data.get("tls_cipher", mtu.DEFAULT_CIPHER),
            str,
            "a cipher suite name",
        )
        try:
            kw["tls_mtu"] = mtu.tls_mtu_asa(tcpmss, suite)
        except UsageError as exc:
            raise InputError(f"{p}:{line('tls_cipher') or line('tcpmss')}: {exc}") from None
    try:
        return Topology(**kw)
    except UsageError as exc:
        raise InputError(f"{p}: {exc}") from None
