"""Read the parts of a Cisco ASA configuration that decide AnyConnect's tunnel MTUs.

Sans-IO: :func:`parse` takes the text of a running-config (or a pasted fragment) and returns
an :class:`AsaConfig`; it never opens a file. Only these commands are modelled; every other
line is passed over (a running-config has hundreds that do not matter here):

* ``sysopt connection tcpmss N``: the MSS the ASA clamps to, the base of its TLS MTU
  (``debug webvpn anyconnect``: ``tcpmss - 5 - 8 - padding - hash``, DESIGN.md section 2).
* ``ssl cipher VERSION LEVEL|custom "LIST"`` (ASA 9.x), ``ssl encryption ...`` (ASA <= 9.3),
  ``ssl server-version``: which suites TLS and DTLS may negotiate.
* ``webvpn``: ``enable IF [tls-only]``, ``anyconnect enable``, ``dtls port N``.
* ``group-policy NAME attributes`` / ``vpn-tunnel-protocol`` / ``webvpn`` /
  ``anyconnect mtu N``, ``anyconnect ssl dtls enable|none``,
  ``anyconnect ssl df-bit-ignore enable|disable`` (and the pre-AnyConnect ``svc`` spellings).
* ``tunnel-group NAME general-attributes`` / ``default-group-policy NAME``.

Modes follow the running-config's indentation. A fragment pasted without indentation is read
the way the ASA CLI reads typed commands: a command the current mode does not know is tried
in the enclosing modes (so ``webvpn`` right after ``group-policy G attributes`` is the
group-policy's webvpn mode, as it would be at the prompt).

Bad arguments to a modelled command, and lines that are not CLI commands at all, become
:class:`ConfigWarning` s with their line numbers; parsing goes on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from labkit import mtu

#: The group-policy every other one inherits unset attributes from.
DEFAULT_GROUP_POLICY: Final = "DfltGrpPolicy"
#: ``dtls port`` when the webvpn block does not set one.
DEFAULT_DTLS_PORT: Final = mtu.DEFAULT_DTLS_PORT

#: ``ssl cipher`` protocol keywords (ASA command reference, ``ssl cipher``); ``default`` sets
#: the suites of the ASA's own outbound connections, so it does not touch AnyConnect.
CIPHER_VERSIONS: Final = ("default", "tlsv1", "tlsv1.1", "tlsv1.2", "tlsv1.3", "dtlsv1", "dtlsv1.2")
CIPHER_LEVELS: Final = ("all", "low", "medium", "fips", "high", "custom")
#: ASA default level for every protocol version (``show run all ssl``).
DEFAULT_CIPHER_LEVEL: Final = "medium"

#: The suites the ASA implements, in the order ``show ssl ciphers all`` lists them
#: (strongest first). OpenSSL names, as ``ssl cipher ... custom`` takes them.
ASA_SUITES: Final = (
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "DHE-RSA-AES256-GCM-SHA384",
    "AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES256-SHA384",
    "ECDHE-RSA-AES256-SHA384",
    "DHE-RSA-AES256-SHA256",
    "AES256-SHA256",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES128-GCM-SHA256",
    "AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES128-SHA256",
    "ECDHE-RSA-AES128-SHA256",
    "DHE-RSA-AES128-SHA256",
    "AES128-SHA256",
    "DHE-RSA-AES256-SHA",
    "AES256-SHA",
    "DHE-RSA-AES128-SHA",
    "AES128-SHA",
    "DES-CBC3-SHA",
    "RC4-SHA",
    "RC4-MD5",
    "DES-CBC-SHA",
    "NULL-SHA",
)
ASA_TLS13_SUITES: Final = (
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
)

#: What each named level leaves out of :data:`ASA_SUITES` (ASA command reference,
#: ``ssl cipher``: all = every suite, NULL-SHA included; low = all but NULL-SHA; medium (the
#: default) and fips = no NULL, DES, RC4 or 3DES; high = AES-256 with SHA-2 only, TLS 1.2
#: and DTLS 1.2 only).
_WEAK: Final = frozenset({"NULL-SHA", "DES-CBC-SHA", "RC4-MD5", "RC4-SHA", "DES-CBC3-SHA"})
_LEVEL_EXCLUDES: Final[dict[str, frozenset[str]]] = {
    "all": frozenset(),
    "low": frozenset({"NULL-SHA"}),
    "medium": _WEAK,
    "fips": _WEAK,
}
_HIGH: Final = tuple(s for s in ASA_SUITES if "AES256" in s and s.endswith(("SHA256", "SHA384")))
_HIGH_VERSIONS: Final = ("tlsv1.2", "dtlsv1.2", "default")

#: ``ssl encryption`` keywords of ASA 8.x-9.3 and the OpenSSL suites they name.
LEGACY_ENCRYPTION: Final[dict[str, str]] = {
    "aes256-sha1": "AES256-SHA",
    "aes128-sha1": "AES128-SHA",
    "dhe-aes256-sha1": "DHE-RSA-AES256-SHA",
    "dhe-aes128-sha1": "DHE-RSA-AES128-SHA",
    "3des-sha1": "DES-CBC3-SHA",
    "rc4-sha1": "RC4-SHA",
    "rc4-md5": "RC4-MD5",
    "des-sha1": "DES-CBC-SHA",
    "null-sha1": "NULL-SHA",
}

# A CLI command starts with a lowercase keyword (``no`` for negations); anything else, for
# example ``key: value`` or ``<html>``, is not a line of an ASA configuration.
_COMMAND: Final = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
# Running-config boilerplate that carries no command: comments, the ``: Saved`` banner and
# the ``ASA Version 9.17(1)`` line.
_SKIP_PREFIXES: Final = ("!", ":", "#", "ASA Version")
# A pasted CLI session: ``asa(config-group-webvpn)# anyconnect mtu 1300``. The prompt goes;
# the command stays (and the paste, having no indentation, is read mode by mode).
_PROMPT: Final = re.compile(r"^[\w.-]+(?:/[\w.-]+)*(?:\([\w-]+\))?[#>]\s*")


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """A line labkit could not use: where it is, what it says, and why it was passed over."""

    line: int  # 1-based
    text: str
    message: str

    def to_json(self) -> dict[str, object]:
        return {"line": self.line, "text": self.text, "message": self.message}


@dataclass(frozen=True, slots=True)
class CipherSetting:
    """One ``ssl cipher VERSION ...`` (or ``ssl encryption``) line: the suites it allows."""

    version: str
    level: str  # a CIPHER_LEVELS name, or "legacy" for ``ssl encryption``
    suites: tuple[str, ...]  # OpenSSL names, ASA order; may name suites labkit does not model
    line: int | None  # None: the ASA default, not written in the config


@dataclass(frozen=True, slots=True)
class WebVpn:
    """The global ``webvpn`` block: where AnyConnect listens and on which DTLS port."""

    line: int
    interfaces: tuple[str, ...] = ()
    tls_only_interfaces: tuple[str, ...] = ()  # ``enable IF tls-only``: no DTLS there
    anyconnect_enabled: bool = False
    dtls_port: int = DEFAULT_DTLS_PORT
    dtls_port_line: int | None = None


@dataclass(frozen=True, slots=True)
class GroupPolicy:
    """The attributes a group-policy sets itself; None means "inherit from DfltGrpPolicy"."""

    name: str
    line: int
    anyconnect_mtu: int | None = None
    dtls: bool | None = None  # ``anyconnect ssl dtls enable`` (True) / ``none`` (False)
    df_bit_ignore: bool | None = None
    tunnel_protocols: tuple[str, ...] | None = None
    lines: dict[str, int] = field(default_factory=dict)  # attribute -> line that set it


@dataclass(frozen=True, slots=True)
class TunnelGroup:
    name: str
    line: int
    default_group_policy: str | None = None  # None: DfltGrpPolicy
    policy_line: int | None = None


@dataclass(frozen=True, slots=True)
class AsaConfig:
    """Everything :func:`parse` understood, with the line each value came from."""

    tcpmss: int = mtu.DEFAULT_TCPMSS
    tcpmss_line: int | None = None  # None: not in the config, the ASA default applies
    ciphers: dict[str, CipherSetting] = field(default_factory=dict)  # version -> setting
    server_version: tuple[str, ...] = ()  # ``ssl server-version`` keywords
    webvpn: WebVpn | None = None
    group_policies: dict[str, GroupPolicy] = field(default_factory=dict)
    tunnel_groups: dict[str, TunnelGroup] = field(default_factory=dict)
    warnings: tuple[ConfigWarning, ...] = ()
    commands: int = 0  # lines read as commands labkit models

    def cipher(self, version: str) -> CipherSetting:
        """The setting for ``version``: the configured line, else the ASA's default level."""
        found = self.ciphers.get(version) or self.ciphers.get("legacy")
        if found is not None:
            return found
        return CipherSetting(
            version, DEFAULT_CIPHER_LEVEL, level_suites(DEFAULT_CIPHER_LEVEL, version), None
        )


