"""Per group-policy MTU advice from a parsed ASA configuration.

For each group-policy AnyConnect can land in, :func:`advise` resolves its attributes
(its own, else DfltGrpPolicy's, else the ASA default), works out which TLS and DTLS suites
the ``ssl cipher`` settings leave, and asks :func:`labkit.mtu.predict` for every pair: the
numbers are the MTU model's, never re-derived here (STYLE.md rule 1).

The ASA and the client negotiate one suite from each list; which one depends on the client's
offer and release, so labkit reports the range and judges the worst pair (the largest adapter
MTU against the smallest TLS MTU). A group-policy is *at risk* when that pair mismatches: a
DTLS failure then leaves the adapter above what the TLS tunnel carries, so the head-end drops
full-size DF packets (``%ASA-6-722036``; a black hole where ICMP is filtered and DF packets
are not fragmented) until the client reconnects to apply the TLS MTU (tech note 116881).

Assumptions, stated so a reader can check them against their release:

* TLS is 1.2 (AnyConnect 4.x), TLS 1.3 when ``ssl server-version`` requires it, 1.0 for the
  ASA <= 9.3 ``ssl encryption`` command.
* DTLS is 1.0 (CBC SHA-1 suites; the same MTU as AnyConnect's legacy 0x0100) unless
  ``ssl server-version`` names ``dtlsv1.2``, which makes DTLS 1.2 the minimum.
* An unset ``anyconnect mtu`` caps nothing (the model's default, which reproduces the
  1418-byte packets of tech note 116881); the client NIC MTU is ``base_mtu`` (default 1500).
* An unset ``vpn-tunnel-protocol`` is taken to allow AnyConnect (``ssl-client``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any

from labkit import mtu
from labkit.asa_config import DEFAULT_DTLS_PORT, DEFAULT_GROUP_POLICY, AsaConfig, GroupPolicy

_ANYCONNECT_PROTOCOLS = frozenset({"ssl-client", "svc"})  # ``svc``: the ASA 8.x keyword


@dataclass(frozen=True, slots=True)
class Attribute:
    """A group-policy attribute after inheritance, and where its value came from."""

    value: Any
    source: str  # "G line 12", "DfltGrpPolicy line 30", or "ASA default"

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "source": self.source}


@dataclass(frozen=True, slots=True)
class PolicyAdvice:
    """What one group-policy's users get, and how to fix it."""

    name: str
    defined: bool  # False: referenced (or DfltGrpPolicy) but not in the text given
    tunnel_groups: tuple[str, ...]
    inherited_by: tuple[str, ...]  # group-policies taking an attribute from this one
    anyconnect_mtu: Attribute
    dtls: Attribute
    df_bit_ignore: Attribute
    anyconnect_allowed: Attribute  # vpn-tunnel-protocol allows ssl-client
    worst: mtu.Prediction  # the suite pair that decides the verdict
    tls_mtu_range: tuple[int, int]
    dtls_mtu_range: tuple[int, int]
    fixes: tuple[mtu.Fix, ...]  # ranked; group-policy name filled in

    @property
    def reconnect_on_dtls_failure(self) -> bool:
        """A DTLS failure leaves the adapter above the TLS MTU: the client must reconnect."""
        return self.anyconnect_allowed.value and self.worst.mismatch

    @property
    def black_hole_risk(self) -> bool:
        """Until that reconnect, oversized DF packets are dropped, not fragmented."""
        return self.reconnect_on_dtls_failure and not self.df_bit_ignore.value

    @property
    def at_risk(self) -> bool:
        return self.reconnect_on_dtls_failure

    def to_json(self) -> dict[str, Any]:
        p = self.worst
        return {
            "name": self.name,
            "defined": self.defined,
            "tunnel_groups": list(self.tunnel_groups),
            "inherited_by": list(self.inherited_by),
            "attributes": {
                "anyconnect_mtu": self.anyconnect_mtu.to_json(),
                "dtls": self.dtls.to_json(),
                "df_bit_ignore": self.df_bit_ignore.to_json(),
                "anyconnect_allowed": self.anyconnect_allowed.to_json(),
            },
            "tls_mtu": p.tls_mtu,
            "dtls_mtu": p.dtls_mtu,
            "adapter_mtu": p.adapter_mtu,
            "tunnel_mss": p.tunnel_mss,
            "fallback_mtu": p.fallback_mtu,
            "tls_mtu_range": list(self.tls_mtu_range),
            "dtls_mtu_range": list(self.dtls_mtu_range),
            "tls_cipher": p.config.tls_cipher,
            "dtls_cipher": p.config.dtls_cipher,
            "reconnect_on_dtls_failure": self.reconnect_on_dtls_failure,
            "black_hole_risk": self.black_hole_risk,
            "at_risk": self.at_risk,
            "fixes": mtu.fixes_json(self.fixes),
        }


