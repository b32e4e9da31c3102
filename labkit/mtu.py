"""The MTU model: the one place where labkit computes a tunnel MTU, an MSS or a fix.

Every other module (calculator, crafter, scenario builder, analyzer, advisor) imports these
functions; none re-derives a number (STYLE.md rule 1). All functions are pure.

Sources for the arithmetic:

* DTLS data MTU, CBC: ``room = base - IP - UDP(8) - DTLS header(13) - IV``, rounded down to
  the block size, minus the pad-length byte, the MAC and AnyConnect's 1-byte DTLS header.
  The same arithmetic as GnuTLS ``gnutls_dtls_get_data_mtu`` and OpenConnect's
  ``dtls_get_data_mtu``. AEAD: minus the explicit nonce and the tag, no rounding.
  AES-SHA1 at base 1500: 1472 - 13 - 16 = 1443 -> 1440 -> 1440 - 1 - 20 - 1 = 1418.
* TLS (CSTP) MTU as the ASA computes it (``debug webvpn anyconnect``):
  ``tcpmss - 5 (TLS header) - 8 (CSTP header) - padding(0) - hash``: 1380 - 33 = 1347.
  The ASA ignores the explicit IV and the CBC padding; for AEAD suites labkit takes the tag
  as the "hash" (the ASA's debug output documents only MAC suites).
* Wire-accurate TLS MTU, the largest inner packet whose whole TLS record fits in one TCP
  segment of ``tcpmss`` bytes: TLS 1.2 CBC ``tcpmss - 5 - IV``, round down to the block,
  ``- 1 - MAC - 8``: AES128-SHA at 1380 -> 1315.
* The adapter MTU: AnyConnect brings its virtual adapter up with the DTLS MTU while DTLS
  is assumed (tech note 116881; OpenConnect's ``cstp.c`` takes the larger of X-CSTP-MTU and
  X-DTLS-MTU, the same whenever DTLS > TLS); the
  group-policy ``anyconnect mtu`` caps both values the head-end announces (Cisco
  community document "AnyConnect MTU", section 2-2; tech note 116881).
* Inner MSS: MTU - 40 (IPv4) or - 60 (IPv6) (RFC 879, RFC 8200).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from labkit.errors import UsageError
from labkit.wire import (
    CSTP_HEADER_LEN,
    DTLS1_2_VERSION,
    DTLS1_BAD_VER,
    DTLS1_VERSION,
    DTLS_RECORD_HEADER_LEN,
    DTLS_VERSION_NAMES,
)

# Header sizes, in bytes.
IPV4_HEADER = 20
IPV6_HEADER = 40
UDP_HEADER = 8
TCP_HEADER = 20
TLS_RECORD_HEADER = 5
DTLS_RECORD_HEADER = DTLS_RECORD_HEADER_LEN  # header layouts live in labkit.wire
CSTP_HEADER = CSTP_HEADER_LEN
ANYCONNECT_DTLS_HEADER = 1

DEFAULT_BASE_MTU = 1500
DEFAULT_TCPMSS = 1380  # ASA `sysopt connection tcpmss` default
DEFAULT_CIPHER = "AES128-SHA"
DEFAULT_DTLS_PORT = 443
MIN_IPV4_MTU = 576  # RFC 791: every host must accept 576-byte datagrams
MIN_IPV6_MTU = 1280  # RFC 8200 section 5
MIN_IPV4_LINK_MTU = 68  # RFC 791: every module forwards 68-byte datagrams unfragmented
MAX_IP_PACKET = 65535
JUMBO_MTU = 9216  # the largest Ethernet jumbo frame switches carry: no wire packet is larger
MIN_TCPMSS = 536  # RFC 879 default MSS; ASA accepts 48.., but below 536 is never sane
MAX_TCPMSS = 65495  # 65535 - 40: the largest MSS an IPv4 TCP header can carry meaning for
RECOMMENDED_ANYCONNECT_MTU = 1300  # Cisco's usual recommendation (tech note 116881)

CipherKind = Literal["stream", "cbc", "aead"]
TLS_VERSIONS = ("1.0", "1.1", "1.2", "1.3")
#: The DTLS versions the model covers, spelled as every command spells them (labkit.wire).
DTLS_VERSIONS = tuple(
    DTLS_VERSION_NAMES[v] for v in (DTLS1_BAD_VER, DTLS1_VERSION, DTLS1_2_VERSION)
)


@dataclass(frozen=True, slots=True)
class Cipher:
    """What a cipher suite adds to a record: MAC or tag, IV or nonce, block rounding."""

    name: str
    kind: CipherKind
    mac: int  # HMAC length, or the AEAD tag length
    block: int = 1  # cipher block size for CBC; 1 means no rounding
    nonce: int = 0  # AEAD explicit nonce carried in each TLS 1.2 / DTLS 1.2 record
    tls13: bool = False  # a TLS 1.3 suite: no explicit nonce, one inner content-type byte

    @property
    def iv(self) -> int:
        """Explicit per-record IV: CBC in TLS 1.1+ and in every DTLS version."""
        return self.block if self.kind == "cbc" else 0


def _cbc(name: str, mac: int, block: int = 16) -> Cipher:
    return Cipher(name, "cbc", mac, block)


def _gcm(name: str) -> Cipher:
    return Cipher(name, "aead", 16, nonce=8)


def _chacha(name: str) -> Cipher:
    return Cipher(name, "aead", 16)


_SUITES: list[Cipher] = [
    Cipher("RC4-SHA", "stream", 20),
    _cbc("DES-CBC3-SHA", 20, block=8),
    *[
        _cbc(n, 20)
        for n in (
            "AES128-SHA",
            "AES256-SHA",
            "DHE-RSA-AES128-SHA",
            "DHE-RSA-AES256-SHA",
            "ECDHE-RSA-AES128-SHA",
            "ECDHE-RSA-AES256-SHA",
            "ECDHE-ECDSA-AES128-SHA",
            "ECDHE-ECDSA-AES256-SHA",
        )
    ],
    *[
        _cbc(n, 32)
        for n in (
            "AES128-SHA256",
            "AES256-SHA256",
            "DHE-RSA-AES128-SHA256",
            "DHE-RSA-AES256-SHA256",
            "ECDHE-RSA-AES128-SHA256",
            "ECDHE-ECDSA-AES128-SHA256",
        )
    ],
    *[_cbc(n, 48) for n in ("ECDHE-RSA-AES256-SHA384", "ECDHE-ECDSA-AES256-SHA384")],
    *[
        _gcm(n)
        for n in (
            "AES128-GCM-SHA256",
            "AES256-GCM-SHA384",
            "DHE-RSA-AES128-GCM-SHA256",
            "DHE-RSA-AES256-GCM-SHA384",
            "ECDHE-RSA-AES128-GCM-SHA256",
            "ECDHE-RSA-AES256-GCM-SHA384",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
        )
    ],
    *[
        _chacha(n)
        for n in (
            "CHACHA20-POLY1305",
            "ECDHE-RSA-CHACHA20-POLY1305",
            "ECDHE-ECDSA-CHACHA20-POLY1305",
        )
    ],
    *[
        Cipher(n, "aead", 16, tls13=True)
        for n in (
            "TLS_AES_128_GCM_SHA256",
            "TLS_AES_256_GCM_SHA384",
            "TLS_CHACHA20_POLY1305_SHA256",
        )
    ],
]
CIPHERS: dict[str, Cipher] = {c.name: c for c in _SUITES}


def cipher(name: str) -> Cipher:
    """Look a suite up by its OpenSSL name (case-insensitive); unknown names list the known."""
    found = CIPHERS.get(name.upper().replace("_", "-")) or CIPHERS.get(name.upper())
    if found is None:
        raise UsageError(f"unknown cipher {name!r}; known: {', '.join(CIPHERS)}")
    return found


def ip_header(ipv6: bool) -> int:
    return IPV6_HEADER if ipv6 else IPV4_HEADER


def min_mtu(ipv6: bool) -> int:
    return MIN_IPV6_MTU if ipv6 else MIN_IPV4_MTU


def mss_for_mtu(mtu: int, ipv6: bool = False) -> int:
    """The MSS a host announces for an interface MTU: 1418 -> 1378 (IPv4), 1358 (IPv6)."""
    return mtu - ip_header(ipv6) - TCP_HEADER


def mtu_for_mss(mss: int, ipv6: bool = False) -> int:
    """The packet size an MSS allows: the inverse of :func:`mss_for_mtu`."""
    return mss + ip_header(ipv6) + TCP_HEADER


def _round_down(value: int, block: int) -> int:
    return value - value % block


def _record_payload(room: int, suite: Cipher, version: str, *, dtls: bool) -> int:
    """Largest plaintext that fits a record body of ``room`` bytes (header excluded)."""
    if suite.kind == "stream":
        return room - suite.mac
    if suite.kind == "aead":
        if suite.tls13:
            return room - suite.mac - 1  # RFC 8446 5.2: one inner content-type byte
        return room - suite.nonce - suite.mac
    explicit_iv = dtls or version not in ("1.0",)  # RFC 4346 6.2.3.2: TLS 1.1 added it
    if explicit_iv:
        room -= suite.iv
    return _round_down(room, suite.block) - 1 - suite.mac  # RFC 5246 6.2.3.2 padding


def dtls_mtu(
    base_mtu: int = DEFAULT_BASE_MTU,
    suite: str | Cipher = DEFAULT_CIPHER,
    version: str = "0x0100",
    *,
    outer_ipv6: bool = False,
) -> int:
    """Largest inner IP packet one AnyConnect DTLS record carries without fragmenting.

    >>> dtls_mtu(1500, "AES128-SHA")
    1418
    >>> dtls_mtu(1500, "ECDHE-RSA-AES128-GCM-SHA256", "1.2")
    1434
    """
    s = cipher(suite) if isinstance(suite, str) else suite
    if s.tls13:
        raise UsageError(f"{s.name} is a TLS 1.3 suite; AnyConnect DTLS uses DTLS 1.0/1.2 suites")
    room = base_mtu - ip_header(outer_ipv6) - UDP_HEADER - DTLS_RECORD_HEADER
    return _record_payload(room, s, version, dtls=True) - ANYCONNECT_DTLS_HEADER


def dtls_base_mtu(
    target: int,
    suite: str | Cipher = DEFAULT_CIPHER,
    version: str = "0x0100",
    *,
    outer_ipv6: bool = False,
) -> int:
    """The smallest base (link) MTU whose DTLS data MTU is ``target``: :func:`dtls_mtu` inverted.

    A head-end that derives its announced MTU from a base MTU and the negotiated cipher
    (ocserv's ``mtu`` setting) announces ``target`` only for the base this returns; CBC block
    rounding makes several bases give one MTU, so the smallest is the unambiguous answer.

    >>> dtls_base_mtu(1418, "AES256-GCM-SHA384", "1.2")
    1484
    >>> dtls_base_mtu(1418, "AES128-SHA")  # 1497..1512 all give 1418
    1497
    """
    s = cipher(suite) if isinstance(suite, str) else suite
    start = max(target, min_mtu(outer_ipv6))
    base = _base_reaching(target, s, version, start, outer_ipv6=outer_ipv6)
    if base is None or dtls_mtu(base, s, version, outer_ipv6=outer_ipv6) != target:
        raise UsageError(f"no base MTU gives a DTLS MTU of {target} with {s.name}")
    return base


def _base_reaching(
    target: int, s: Cipher, version: str, start: int, *, outer_ipv6: bool = False
) -> int | None:
    """The smallest base MTU from ``start`` up whose DTLS MTU is at least ``target``; None if
    not even the largest IP packet reaches it. :func:`dtls_mtu` never decreases as the base
    grows (CBC rounding makes it climb in block-size steps, so the base found gives exactly
    ``target`` unless the target falls inside a step): a binary search finds it."""
    if start > MAX_IP_PACKET:
        return None
    bases = range(start, MAX_IP_PACKET + 1)
    i = bisect.bisect_left(
        bases, target, key=lambda b: dtls_mtu(b, s, version, outer_ipv6=outer_ipv6)
    )
    return bases[i] if i < len(bases) else None


def tls_mtu_asa(tcpmss: int = DEFAULT_TCPMSS, suite: str | Cipher = DEFAULT_CIPHER) -> int:
    """The TLS tunnel MTU the ASA announces in X-CSTP-MTU: ``tcpmss - 5 - 8 - 0 - hash``.

    >>> tls_mtu_asa(1380, "AES128-SHA")
    1347
    >>> tls_mtu_asa(1460, "RC4-SHA")
    1427
    """
    s = cipher(suite) if isinstance(suite, str) else suite
    return tcpmss - TLS_RECORD_HEADER - CSTP_HEADER - s.mac


def tls_mtu_wire(
    tcpmss: int = DEFAULT_TCPMSS, suite: str | Cipher = DEFAULT_CIPHER, version: str = "1.2"
) -> int:
    """Largest inner packet whose whole TLS record (CSTP header included) fits one segment.

    >>> tls_mtu_wire(1380, "AES128-SHA", "1.2")
    1315
    >>> tls_mtu_wire(1380, "TLS_AES_128_GCM_SHA256", "1.3")
    1350
    """
    s = cipher(suite) if isinstance(suite, str) else suite
    if s.tls13 != (version == "1.3"):
        raise UsageError(f"cipher {s.name} does not go with TLS {version}")
    room = tcpmss - TLS_RECORD_HEADER
    return _record_payload(room, s, version, dtls=False) - CSTP_HEADER


def record_length(
    plaintext: int,
    suite: str | Cipher = DEFAULT_CIPHER,
    version: str = "1.2",
    *,
    dtls: bool = False,
) -> int:
    """The body length (header excluded) of one record protecting ``plaintext`` bytes.

    The forward direction of the MTU formulas above, for writing records of the right size:
    CBC ``IV + round_up(plaintext + MAC + 1, block)`` (RFC 5246 6.2.3.2; no explicit IV in
    TLS 1.0), stream ``plaintext + MAC``, AEAD ``nonce + plaintext + tag`` (RFC 5288 3),
    TLS 1.3 ``plaintext + 1 + tag`` (RFC 8446 5.2).

    >>> record_length(1347 + CSTP_HEADER, "AES128-SHA")  # the seed's largest CSTP record
    1392
    >>> record_length(1418 + ANYCONNECT_DTLS_HEADER, "AES128-SHA", "0x0100", dtls=True)
    1456
    """
    s = cipher(suite) if isinstance(suite, str) else suite
    if plaintext < 0:
        raise UsageError(f"plaintext of {plaintext} bytes: expected 0 or more")
    if s.kind == "stream":
        return plaintext + s.mac
    if s.kind == "aead":
        return plaintext + s.mac + (1 if s.tls13 else s.nonce)
    explicit_iv = s.iv if dtls or version != "1.0" else 0
    padded = plaintext + s.mac + 1
    return explicit_iv + padded + (-padded % s.block)


@dataclass(frozen=True, slots=True)
class TunnelConfig:
    """The knobs that decide the tunnel MTUs: what `labkit mtu` and scenarios state."""

    base_mtu: int = DEFAULT_BASE_MTU  # the client's NIC MTU (X-CSTP-Base-MTU)
    tcpmss: int = DEFAULT_TCPMSS  # ASA `sysopt connection tcpmss`
    tls_cipher: str = DEFAULT_CIPHER
    dtls_cipher: str = DEFAULT_CIPHER
    tls_version: str = "1.2"
    dtls_version: str = "0x0100"
    anyconnect_mtu: int | None = None  # group-policy `anyconnect mtu`
    ipv6: bool = False  # inner traffic is IPv6 (MSS = MTU - 60)
    dtls_enabled: bool = True  # `anyconnect ssl dtls enable`
    df_bit_ignore: bool = False  # `anyconnect ssl df-bit-ignore enable`

    def __post_init__(self) -> None:
        if self.tls_version not in TLS_VERSIONS:
            raise UsageError(
                f"TLS version {self.tls_version!r}: expected one of {', '.join(TLS_VERSIONS)}"
            )
        if self.dtls_version not in DTLS_VERSIONS:
            raise UsageError(
                f"DTLS version {self.dtls_version!r}: expected one of {', '.join(DTLS_VERSIONS)}"
            )
        if not MIN_IPV4_MTU <= self.base_mtu <= MAX_IP_PACKET:
            raise UsageError(f"base MTU {self.base_mtu}: expected {MIN_IPV4_MTU}..{MAX_IP_PACKET}")
        if not MIN_TCPMSS <= self.tcpmss <= MAX_TCPMSS:
            raise UsageError(f"tcpmss {self.tcpmss}: expected {MIN_TCPMSS}..{MAX_TCPMSS}")
        floor = min_mtu(self.ipv6)
        if self.anyconnect_mtu is not None and not floor <= self.anyconnect_mtu <= MAX_IP_PACKET:
            kind = "IPv6 " if self.ipv6 else ""
            raise UsageError(
                f"anyconnect mtu {self.anyconnect_mtu}: below the {kind}minimum {floor}"
                if self.anyconnect_mtu < floor
                else f"anyconnect mtu {self.anyconnect_mtu}: above {MAX_IP_PACKET}"
            )
        cipher(self.tls_cipher), cipher(self.dtls_cipher)


@dataclass(frozen=True, slots=True)
class Fix:
    """One way to remove the mismatch, with the exact config line and what it costs."""

    id: str
    config: str
    effect: str


@dataclass(frozen=True, slots=True)
class Prediction:
    """Every number `labkit mtu` prints, derived from one :class:`TunnelConfig`."""

    config: TunnelConfig
    tls_mtu: int  # what the ASA announces and enforces (722036 threshold)
    tls_mtu_wire: int  # what really fits one TCP segment of tcpmss bytes
    dtls_mtu: int
    adapter_mtu: int  # the client's virtual adapter while DTLS is assumed
    tunnel_mss: int  # the MSS inner SYNs carry
    fallback_mtu: int  # the adapter MTU once the client gives up on DTLS
    fixes: tuple[Fix, ...] = field(default=())

    @property
    def mismatch(self) -> bool:
        """Packets sized for the adapter exceed what the TLS tunnel carries."""
        return self.adapter_mtu > self.tls_mtu

    @property
    def mismatch_bytes(self) -> int:
        return max(0, self.adapter_mtu - self.tls_mtu)

    @property
    def fallback_mss(self) -> int:
        return mss_for_mtu(self.fallback_mtu, self.config.ipv6)

    def to_json(self) -> dict[str, object]:
        c = self.config
        return {
            "tls_mtu": self.tls_mtu,
            "tls_mtu_wire": self.tls_mtu_wire,
            "dtls_mtu": self.dtls_mtu,
            "adapter_mtu": self.adapter_mtu,
            "tunnel_mss": self.tunnel_mss,
            "mismatch": self.mismatch,
            "mismatch_bytes": self.mismatch_bytes,
            "fallback_mtu": self.fallback_mtu,
            "fallback_mss": self.fallback_mss,
            "fixes": [{"id": f.id, "config": f.config, "effect": f.effect} for f in self.fixes],
            "config": {
                "base_mtu": c.base_mtu,
                "tcpmss": c.tcpmss,
                "tls_cipher": c.tls_cipher,
                "dtls_cipher": c.dtls_cipher,
                "tls_version": c.tls_version,
                "dtls_version": c.dtls_version,
                "anyconnect_mtu": c.anyconnect_mtu,
                "ipv6": c.ipv6,
                "dtls_enabled": c.dtls_enabled,
                "df_bit_ignore": c.df_bit_ignore,
            },
        }


def _numbers(cfg: TunnelConfig) -> tuple[int, int, int, int]:
    """(tls_mtu, tls_mtu_wire, dtls_mtu, adapter_mtu) for one configuration."""
    tls = tls_mtu_asa(cfg.tcpmss, cfg.tls_cipher)
    wire = tls_mtu_wire(cfg.tcpmss, cfg.tls_cipher, cfg.tls_version)
    dtls = dtls_mtu(cfg.base_mtu, cfg.dtls_cipher, cfg.dtls_version)
    if cfg.anyconnect_mtu is not None:
        tls, dtls = min(tls, cfg.anyconnect_mtu), min(dtls, cfg.anyconnect_mtu)
        wire = min(wire, cfg.anyconnect_mtu)
    # AnyConnect brings the adapter up at the DTLS MTU and keeps it until it reconnects.
    # (OpenConnect takes max(X-CSTP-MTU, X-DTLS-MTU), which differs only when TLS > DTLS.)
    adapter = dtls if cfg.dtls_enabled else tls
    return tls, wire, dtls, adapter


def predict(cfg: TunnelConfig) -> Prediction:
    """Compute every MTU for ``cfg`` and, when DTLS fallback forces a reconnect, the fixes.

    >>> p = predict(TunnelConfig())
    >>> (p.tls_mtu, p.dtls_mtu, p.adapter_mtu, p.tunnel_mss, p.mismatch)
    (1347, 1418, 1418, 1378, True)
    """
    tls, wire, dtls, adapter = _numbers(cfg)
    mss = mss_for_mtu(adapter, cfg.ipv6)
    if mss <= 0 or adapter < min_mtu(cfg.ipv6):
        raise UsageError(
            f"adapter MTU {adapter} is below the "
            f"{'IPv6' if cfg.ipv6 else 'IPv4'} minimum {min_mtu(cfg.ipv6)}"
        )
    fixes = _fixes(cfg, tls) if adapter > tls else ()
    return Prediction(cfg, tls, wire, dtls, adapter, mss, tls, fixes)


def config_for(
    adapter_mtu: int,
    tls_mtu: int,
    *,
    tls_cipher: str = DEFAULT_CIPHER,
    dtls_cipher: str = DEFAULT_CIPHER,
    dtls_version: str = "0x0100",
    df_bit_ignore: bool = False,
) -> TunnelConfig:
    """A configuration that reproduces the adapter MTU and TLS MTU a capture showed.

    The analyzer sees numbers, not the head-end's config; asking :func:`predict` about this
    configuration gives it the same fixes ``labkit mtu`` prints for those numbers. The TLS MTU
    fixes ``tcpmss`` (the ASA formula inverted); the adapter MTU is the DTLS MTU of a NIC MTU
    (1500 when that fits), or an ``anyconnect mtu`` cap when it is smaller than any NIC gives.

    >>> c = config_for(1418, 1347)
    >>> (c.base_mtu, c.tcpmss, c.anyconnect_mtu)
    (1500, 1380, None)
    >>> config_for(1300, 1347).anyconnect_mtu
    1300
    """
    tcpmss = tls_mtu + TLS_RECORD_HEADER + CSTP_HEADER + cipher(tls_cipher).mac

    def dtls_at(base: int) -> int:
        return dtls_mtu(base, dtls_cipher, dtls_version)

    base, cap = DEFAULT_BASE_MTU, None
    if dtls_at(base) > adapter_mtu:
        cap = adapter_mtu
    elif dtls_at(base) < adapter_mtu:
        reached = _base_reaching(adapter_mtu, cipher(dtls_cipher), dtls_version, base)
        if reached is None:  # e.g. a loopback SYN's MSS 65495: no NIC gives that adapter
            raise UsageError(f"no base MTU gives an adapter MTU of {adapter_mtu}")
        base = reached
        cap = None if dtls_at(base) == adapter_mtu else adapter_mtu
    return TunnelConfig(
        base_mtu=base,
        tcpmss=tcpmss,
        tls_cipher=tls_cipher,
        dtls_cipher=dtls_cipher,
        dtls_version=dtls_version,
        anyconnect_mtu=cap,
        df_bit_ignore=df_bit_ignore,
    )


def mtu_command(cfg: TunnelConfig) -> str:
    """The ``labkit mtu`` command line that prints the prediction for ``cfg``."""
    parts = ["labkit mtu", f"--base-mtu {cfg.base_mtu}", f"--tcpmss {cfg.tcpmss}"]
    defaults = TunnelConfig()
    for flag, value, default in (
        ("--tls-cipher", cfg.tls_cipher, defaults.tls_cipher),
        ("--dtls-cipher", cfg.dtls_cipher, defaults.dtls_cipher),
        ("--tls-version", cfg.tls_version, defaults.tls_version),
        ("--dtls-version", cfg.dtls_version, defaults.dtls_version),
    ):
        if value != default:
            parts.append(f"{flag} {value}")
    if cfg.anyconnect_mtu is not None:
        parts.append(f"--anyconnect-mtu {cfg.anyconnect_mtu}")
    if cfg.df_bit_ignore:
        parts.append("--df-bit-ignore")
    if cfg.ipv6:
        parts.append("--ipv6")
    if not cfg.dtls_enabled:
        parts.append("--no-dtls")
    return " ".join(parts)


def _fixes(cfg: TunnelConfig, tls: int) -> tuple[Fix, ...]:
    """The seed's three fixes, each kept only if it really helps this configuration."""
    fixes: list[Fix] = []
    cap = min(RECOMMENDED_ANYCONNECT_MTU, tls)
    if cap >= min_mtu(cfg.ipv6):
        fixes.append(
            Fix(
                "anyconnect-mtu",
                f"group-policy <name> attributes\n webvpn\n  anyconnect mtu {cap}",
                f"adapter MTU {cap} over DTLS and TLS alike: no reconnect when DTLS fails and no "
                f"oversized packets; costs {_numbers(cfg)[3] - cap} bytes of payload per packet "
                f"over DTLS",
            )
        )
    if not cfg.df_bit_ignore:
        fixes.append(
            Fix(
                "df-bit-ignore",
                "group-policy <name> attributes\n webvpn\n  anyconnect ssl df-bit-ignore enable",
                f"the head-end fragments DF packets over {tls} bytes into the TLS tunnel instead "
                f"of dropping them: no black hole even where ICMP is filtered; costs fragmentation "
                f"(CPU, reassembly) and leaves the reconnect to the TLS MTU in place",
            )
        )
    if cfg.tcpmss < 1460:
        alt_tls, _, alt_dtls, alt_adapter = _numbers(replace(cfg, tcpmss=1460))
        if alt_adapter <= alt_tls:
            fixes.append(
                Fix(
                    "tcpmss",
                    "sysopt connection tcpmss 1460",
                    f"TLS MTU {alt_tls} >= DTLS MTU {alt_dtls}: TCP inside the tunnel fits after a "
                    f"fallback; large UDP still does not, and the MSS change applies to every TCP "
                    f"flow through the ASA, L2L IPsec included",
                )
            )
    return tuple(fixes)


def consequence(p: Prediction) -> str:
    """What a DTLS failure does under ``p``'s configuration, in one sentence.

    One text for the calculator, the advisor and the analyzer, so a lab engineer reads the same
    words whichever tool names the problem. With df-bit-ignore the head-end fragments the large
    DF packets into the TLS tunnel instead of dropping them (no ICMP 3/4, no black hole); the
    reconnect to the TLS MTU happens either way (tech note 116881).
    """
    if not p.mismatch:
        return (
            f"no mismatch: a DTLS->TLS fallback keeps the adapter MTU {p.adapter_mtu} "
            f"within the TLS MTU {p.tls_mtu}; no reconnect is needed."
        )
    head = (
        f"if DTLS cannot be built, the TLS tunnel carries at most {p.tls_mtu} bytes but the "
        f"adapter sends up to {p.adapter_mtu} ({p.mismatch_bytes} bytes too many): "
    )
    if p.config.df_bit_ignore:
        middle = (
            f"the head-end fragments {p.adapter_mtu}-byte DF packets into the TLS tunnel "
            f"(df-bit-ignore: no drop, no ICMP 3/4)"
        )
    else:
        middle = (
            f"{p.adapter_mtu}-byte DF packets are dropped with ICMP 3/4 "
            f"(black hole if ICMP is filtered)"
        )
    return (
        f"{head}{middle} and the client reconnects to apply MTU {p.fallback_mtu} "
        f"(DART reconfigure reason code 16)."
    )


def fixes_json(fixes: Sequence[Fix]) -> list[dict[str, object]]:
    """The ranked fixes as JSON objects (best first, rank 1)."""
    return [
        {"rank": rank, "id": f.id, "config": f.config, "effect": f.effect}
        for rank, f in enumerate(fixes, start=1)
    ]


def fixes_text(fixes: Sequence[Fix]) -> list[str]:
    """The ranked fixes as lines (best first): config lines indented, then the side effect.

    ``labkit mtu``, ``labkit advise`` and ``labkit analyze`` print exactly these lines (each
    under its own indent), so a fix reads the same in every report.
    """
    lines: list[str] = []
    for rank, f in enumerate(fixes, start=1):
        lines.append(f"{rank}. [{f.id}]")
        lines += [f"   {line}" for line in f.config.splitlines()]
        lines.append(f"   effect: {f.effect}")
    return lines