def level_suites(level: str, version: str) -> tuple[str, ...]:
    """The suites a named level allows for ``version``, in the ASA's order."""
    if version == "tlsv1.3":
        return ASA_TLS13_SUITES
    if level == "high":
        return _HIGH
    return tuple(s for s in ASA_SUITES if s not in _LEVEL_EXCLUDES[level])


# --------------------------------------------------------------------------------------
# Parsing. A small mutable builder per object, frozen at the end.


class _Error(Exception):
    """A modelled command with arguments labkit cannot read: becomes a ConfigWarning."""


def _int(token: str, what: str, low: int, high: int) -> int:
    # ASCII digits only: '²'.isdigit() is true and int('²') fails; and only as many digits as
    # the range needs: int() refuses strings of more than 4300 digits.
    if not (token.isascii() and token.isdigit()):
        raise _Error(f"{what}: expected a number, got {token!r}")
    digits = token.lstrip("0")
    value = int(digits or "0") if len(digits) <= len(str(high)) else high + 1
    if not low <= value <= high:
        shown = token if len(token) <= 12 else token[:12] + "..."
        raise _Error(f"{what} {shown}: expected {low}..{high}")
    return value


@dataclass
class _Policy:
    name: str
    line: int
    anyconnect_mtu: int | None = None
    dtls: bool | None = None
    df_bit_ignore: bool | None = None
    tunnel_protocols: tuple[str, ...] | None = None
    lines: dict[str, int] = field(default_factory=dict)  # attribute -> line that set it

    def set(self, attr: str, value: object, line: int | None) -> None:
        """Set (or, with None, unset: ``no anyconnect mtu``) one attribute and its line."""
        setattr(self, attr, value)
        if line is None:
            self.lines.pop(attr, None)
        else:
            self.lines[attr] = line

    def freeze(self) -> GroupPolicy:
        return GroupPolicy(
            self.name,
            self.line,
            self.anyconnect_mtu,
            self.dtls,
            self.df_bit_ignore,
            self.tunnel_protocols,
            dict(self.lines),
        )