@dataclass(frozen=True, slots=True)
class Suites:
    """The suites each tunnel may negotiate, and the protocol versions assumed."""

    tls_version: str
    tls: tuple[str, ...]
    dtls: tuple[tuple[str, str], ...]  # (suite, DTLS version)
    unmodelled: tuple[str, ...]  # allowed by the config, unknown to labkit.mtu

    def to_json(self) -> dict[str, Any]:
        return {
            "tls_version": self.tls_version,
            "tls": list(self.tls),
            "dtls": [{"suite": s, "version": v} for s, v in self.dtls],
            "unmodelled": list(self.unmodelled),
        }


@dataclass(frozen=True, slots=True)
class Advice:
    config: AsaConfig
    suites: Suites
    base_mtu: int
    policies: tuple[PolicyAdvice, ...]
    notes: tuple[str, ...]

    @property
    def at_risk(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.policies if p.at_risk)

    def to_json(self) -> dict[str, Any]:
        c = self.config
        web = c.webvpn
        return {
            "tcpmss": {"value": c.tcpmss, "line": c.tcpmss_line},
            "base_mtu": self.base_mtu,
            "ssl_cipher": {v: {"level": s.level, "line": s.line} for v, s in c.ciphers.items()},
            "ssl_server_version": list(c.server_version),
            "suites": self.suites.to_json(),
            "webvpn": None
            if web is None
            else {
                "line": web.line,
                "interfaces": list(web.interfaces),
                "tls_only_interfaces": list(web.tls_only_interfaces),
                "anyconnect_enabled": web.anyconnect_enabled,
                "dtls_port": web.dtls_port,
            },
            "group_policies": [p.to_json() for p in self.policies],
            "at_risk": list(self.at_risk),
            "notes": list(self.notes),
            "warnings": [w.to_json() for w in c.warnings],
        }


def _modelled(name: str) -> mtu.Cipher | None:
    return mtu.CIPHERS.get(name.upper())


def negotiable_suites(cfg: AsaConfig) -> Suites:
    """The TLS and DTLS suites AnyConnect may end up with under ``cfg``'s ssl settings."""
    unknown: list[str] = []
    tls13 = "tlsv1.3" in cfg.server_version
    legacy = "legacy" in cfg.ciphers
    tls_setting = cfg.cipher("tlsv1.3" if tls13 else "tlsv1.2")
    tls_version = "1.3" if tls13 else "1.0" if legacy else "1.2"
    tls: list[str] = []
    for name in tls_setting.suites:
        suite = _modelled(name)
        if suite is None:
            unknown.append(name)
        elif suite.tls13 == tls13 and (tls_version == "1.2" or suite.kind != "aead"):
            tls.append(suite.name)
    dtls: list[tuple[str, str]] = []
    if "dtlsv1.2" in cfg.server_version:
        for name in cfg.cipher("dtlsv1.2").suites:
            suite = _modelled(name)
            if suite is not None and suite.kind != "stream" and not suite.tls13:
                dtls.append((suite.name, "1.2"))
    else:
        for name in cfg.cipher("dtlsv1").suites:
            suite = _modelled(name)
            # DTLS 1.0 is TLS 1.1 in datagrams: CBC suites with SHA-1 only, no RC4 (RFC 6347
            # 4.1.2.2 forbids stream ciphers), no SHA-2 or GCM (those came with TLS 1.2).
            if suite is not None and suite.kind == "cbc" and suite.mac == 20:
                dtls.append((suite.name, "1.0"))
            elif suite is None:
                unknown.append(name)
    return Suites(
        tls_version,
        tuple(dict.fromkeys(tls)),
        tuple(dict.fromkeys(dtls)),
        tuple(dict.fromkeys(unknown)),
    )


