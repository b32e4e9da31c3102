"""The numbers a scenario runs on: the MTU model's prediction, plus any stated override.

Nothing here computes an MTU: :func:`labkit.mtu.predict` does, from the configuration the
scenario states. An override replaces one number and is named as such wherever the numbers
are shown; a forced adapter MTU moves the MSS with it unless the MSS is forced too.
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit import mtu
from labkit.errors import UsageError
from labkit.scenario.schema import Scenario, ScenarioError


@dataclass(frozen=True, slots=True)
class Numbers:
    """TLS/DTLS/adapter MTUs and MSS values in effect, with the model's for comparison."""

    model: mtu.Prediction
    tls_mtu: int  # what the head-end puts into the TLS tunnel at most (and announces)
    dtls_mtu: int
    adapter_mtu: int  # the client's adapter while DTLS is assumed
    tunnel_mss: int  # what inner SYNs announce at that adapter MTU
    overridden: tuple[str, ...] = ()

    @property
    def ipv6(self) -> bool:
        return self.model.config.ipv6

    @property
    def fallback_mtu(self) -> int:
        """The adapter MTU after a reconnect to apply the TLS MTU."""
        return self.tls_mtu

    @property
    def fallback_mss(self) -> int:
        return mtu.mss_for_mtu(self.fallback_mtu, self.ipv6)

    @property
    def mismatch(self) -> bool:
        """The adapter sends more than the TLS tunnel carries: the failure's precondition."""
        return self.adapter_mtu > self.tls_mtu

    def describe(self) -> list[str]:
        """One line per number: ``TLS MTU 1347`` or ``adapter MTU 1400 (override; model 1418)``."""
        model = {
            "tls_mtu": self.model.tls_mtu,
            "dtls_mtu": self.model.dtls_mtu,
            "adapter_mtu": self.model.adapter_mtu,
            "tunnel_mss": self.model.tunnel_mss,
        }
        labels = {
            "tls_mtu": "TLS MTU",
            "dtls_mtu": "DTLS MTU",
            "adapter_mtu": "adapter MTU",
            "tunnel_mss": "tunnel MSS",
        }
        out = []
        for key, label in labels.items():
            value = getattr(self, key)
            note = f" (override; model {model[key]})" if key in self.overridden else ""
            out.append(f"{label} {value}{note}")
        return out


def derive(scenario: Scenario) -> Numbers:
    """The numbers for ``scenario``; an impossible configuration names its line."""
    try:
        model = mtu.predict(scenario.tunnel_config())
    except UsageError as exc:
        raise ScenarioError.at(
            scenario.source, scenario.line_of("head_end"), "head_end", str(exc)
        ) from None
    values = {
        "tls_mtu": model.tls_mtu,
        "dtls_mtu": model.dtls_mtu,
        "adapter_mtu": model.adapter_mtu,
        "tunnel_mss": model.tunnel_mss,
    }
    forced = {o.name: o for o in scenario.overrides}
    for o in forced.values():
        values[o.name] = o.value
    v6 = scenario.hosts.inner_ipv6
    if "adapter_mtu" in forced and "tunnel_mss" not in forced:
        values["tunnel_mss"] = mtu.mss_for_mtu(values["adapter_mtu"], v6)
    floor = mtu.min_mtu(v6)
    for key in ("tls_mtu", "dtls_mtu", "adapter_mtu"):
        if values[key] < floor:
            override = forced.get(key)
            line = override.line if override else scenario.line_of("head_end")
            raise ScenarioError.at(
                scenario.source,
                line,
                f"overrides.{key}" if override else "head_end",
                f"{key} {values[key]} is below the {'IPv6' if v6 else 'IPv4'} minimum {floor}",
            )
    limit = mtu.mss_for_mtu(values["adapter_mtu"], v6)
    if not 1 <= values["tunnel_mss"] <= limit:
        o = forced.get("tunnel_mss") or forced["adapter_mtu"]
        raise ScenarioError.at(
            scenario.source,
            o.line,
            f"overrides.{o.name}",
            f"tunnel MSS {values['tunnel_mss']} does not fit adapter MTU "
            f"{values['adapter_mtu']} (at most {limit})",
        )
    return Numbers(
        model,
        values["tls_mtu"],
        values["dtls_mtu"],
        values["adapter_mtu"],
        values["tunnel_mss"],
        tuple(k for k in values if k in forced),
    )