@dataclass
class _WebVpn:
    line: int
    interfaces: list[str] = field(default_factory=list)
    tls_only: list[str] = field(default_factory=list)
    anyconnect_enabled: bool = False
    dtls_port: int = DEFAULT_DTLS_PORT
    dtls_port_line: int | None = None

    def freeze(self) -> WebVpn:
        return WebVpn(
            self.line,
            tuple(self.interfaces),
            tuple(self.tls_only),
            self.anyconnect_enabled,
            self.dtls_port,
            self.dtls_port_line,
        )


@dataclass
class _TunnelGroup:
    name: str
    line: int
    default_group_policy: str | None = None
    policy_line: int | None = None

    def freeze(self) -> TunnelGroup:
        return TunnelGroup(self.name, self.line, self.default_group_policy, self.policy_line)


@dataclass
class _Builder:
    tcpmss: int = mtu.DEFAULT_TCPMSS
    tcpmss_line: int | None = None
    ciphers: dict[str, CipherSetting] = field(default_factory=dict)
    server_version: tuple[str, ...] = ()
    webvpn: _WebVpn | None = None
    policies: dict[str, _Policy] = field(default_factory=dict)
    tunnel_groups: dict[str, _TunnelGroup] = field(default_factory=dict)
    warnings: list[ConfigWarning] = field(default_factory=list)
    commands: int = 0

    def policy(self, name: str, line: int) -> _Policy:
        return self.policies.setdefault(name, _Policy(name, line))

    def tunnel_group(self, name: str, line: int) -> _TunnelGroup:
        return self.tunnel_groups.setdefault(name, _TunnelGroup(name, line))