def _resolve(
    policy: GroupPolicy | None, default: GroupPolicy | None, attr: str, fallback: Any
) -> Attribute:
    for source in (policy, default):
        if source is not None and getattr(source, attr) is not None:
            return Attribute(getattr(source, attr), f"{source.name} line {source.lines[attr]}")
    return Attribute(fallback, "ASA default")


def _fill(fix: mtu.Fix, name: str, inherited_by: tuple[str, ...]) -> mtu.Fix:
    """Put the group-policy's name in the fix's lines; say who else a DfltGrpPolicy change hits."""
    effect = fix.effect
    if "<name>" in fix.config and inherited_by:
        effect += (
            f"; every group-policy that does not set it inherits it from {name} "
            f"({', '.join(inherited_by)})"
        )
    return replace(fix, config=fix.config.replace("<name>", name), effect=effect)


def _predict_policy(
    cfg: AsaConfig,
    suites: Suites,
    base_mtu: int,
    name: str,
    policy: GroupPolicy | None,
    default: GroupPolicy | None,
    tunnel_groups: tuple[str, ...],
    inherited_by: tuple[str, ...],
) -> PolicyAdvice:
    cap = _resolve(policy, default, "anyconnect_mtu", None)
    dtls = _resolve(policy, default, "dtls", True)
    df_ignore = _resolve(policy, default, "df_bit_ignore", False)
    protocols = _resolve(policy, default, "tunnel_protocols", None)
    allowed = Attribute(
        protocols.value is None or bool(_ANYCONNECT_PROTOCOLS & set(protocols.value)),
        protocols.source,
    )
    web = cfg.webvpn
    dtls_on = (
        dtls.value
        and bool(suites.dtls)
        and not (
            web is not None
            and web.interfaces
            and set(web.interfaces) <= set(web.tls_only_interfaces)
        )
    )
    dtls_pairs = suites.dtls or ((mtu.DEFAULT_CIPHER, "1.0"),)
    tls_suites = suites.tls or (mtu.DEFAULT_CIPHER,)
    predictions = [
        mtu.predict(
            mtu.TunnelConfig(
                base_mtu=base_mtu,
                tcpmss=cfg.tcpmss,
                tls_cipher=t,
                dtls_cipher=d,
                tls_version=suites.tls_version,
                dtls_version=v,
                anyconnect_mtu=cap.value,
                dtls_enabled=dtls_on,
                df_bit_ignore=df_ignore.value,
            )
        )
        for t, (d, v) in itertools.product(tls_suites, dtls_pairs)
    ]
    # The largest overshoot; among equals the smallest TLS MTU, then the ASA's own order
    # (max() keeps the first of equals).
    worst = max(predictions, key=lambda p: (p.adapter_mtu - p.tls_mtu, -p.tls_mtu))
    tls_values = [p.tls_mtu for p in predictions]
    dtls_values = [p.dtls_mtu for p in predictions]
    return PolicyAdvice(
        name=name,
        defined=policy is not None,
        tunnel_groups=tunnel_groups,
        inherited_by=inherited_by,
        anyconnect_mtu=cap,
        dtls=dtls,
        df_bit_ignore=df_ignore,
        anyconnect_allowed=allowed,
        worst=worst,
        tls_mtu_range=(min(tls_values), max(tls_values)),
        dtls_mtu_range=(min(dtls_values), max(dtls_values)),
        fixes=tuple(_fill(f, name, inherited_by) for f in worst.fixes) if allowed.value else (),
    )


