"""Read a scenario file into a :class:`~labkit.scenario.schema.Scenario`, or say exactly why not.

PyYAML's ``compose`` keeps every node's position, so each error names the file, the line and
the dotted key: ``dtls-blocked.yaml:14: head_end.tcpmss: expected an integer 536..65495, got
'abc'``. Unknown keys and duplicate keys are errors, never silently ignored: a misspelt knob
would otherwise build a different scenario than the one the engineer meant. Scalars are
converted with YAML 1.1 rules (PyYAML's ``SafeConstructor``), so ``0x0100`` is 256 and
``yes`` is true; the checks below accept what a person means and reject the rest.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from labkit import mtu, yamlguard
from labkit.fileio import read_input
from labkit.findings import FINDING_TYPES
from labkit.scenario.schema import (
    OVERRIDABLE,
    US,
    Client,
    Connect,
    Dtls,
    Expect,
    ExpectedFinding,
    Flow,
    HeadEnd,
    Hosts,
    Override,
    PathKnobs,
    Scenario,
    ScenarioError,
    Step,
)
from labkit.wire import SUITE_CODES

MAX_FILE_BYTES = 1 << 20  # a scenario is a page of YAML, not a data set
MAX_DEPTH = 16  # mappings and lists nested in a scenario (it needs 4)
MAX_MESSAGE = 300  # characters of an error message after file:line: key:
MAX_STEPS = 50
MAX_TIME_S = 3600.0
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
FIELD_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
#: Suites OpenConnect offers for AnyConnect's legacy DTLS (``dtls.c``, DTLS1_BAD_VER).
LEGACY_DTLS_SUITES = ("AES256-SHA", "AES128-SHA", "DES-CBC3-SHA")
BUILT_TLS_VERSIONS = ("1.0", "1.1", "1.2")
#: iperf3's port: tshark 4.0 decodes no protocol on it, so the opaque payload of a flow is
#: never taken for a malformed HTTP message (and retransmissions cut differently never
#: upset an application-layer reassembly).
DEFAULT_SERVER_PORT = 5201


class _Doc:
    """One file's nodes: typed getters that raise ``file:line: key: message``."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[str, int] = {}
        self._constructor = SafeConstructor()

    def error(self, node: Node | None, key: str, message: str) -> ScenarioError:
        line = node.start_mark.line + 1 if node is not None else 1
        if len(message) > MAX_MESSAGE:  # a value quoted in the message may be a megabyte
            message = message[: MAX_MESSAGE - 3] + "..."
        return ScenarioError.at(self.source, line, key, message)

    def value(self, node: Node, key: str) -> Any:
        try:
            return yamlguard.construct(self._constructor, node)
        except yamlguard.YamlRefused as exc:
            raise ScenarioError.at(self.source, exc.line, key, exc.message) from None

    def mapping(
        self, node: Node | None, key: str, allowed: Iterable[str], required: Iterable[str] = ()
    ) -> dict[str, Node]:
        """The keys of a mapping node; unknown, duplicate or missing keys are errors."""
        if not isinstance(node, MappingNode):
            raise self.error(node, key, f"expected a mapping, got {self._kind(node)}")
        allowed = tuple(allowed)
        out: dict[str, Node] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, ScalarNode):
                raise self.error(knode, key, "a key must be a single value, not a list")
            name = knode.value
            path = f"{key}.{name}" if key else str(name)
            if name not in allowed:
                hint = f"; known keys: {', '.join(allowed)}" if allowed else ""
                raise self.error(knode, path, f"unknown key {name!r}{hint}")
            if name in out:
                raise self.error(knode, path, "duplicate key")
            out[name] = vnode
            self.lines[path] = knode.start_mark.line + 1
        for name in required:
            if name not in out:
                raise self.error(node, key, f"missing key {name!r}")
        return out

    def sequence(self, node: Node, key: str, limit: int) -> list[Node]:
        if not isinstance(node, SequenceNode):
            raise self.error(node, key, f"expected a list, got {self._kind(node)}")
        if len(node.value) > limit:
            raise self.error(node, key, f"at most {limit} entries, got {len(node.value)}")
        return list(node.value)

    def _kind(self, node: Node | None) -> str:
        if isinstance(node, MappingNode):
            return "a mapping"
        if isinstance(node, SequenceNode):
            return "a list"
        if node is None:
            return "nothing"
        return repr(self.value(node, ""))

    def scalar(self, node: Node, key: str) -> Any:
        if not isinstance(node, ScalarNode):
            raise self.error(node, key, f"expected a single value, got {self._kind(node)}")
        return self.value(node, key)

    def integer(self, node: Node, key: str, lo: int, hi: int) -> int:
        v = self.scalar(node, key)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise self.error(node, key, f"expected an integer {lo}..{hi}, got {v!r}")
        return v

    def seconds(self, node: Node, key: str, lo: float, hi: float) -> int:
        """A time in seconds, returned in integer microseconds."""
        v = self.scalar(node, key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise self.error(node, key, f"expected seconds {lo:g}..{hi:g}, got {v!r}")
        return round(v * US)

    def milliseconds(self, node: Node, key: str, lo: float, hi: float) -> int:
        v = self.scalar(node, key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise self.error(node, key, f"expected milliseconds {lo:g}..{hi:g}, got {v!r}")
        return round(v * 1000)

    def boolean(self, node: Node, key: str) -> bool:
        v = self.scalar(node, key)
        if not isinstance(v, bool):
            raise self.error(node, key, f"expected true or false, got {v!r}")
        return v

    def text(self, node: Node, key: str) -> str:
        v = self.scalar(node, key)
        if not isinstance(v, str) or not v.strip():
            raise self.error(node, key, f"expected text, got {v!r}")
        return v

    def choice(
        self, node: Node, key: str, choices: Iterable[str], convert: Callable[[Any], str] = str
    ) -> str:
        v = self.scalar(node, key)
        text = convert(v)
        choices = tuple(choices)
        if text not in choices:
            raise self.error(node, key, f"expected one of {', '.join(choices)}, got {v!r}")
        return text

    def address(self, node: Node, key: str, *, ipv4_only: bool = False) -> str:
        v = self.scalar(node, key)
        try:
            addr = ipaddress.ip_address(str(v))
        except ValueError:
            raise self.error(node, key, f"expected an IPv4 or IPv6 address, got {v!r}") from None
        if ipv4_only and addr.version != 4:
            raise self.error(
                node,
                key,
                f"expected an IPv4 address, got {v!r} (the MTU model "
                "computes the outer path over IPv4)",
            )
        return str(addr)


# --- sections ---------------------------------------------------------------------------------


def _hosts(doc: _Doc, node: Node) -> Hosts:
    m = doc.mapping(
        node, "hosts", ("client", "head_end", "server"), ("client", "head_end", "server")
    )
    c = doc.mapping(m["client"], "hosts.client", ("outside", "tunnel"), ("outside", "tunnel"))
    h = doc.mapping(
        m["head_end"], "hosts.head_end", ("outside", "inside", "name"), ("outside", "inside")
    )
    s = doc.mapping(m["server"], "hosts.server", ("address", "port"), ("address",))
    name = "vpn.example.com"
    if "name" in h:
        name = doc.text(h["name"], "hosts.head_end.name").lower()
        if not HOSTNAME_RE.match(name):
            raise doc.error(h["name"], "hosts.head_end.name", f"expected a DNS name, got {name!r}")
    hosts = Hosts(
        client_outside=doc.address(c["outside"], "hosts.client.outside", ipv4_only=True),
        client_tunnel=doc.address(c["tunnel"], "hosts.client.tunnel"),
        head_end_outside=doc.address(h["outside"], "hosts.head_end.outside", ipv4_only=True),
        head_end_inside=doc.address(h["inside"], "hosts.head_end.inside"),
        head_end_name=name,
        server=doc.address(s["address"], "hosts.server.address"),
        server_port=(
            doc.integer(s["port"], "hosts.server.port", 1, 65535)
            if "port" in s
            else DEFAULT_SERVER_PORT
        ),
    )
    for key, addr, vnode in (
        ("hosts.head_end.inside", hosts.head_end_inside, h["inside"]),
        ("hosts.server.address", hosts.server, s["address"]),
    ):
        if (":" in addr) != hosts.inner_ipv6:
            raise doc.error(
                vnode,
                key,
                f"{addr} is not the same IP version as the tunnel address {hosts.client_tunnel}",
            )
    addresses = [
        hosts.client_outside,
        hosts.client_tunnel,
        hosts.head_end_outside,
        hosts.head_end_inside,
        hosts.server,
    ]
    if len(set(addresses)) != len(addresses):
        raise doc.error(node, "hosts", "every host address must be different")
    return hosts


def _cipher_name(v: Any) -> str:
    try:
        return mtu.cipher(str(v)).name
    except Exception:  # an unknown name: choice() lists the known ones
        return str(v)


def _version(v: Any) -> str:
    """YAML reads 1.2 as a float and 0x0100 as the integer 256: both mean what they say."""
    if v == 256 and not isinstance(v, bool):
        return "0x0100"
    return str(v)


def _head_end(doc: _Doc, node: Node) -> HeadEnd:
    keys = (
        "tcpmss",
        "tls_cipher",
        "tls_version",
        "dtls",
        "dtls_cipher",
        "dtls_version",
        "dtls_port",
        "anyconnect_mtu",
        "df_bit_ignore",
        "icmp_unreachables",
    )
    m = doc.mapping(node, "head_end", keys)
    d = HeadEnd()
    tls_suites = [n for n, c in mtu.CIPHERS.items() if n in SUITE_CODES and not c.tls13]
    tls_cipher = (
        doc.choice(m["tls_cipher"], "head_end.tls_cipher", tls_suites, _cipher_name)
        if "tls_cipher" in m
        else d.tls_cipher
    )
    tls_version = (
        doc.choice(m["tls_version"], "head_end.tls_version", BUILT_TLS_VERSIONS, _version)
        if "tls_version" in m
        else d.tls_version
    )
    suite = mtu.cipher(tls_cipher)
    if tls_version != "1.2" and (suite.kind == "aead" or suite.mac > 20):
        raise doc.error(
            m.get("tls_version", m.get("tls_cipher")),
            "head_end.tls_version",
            f"{tls_cipher} needs TLS 1.2, got {tls_version}",
        )
    anyconnect_mtu = None
    if (
        "anyconnect_mtu" in m
        and doc.scalar(m["anyconnect_mtu"], "head_end.anyconnect_mtu") is not None
    ):
        anyconnect_mtu = doc.integer(
            m["anyconnect_mtu"], "head_end.anyconnect_mtu", mtu.MIN_IPV4_MTU, mtu.MAX_IP_PACKET
        )

    def flag(key: str, default: bool) -> bool:
        return doc.boolean(m[key], f"head_end.{key}") if key in m else default

    return HeadEnd(
        tcpmss=(
            doc.integer(m["tcpmss"], "head_end.tcpmss", mtu.MIN_TCPMSS, mtu.MAX_TCPMSS)
            if "tcpmss" in m
            else d.tcpmss
        ),
        tls_cipher=tls_cipher,
        tls_version=tls_version,
        dtls=flag("dtls", d.dtls),
        dtls_cipher=(
            doc.choice(m["dtls_cipher"], "head_end.dtls_cipher", LEGACY_DTLS_SUITES, _cipher_name)
            if "dtls_cipher" in m
            else d.dtls_cipher
        ),
        dtls_version=(
            doc.choice(m["dtls_version"], "head_end.dtls_version", ("0x0100",), _version)
            if "dtls_version" in m
            else d.dtls_version
        ),
        dtls_port=(
            doc.integer(m["dtls_port"], "head_end.dtls_port", 1, 65535)
            if "dtls_port" in m
            else d.dtls_port
        ),
        anyconnect_mtu=anyconnect_mtu,
        df_bit_ignore=flag("df_bit_ignore", d.df_bit_ignore),
        icmp_unreachables=flag("icmp_unreachables", d.icmp_unreachables),
    )


def _client(doc: _Doc, node: Node) -> Client:
    m = doc.mapping(node, "client", ("base_mtu",))
    if "base_mtu" not in m:
        return Client()
    return Client(
        doc.integer(m["base_mtu"], "client.base_mtu", mtu.MIN_IPV4_MTU, mtu.MAX_IP_PACKET)
    )


def _path(doc: _Doc, node: Node) -> PathKnobs:
    keys = ("dtls_udp_blocked", "icmp_blocked", "outside_rtt_ms", "inside_rtt_ms")
    m = doc.mapping(node, "path", keys)
    d = PathKnobs()
    return PathKnobs(
        dtls_udp_blocked=(
            doc.boolean(m["dtls_udp_blocked"], "path.dtls_udp_blocked")
            if "dtls_udp_blocked" in m
            else d.dtls_udp_blocked
        ),
        icmp_blocked=(
            doc.boolean(m["icmp_blocked"], "path.icmp_blocked")
            if "icmp_blocked" in m
            else d.icmp_blocked
        ),
        outside_rtt_us=(
            doc.milliseconds(m["outside_rtt_ms"], "path.outside_rtt_ms", 0.1, 2000)
            if "outside_rtt_ms" in m
            else d.outside_rtt_us
        ),
        inside_rtt_us=(
            doc.milliseconds(m["inside_rtt_ms"], "path.inside_rtt_ms", 0.01, 2000)
            if "inside_rtt_ms" in m
            else d.inside_rtt_us
        ),
    )


_STEP_KEYS: dict[str, tuple[str, ...]] = {
    "connect": ("step", "at"),
    "dtls": ("step", "at", "attempts", "timeout", "reconnect_delay"),
    "flow": ("step", "at", "segments", "retries"),
}


def _step(doc: _Doc, node: Node, key: str) -> Step:
    if not isinstance(node, MappingNode):
        raise doc.error(node, key, "expected a mapping with a 'step' key")
    kinds = {k.value: v for k, v in node.value if isinstance(k, ScalarNode)}
    if "step" not in kinds:
        raise doc.error(node, key, f"missing key 'step' (one of {', '.join(_STEP_KEYS)})")
    kind = doc.choice(kinds["step"], f"{key}.step", _STEP_KEYS)
    m = doc.mapping(node, key, _STEP_KEYS[kind], ("step", "at"))
    line = node.start_mark.line + 1
    at = doc.seconds(m["at"], f"{key}.at", 0, MAX_TIME_S)
    if kind == "connect":
        return Connect(at, line)
    if kind == "dtls":
        d = Dtls(at, line)
        return Dtls(
            at,
            line,
            attempts=(
                doc.integer(m["attempts"], f"{key}.attempts", 1, 10)
                if "attempts" in m
                else d.attempts
            ),
            timeout_us=(
                doc.seconds(m["timeout"], f"{key}.timeout", 0.1, 60)
                if "timeout" in m
                else d.timeout_us
            ),
            reconnect_delay_us=(
                doc.seconds(m["reconnect_delay"], f"{key}.reconnect_delay", 0, 60)
                if "reconnect_delay" in m
                else d.reconnect_delay_us
            ),
        )
    f = Flow(at, line)
    return Flow(
        at,
        line,
        segments=(
            doc.integer(m["segments"], f"{key}.segments", 1, 10) if "segments" in m else f.segments
        ),
        retries=doc.integer(m["retries"], f"{key}.retries", 0, 8) if "retries" in m else f.retries,
    )


def _timeline(doc: _Doc, node: Node, head_end: HeadEnd) -> tuple[Step, ...]:
    nodes = doc.sequence(node, "timeline", MAX_STEPS)
    steps = [_step(doc, n, f"timeline[{i}]") for i, n in enumerate(nodes)]
    if not steps or not isinstance(steps[0], Connect):
        raise doc.error(
            nodes[0] if nodes else node,
            "timeline[0]",
            "the timeline starts with a 'connect' step (the parent TLS tunnel)",
        )
    for i, (prev, cur) in enumerate(zip(steps, steps[1:]), 1):
        if cur.at_us < prev.at_us:
            raise doc.error(
                nodes[i],
                f"timeline[{i}].at",
                "steps must be in time order "
                f"({cur.at_us / US:g} s is before {prev.at_us / US:g} s)",
            )
    for i, s in enumerate(steps[1:], 1):
        if isinstance(s, Connect):
            raise doc.error(
                nodes[i],
                f"timeline[{i}].step",
                "only the first step connects; reconnects follow from the DTLS outcome",
            )
    dtls_steps = [i for i, s in enumerate(steps) if isinstance(s, Dtls)]
    if len(dtls_steps) > 1:
        raise doc.error(
            nodes[dtls_steps[1]],
            f"timeline[{dtls_steps[1]}].step",
            "at most one 'dtls' step (its retries are in 'attempts')",
        )
    if dtls_steps and not head_end.dtls:
        i = dtls_steps[0]
        raise doc.error(
            nodes[i], f"timeline[{i}].step", "head_end.dtls is false: the client does not try DTLS"
        )
    return tuple(steps)


def _overrides(doc: _Doc, node: Node) -> tuple[Override, ...]:
    m = doc.mapping(node, "overrides", OVERRIDABLE)
    return tuple(
        Override(k, doc.integer(v, f"overrides.{k}", 1, mtu.MAX_IP_PACKET), v.start_mark.line + 1)
        for k, v in m.items()
    )


def _expect(doc: _Doc, node: Node) -> Expect:
    m = doc.mapping(node, "expect", ("report", "not_report"))
    report: list[ExpectedFinding] = []
    ids = tuple(FINDING_TYPES)
    for i, item in enumerate(
        doc.sequence(m["report"], "expect.report", 50) if "report" in m else []
    ):
        key = f"expect.report[{i}]"
        if not isinstance(item, MappingNode):
            raise doc.error(item, key, "expected a mapping with an 'id' key")
        names = [k.value for k, _ in item.value if isinstance(k, ScalarNode)]
        fields = doc.mapping(item, key, names, ("id",))
        fid = doc.choice(fields.pop("id"), f"{key}.id", ids)
        values: list[tuple[str, object]] = []
        for name, vnode in fields.items():
            if not FIELD_RE.match(name):
                raise doc.error(vnode, f"{key}.{name}", "expected a snake_case field name")
            v = doc.scalar(vnode, f"{key}.{name}")
            if v is None:
                raise doc.error(
                    vnode,
                    f"{key}.{name}",
                    "expected a value (to expect the field's absence, leave it out)",
                )
            values.append((name, v))
        report.append(ExpectedFinding(fid, tuple(values), item.start_mark.line + 1))
    not_report: list[str] = []
    for i, item in enumerate(
        doc.sequence(m["not_report"], "expect.not_report", 50) if "not_report" in m else []
    ):
        fid = doc.choice(item, f"expect.not_report[{i}]", ids)
        if fid in {r.id for r in report}:
            raise doc.error(item, f"expect.not_report[{i}]", f"{fid} is also in expect.report")
        not_report.append(fid)
    return Expect(tuple(report), tuple(not_report))


# --- the file ---------------------------------------------------------------------------------

TOP_KEYS = (
    "name",
    "description",
    "seed",
    "hosts",
    "head_end",
    "client",
    "path",
    "timeline",
    "overrides",
    "expect",
)


def parse(text: str, source: str, default_name: str = "scenario") -> Scenario:
    """A scenario from YAML ``text``; ``source`` names it in errors (a path, usually)."""
    doc = _Doc(source)
    try:
        root = yamlguard.compose(
            text, max_depth=MAX_DEPTH, what="a scenario is a few levels of mappings and lists"
        )
    except yamlguard.YamlRefused as exc:
        raise ScenarioError.at(source, exc.line, "", exc.message) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ScenarioError.at(
            source, line, "", f"not valid YAML: {exc.problem or exc.context}"
        ) from None
    except yaml.YAMLError as exc:
        raise ScenarioError.at(source, 1, "", f"not valid YAML: {exc}") from None
    if root is None:
        raise ScenarioError.at(source, 1, "", "the file is empty; a scenario is a YAML mapping")
    m = doc.mapping(root, "", TOP_KEYS, ("hosts", "timeline"))
    name = default_name
    if "name" in m:
        name = doc.text(m["name"], "name")
    if not NAME_RE.match(name):
        raise doc.error(
            m.get("name"), "name", f"expected lowercase letters, digits and dashes, got {name!r}"
        )
    head_end = _head_end(doc, m["head_end"]) if "head_end" in m else HeadEnd()
    return Scenario(
        name=name,
        description=" ".join(doc.text(m["description"], "description").split())
        if "description" in m
        else "",
        source=source,
        seed=doc.integer(m["seed"], "seed", 0, 2**32 - 1) if "seed" in m else 0,
        hosts=_hosts(doc, m["hosts"]),
        head_end=head_end,
        client=_client(doc, m["client"]) if "client" in m else Client(),
        path=_path(doc, m["path"]) if "path" in m else PathKnobs(),
        timeline=_timeline(doc, m["timeline"], head_end),
        overrides=_overrides(doc, m["overrides"]) if "overrides" in m else (),
        expect=_expect(doc, m["expect"]) if "expect" in m else Expect(),
        lines=tuple(sorted(doc.lines.items())),
    )


def load(path: str | Path) -> Scenario:
    """Read and validate one scenario file; the name defaults to the file's stem."""
    p = Path(path)
    # A bounded read, not stat().st_size: a pipe or /dev/zero has size 0 and never ends.
    data = read_input(p, MAX_FILE_BYTES, "a scenario")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse(text, str(path), default_name=p.stem.lower())