# A mode is (kind, name): "top", "webvpn", "gp" (group-policy attributes), "gp-webvpn",
# "tg" (tunnel-group general-attributes) or "other" (a block labkit passes over).
Mode = tuple[str, str]
TOP: Final[Mode] = ("top", "")
OTHER: Final[Mode] = ("other", "")
#: What a handler returns for a command that opens no mode.
LEAF: Final[Mode] = ("leaf", "")


def _top(b: _Builder, words: list[str], n: int) -> Mode | None:
    """Global configuration mode. Returns the mode the line opens, or None if not ours."""
    if words[:3] == ["sysopt", "connection", "tcpmss"]:
        if words[3:4] == ["minimum"]:
            return LEAF  # the floor for clamping, not the MSS the ASA uses for its TLS MTU
        if len(words) != 4:
            raise _Error("expected 'sysopt connection tcpmss N'")
        b.tcpmss = _int(words[3], "tcpmss", mtu.MIN_TCPMSS, mtu.MAX_TCPMSS)
        b.tcpmss_line = n
        return LEAF
    if words[:2] == ["no", "sysopt"] and words[2:4] == ["connection", "tcpmss"]:
        raise _Error(
            "'no sysopt connection tcpmss' (no MSS clamping) is not modelled; "
            f"assuming the default {mtu.DEFAULT_TCPMSS}"
        )
    if words[:2] == ["ssl", "cipher"]:
        _ssl_cipher(b, words[2:], n)
        return LEAF
    if words[:2] == ["ssl", "encryption"]:
        names = [LEGACY_ENCRYPTION.get(w) for w in words[2:]]
        if not words[2:] or None in names:
            raise _Error(f"ssl encryption: expected keywords from {', '.join(LEGACY_ENCRYPTION)}")
        b.ciphers["legacy"] = CipherSetting("legacy", "legacy", tuple(n_ for n_ in names if n_), n)
        return LEAF
    if words[:2] == ["ssl", "server-version"]:
        b.server_version = tuple(words[2:])
        return LEAF
    if words == ["webvpn"]:
        if b.webvpn is None:
            b.webvpn = _WebVpn(n)
        return ("webvpn", "")
    if words[0] == "group-policy":
        if len(words) < 3:
            raise _Error("expected 'group-policy NAME internal|external|attributes'")
        if words[2] == "attributes":
            b.policy(words[1], n)
            return ("gp", words[1])
        if words[2] == "internal":
            b.policy(words[1], n)
        return OTHER
    if words[0] == "tunnel-group":
        if len(words) < 3:
            raise _Error("expected 'tunnel-group NAME type|general-attributes ...'")
        if words[2] == "general-attributes":
            b.tunnel_group(words[1], n)
            return ("tg", words[1])
        if words[2] == "type":
            if words[3:4] == ["remote-access"]:
                b.tunnel_group(words[1], n)
            return OTHER
        return OTHER
    return None