def advise(cfg: AsaConfig, base_mtu: int = mtu.DEFAULT_BASE_MTU) -> Advice:
    """Advice for DfltGrpPolicy and every group-policy the config defines or references."""
    suites = negotiable_suites(cfg)
    notes: list[str] = []
    names = [DEFAULT_GROUP_POLICY, *cfg.group_policies]
    for tg in cfg.tunnel_groups.values():
        if tg.default_group_policy and tg.default_group_policy not in names:
            names.append(tg.default_group_policy)
            notes.append(
                f"tunnel-group {tg.name} (line {tg.policy_line}) uses group-policy "
                f"{tg.default_group_policy}, which this config does not define: "
                f"assuming it sets nothing and inherits {DEFAULT_GROUP_POLICY}"
            )
    default = cfg.group_policies.get(DEFAULT_GROUP_POLICY)
    policies = []
    for name in dict.fromkeys(names):
        policy = cfg.group_policies.get(name)
        groups = tuple(
            tg.name
            for tg in cfg.tunnel_groups.values()
            if (tg.default_group_policy or DEFAULT_GROUP_POLICY) == name
        )
        heirs: tuple[str, ...] = ()
        if name == DEFAULT_GROUP_POLICY:
            heirs = tuple(n for n in dict.fromkeys(names) if n != name)
        policies.append(
            _predict_policy(
                cfg,
                suites,
                base_mtu,
                name,
                policy,
                None if name == DEFAULT_GROUP_POLICY else default,
                groups,
                heirs,
            )
        )
    notes += _global_notes(cfg, suites)
    return Advice(cfg, suites, base_mtu, tuple(policies), tuple(notes))


def _global_notes(cfg: AsaConfig, suites: Suites) -> list[str]:
    notes = []
    web = cfg.webvpn
    if web is None:
        notes.append(
            "no webvpn block in this text (a fragment?): assuming AnyConnect is "
            f"enabled with DTLS on UDP {DEFAULT_DTLS_PORT}"
        )
    else:
        if not web.anyconnect_enabled:
            notes.append(
                f"webvpn (line {web.line}) has no 'anyconnect enable': AnyConnect "
                "clients cannot connect; predictions assume it is enabled"
            )
        if web.dtls_port != DEFAULT_DTLS_PORT:
            notes.append(
                f"dtls port {web.dtls_port} (line {web.dtls_port_line}) is not the "
                f"default {DEFAULT_DTLS_PORT}: every firewall between clients and the "
                f"ASA must pass UDP {web.dtls_port}, or DTLS fails and the fallback "
                "below happens (tech note 116881, 'Use of a non-default DTLS port')"
            )
        if web.tls_only_interfaces:
            notes.append(
                f"DTLS is off ('tls-only') on {', '.join(web.tls_only_interfaces)}: "
                "clients there run TLS only, at the TLS MTU, without a reconnect"
            )
    if not suites.tls:
        notes.append(
            f"no TLS suite allowed by the config is one labkit models; assuming "
            f"{mtu.DEFAULT_CIPHER}"
        )
    if not suites.dtls:
        notes.append(
            f"no DTLS suite allowed by the config is one labkit models; assuming "
            f"{mtu.DEFAULT_CIPHER}"
        )
    if suites.unmodelled:
        notes.append(
            f"suites left out of the prediction (labkit.mtu does not model them): "
            f"{', '.join(suites.unmodelled)}"
        )
    if "default" in cfg.ciphers:
        notes.append(
            f"'ssl cipher default' (line {cfg.ciphers['default'].line}) sets the ASA's "
            "own outbound connections; it does not affect AnyConnect"
        )
    return notes