def _ssl_cipher(b: _Builder, args: list[str], n: int) -> None:
    if len(args) < 2 or args[0] not in CIPHER_VERSIONS or args[1] not in CIPHER_LEVELS:
        raise _Error(
            f"expected 'ssl cipher {{{'|'.join(CIPHER_VERSIONS)}}} {{{'|'.join(CIPHER_LEVELS)}}}'"
        )
    version, level = args[0], args[1]
    if level == "custom":
        text = " ".join(args[2:]).strip('"')
        suites = tuple(s for s in re.split(r"[:,\s]+", text) if s and s[0] not in "!-+@")
        if not suites:
            raise _Error(
                'ssl cipher custom: expected a quoted list such as "AES256-SHA:AES128-SHA"'
            )
    else:
        if len(args) != 2:
            raise _Error(f"ssl cipher {version} {level}: unexpected {' '.join(args[2:])!r}")
        if level == "high" and version not in _HIGH_VERSIONS:
            raise _Error(f"ssl cipher {version} high: 'high' applies to TLS 1.2 and DTLS 1.2 only")
        suites = level_suites(level, version)
    b.ciphers[version] = CipherSetting(version, level, suites, n)


def _webvpn(b: _Builder, words: list[str], n: int) -> Mode | None:
    web = b.webvpn
    assert web is not None
    if words[0] == "enable" and len(words) in (2, 3):
        if words[2:] not in ([], ["tls-only"]):
            raise _Error(f"enable {words[1]}: unexpected {words[2]!r}")
        web.interfaces.append(words[1])
        if words[2:] == ["tls-only"]:
            web.tls_only.append(words[1])
        return LEAF
    if words in (["anyconnect", "enable"], ["svc", "enable"]):
        web.anyconnect_enabled = True
        return LEAF
    if words[:2] == ["dtls", "port"]:
        if len(words) != 3:
            raise _Error("expected 'dtls port N'")
        web.dtls_port, web.dtls_port_line = _int(words[2], "dtls port", 1, 65535), n
        return LEAF
    return None


def _group_policy(b: _Builder, name: str, words: list[str], n: int) -> Mode | None:
    if words == ["webvpn"]:
        return ("gp-webvpn", name)
    if words[0] == "vpn-tunnel-protocol":
        b.policy(name, n).set("tunnel_protocols", tuple(words[1:]), n)
        return LEAF
    return None


def _group_policy_webvpn(b: _Builder, name: str, words: list[str], n: int) -> Mode | None:
    # ``svc`` is the AnyConnect keyword of ASA 8.x; same meaning.
    if words[0] not in ("anyconnect", "svc", "no"):
        return None
    negated = words[0] == "no"
    rest = words[2:] if negated else words[1:]
    if negated and words[1:2] not in (["anyconnect"], ["svc"]):
        return None
    policy = b.policy(name, n)
    if rest[:1] == ["mtu"]:
        if negated:
            policy.set("anyconnect_mtu", None, None)
        elif len(rest) != 2:
            raise _Error("expected 'anyconnect mtu N'")
        else:
            policy.set(
                "anyconnect_mtu",
                _int(rest[1], "anyconnect mtu", mtu.MIN_IPV4_MTU, mtu.MAX_IP_PACKET),
                n,
            )
        return LEAF
    option = rest[1:2] if rest[:1] == ["ssl"] else rest[:1]  # ``svc dtls`` has no ``ssl``
    value = rest[2:] if rest[:1] == ["ssl"] else rest[1:]
    if option == ["dtls"]:
        if negated or value not in (["enable"], ["none"]):
            raise _Error("expected 'anyconnect ssl dtls enable|none'")
        policy.set("dtls", value == ["enable"], n)
        return LEAF
    if option == ["df-bit-ignore"]:
        if negated or value not in (["enable"], ["disable"]):
            raise _Error("expected 'anyconnect ssl df-bit-ignore enable|disable'")
        policy.set("df_bit_ignore", value == ["enable"], n)
        return LEAF
    return None  # the many other anyconnect options (profiles, keepalive, dpd-interval ...)


def _tunnel_group(b: _Builder, name: str, words: list[str], n: int) -> Mode | None:
    if words[0] == "default-group-policy":
        if len(words) != 2:
            raise _Error("expected 'default-group-policy NAME'")
        tg = b.tunnel_group(name, n)
        tg.default_group_policy, tg.policy_line = words[1], n
        return LEAF
    return None


def _dispatch(b: _Builder, mode: Mode, words: list[str], n: int) -> Mode | None:
    kind, name = mode
    if kind == "top":
        return _top(b, words, n)
    if kind == "webvpn":
        return _webvpn(b, words, n)
    if kind == "gp":
        return _group_policy(b, name, words, n)
    if kind == "gp-webvpn":
        return _group_policy_webvpn(b, name, words, n)
    if kind == "tg":
        return _tunnel_group(b, name, words, n)
    return None  # "other": lines under a block labkit passes over


def parse(text: str) -> AsaConfig:
    """Parse a running-config or fragment; never raises on content (see the module doc)."""
    b = _Builder()
    lines = text.splitlines()
    indented = any(line[:1] in (" ", "\t") and line.strip() for line in lines)
    stack: list[tuple[int, Mode]] = [(-1, TOP)]  # (indent of the line that opened it, mode)
    for n, raw in enumerate(lines, start=1):
        raw = _PROMPT.sub("", raw, count=1)
        stripped = raw.strip()
        if not stripped or stripped.startswith(_SKIP_PREFIXES) or stripped.startswith("show "):
            continue
        words = stripped.split()
        if not _COMMAND.match(words[0]):
            b.warnings.append(ConfigWarning(n, stripped, "not an ASA command line; skipped"))
            continue
        indent = len(raw) - len(raw.lstrip())
        if indented:  # the running-config's indentation says which mode a line is in
            while stack[-1][0] >= indent:
                stack.pop()
            opened = _read(b, stack[-1][1], words, n, stripped)
            if opened != LEAF:  # a block; commands labkit passes over may have children too
                stack.append((indent, opened or OTHER))
            continue
        # Unindented paste: the current mode first, then the modes around it (the ASA CLI).
        for depth in range(len(stack) - 1, -1, -1):
            opened = _read(b, stack[depth][1], words, n, stripped)
            if opened is not None:
                del stack[depth + 1 :]
                if opened not in (LEAF, OTHER):
                    stack.append((indent, opened))
                break
    return _freeze(b)


def _read(b: _Builder, mode: Mode, words: list[str], n: int, text: str) -> Mode | None:
    """One command in one mode: the mode it opens, LEAF, or None if the mode does not know it.

    A known command with bad arguments is recorded as a warning and reads as OTHER, so its
    sub-commands (if any) are passed over rather than misread.
    """
    try:
        opened = _dispatch(b, mode, words, n)
    except _Error as exc:
        b.warnings.append(ConfigWarning(n, text, str(exc)))
        b.commands += 1
        return OTHER
    if opened is not None:
        b.commands += 1
    return opened


def _freeze(b: _Builder) -> AsaConfig:
    return AsaConfig(
        tcpmss=b.tcpmss,
        tcpmss_line=b.tcpmss_line,
        ciphers=dict(b.ciphers),
        server_version=b.server_version,
        webvpn=b.webvpn.freeze() if b.webvpn else None,
        group_policies={name: p.freeze() for name, p in b.policies.items()},
        tunnel_groups={name: tg.freeze() for name, tg in b.tunnel_groups.items()},
        warnings=tuple(b.warnings),
        commands=b.commands,
    )
