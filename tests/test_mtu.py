"""The MTU model against numbers worked out by hand here, and against a real capture."""

from __future__ import annotations

import json
import struct

import pytest

from labkit import mtu
from labkit.errors import UsageError
from tests.helpers.cli import labkit


def test_seed_dtls_mtu_by_hand():
    # 1500 - 20 IP - 8 UDP - 13 DTLS - 16 IV = 1443; round down to 16 -> 1440;
    # - 1 pad-length - 20 SHA1 - 1 AnyConnect header = 1418.
    assert mtu.dtls_mtu(1500, "AES128-SHA") == 1440 - 1 - 20 - 1 == 1418


def test_seed_tls_mtu_asa_and_wire_by_hand():
    assert mtu.tls_mtu_asa(1380, "AES128-SHA") == 1380 - 5 - 8 - 0 - 20 == 1347
    # 1380 - 5 - 16 IV = 1359 -> 1344; - 1 - 20 - 8 CSTP = 1315.
    assert mtu.tls_mtu_wire(1380, "AES128-SHA", "1.2") == 1344 - 1 - 20 - 8 == 1315
    assert mtu.tls_mtu_wire(1380, "AES256-SHA256", "1.2") == 1344 - 1 - 32 - 8 == 1303
    assert (
        mtu.tls_mtu_wire(1380, "ECDHE-RSA-AES128-GCM-SHA256", "1.2")
        == 1380 - 5 - 8 - 16 - 8
        == 1343
    )
    assert mtu.tls_mtu_wire(1380, "TLS_AES_128_GCM_SHA256", "1.3") == 1380 - 5 - 16 - 1 - 8 == 1350
    assert mtu.tls_mtu_asa(1380, "AES256-SHA256") == 1380 - 13 - 32 == 1335
    assert mtu.tls_mtu_asa(1460, "RC4-SHA") == 1460 - 13 - 20 == 1427


def test_dtls_gcm_and_ipv6():
    # AEAD: 1472 - 13 - 8 nonce - 16 tag - 1 AnyConnect header, no rounding.
    assert mtu.dtls_mtu(1500, "ECDHE-RSA-AES256-GCM-SHA384", "1.2") == 1472 - 13 - 24 - 1 == 1434
    assert mtu.mss_for_mtu(1418) == 1378
    assert mtu.mss_for_mtu(1418, ipv6=True) == 1358


def test_predict_seed_case():
    p = mtu.predict(
        mtu.TunnelConfig(tcpmss=1380, tls_cipher="AES128-SHA", dtls_cipher="AES128-SHA")
    )
    assert (p.tls_mtu, p.tls_mtu_wire, p.dtls_mtu, p.adapter_mtu, p.tunnel_mss) == (
        1347,
        1315,
        1418,
        1418,
        1378,
    )
    assert p.mismatch and p.mismatch_bytes == 71
    assert [f.id for f in p.fixes] == ["anyconnect-mtu", "df-bit-ignore", "tcpmss"]


def test_each_fix_really_removes_the_mismatch():
    assert not mtu.predict(mtu.TunnelConfig(tcpmss=1460, tls_cipher="RC4-SHA")).mismatch
    capped = mtu.predict(mtu.TunnelConfig(anyconnect_mtu=1300))
    assert (capped.adapter_mtu, capped.tls_mtu, capped.mismatch) == (1300, 1300, False)
    assert capped.fixes == ()


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["--tcpmss", "1380", "--tls-cipher", "AES128-SHA", "--dtls-cipher", "AES128-SHA"],
            {
                "tls_mtu": 1347,
                "tls_mtu_wire": 1315,
                "dtls_mtu": 1418,
                "adapter_mtu": 1418,
                "tunnel_mss": 1378,
                "mismatch": True,
            },
        ),
        (["--tcpmss", "1460", "--tls-cipher", "RC4-SHA"], {"tls_mtu": 1427, "mismatch": False}),
        (["--anyconnect-mtu", "1300"], {"adapter_mtu": 1300, "mismatch": False}),
        (["--ipv6"], {"tunnel_mss": 1358, "mismatch": True}),
    ],
)
def test_cli_json_contract(args, expected):
    proc = labkit("mtu", "--format", "json", *args)
    doc = json.loads(proc.stdout)
    # Exit 1 exactly when the prediction is a mismatch (DESIGN.md section 5, like `advise`).
    assert proc.returncode == (1 if doc["mismatch"] else 0), proc.stderr
    assert {k: doc[k] for k in expected} == expected
    for fix in doc["fixes"]:
        assert set(fix) == {"id", "config", "effect"}


def test_cli_text_names_the_numbers_and_fixes():
    out = labkit("mtu").stdout
    for needle in (
        "1347",
        "1315",
        "1418",
        "1378",
        "71 bytes",
        "anyconnect mtu 1300",
        "anyconnect ssl df-bit-ignore enable",
        "sysopt connection tcpmss 1460",
    ):
        assert needle in out


def test_cli_exit_code_follows_mismatch():
    assert "MISMATCH" in (seed := labkit("mtu")).stdout and seed.returncode == 1
    fixed = labkit("mtu", "--anyconnect-mtu", "1300")
    assert "no mismatch" in fixed.stdout and fixed.returncode == 0


def test_cli_df_bit_ignore_fragments_instead_of_dropping():
    out = labkit("mtu", "--df-bit-ignore").stdout
    first = out.splitlines()[0]
    assert first.startswith("configuration:") and "df-bit-ignore enabled" in first
    verdict = next(line for line in out.splitlines() if line.startswith("MISMATCH"))
    assert "fragments 1418-byte DF packets" in verdict
    assert "dropped" not in verdict and "ICMP 3/4 (black hole" not in verdict
    # The fix that is already applied is not offered again.
    assert "[df-bit-ignore]" not in out and "[anyconnect-mtu]" in out
    plain = next(line for line in labkit("mtu").stdout.splitlines() if line.startswith("MISMATCH"))
    assert "1418-byte DF packets are dropped with ICMP 3/4" in plain


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tls-cipher", "NOPE"], "unknown cipher 'NOPE'; known: RC4-SHA"),
        (["--anyconnect-mtu", "575"], "below the minimum 576"),
        (["--anyconnect-mtu", "1279", "--ipv6"], "below the IPv6 minimum 1280"),
        (["--base-mtu", "70000"], "base MTU 70000"),
        (["--tcpmss", "abc"], "invalid int value"),
        (["--frobnicate"], "unrecognized arguments"),
        (["--tls-version", "1.3"], "does not go with TLS 1.3"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(args, message):
    proc = labkit("mtu", *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_unknown_cipher_raises_usage_error_listing_known():
    with pytest.raises(UsageError, match="AES128-SHA"):
        mtu.cipher("AES-LOL")


def _dtls_app_records(path):
    """(frame length, DTLS record length) of every UDP/443 DTLS application record, by hand."""
    data = path.read_bytes()
    endian = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    off, rows = 24, []
    while off + 16 <= len(data):
        _, _, incl, orig = struct.unpack(endian + "IIII", data[off : off + 16])
        frame = data[off + 16 : off + 16 + incl]
        off += 16 + incl
        if frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        ihl = (frame[14] & 0x0F) * 4
        udp = 14 + ihl
        sport, dport = struct.unpack("!HH", frame[udp : udp + 4])
        rec = udp + 8
        if 443 in (sport, dport) and frame[rec] == 23 and frame[rec + 1 : rec + 3] == b"\x01\x00":
            rows.append((orig, struct.unpack("!H", frame[rec + 11 : rec + 13])[0]))
    return rows


def test_dtls_arithmetic_matches_real_anyconnect_capture(public_captures):
    rows = _dtls_app_records(public_captures / "anyconnect-vpn.pcap")
    assert len(rows) > 20
    # CBC: every record body is IV + blocks, a multiple of 16 ...
    assert all(length % 16 == 0 for _, length in rows)
    # ... and the outer overhead is 14 Ethernet + 20 IP + 8 UDP + 13 DTLS = 55, the same
    # constants the model subtracts (IP + UDP + DTLS header).
    overhead = mtu.IPV4_HEADER + mtu.UDP_HEADER + mtu.DTLS_RECORD_HEADER
    assert all(frame_len - length == 14 + overhead == 55 for frame_len, length in rows)
    # The largest record must fit the model: a 1418-byte inner packet + 1 header + 20 MAC
    # + padding to 16 + 16 IV = 1456 bytes of record body at most.
    biggest = max(length for _, length in rows)
    assert biggest <= 16 + ((1418 + 1 + 20) // 16 + 1) * 16


def test_an_adapter_mtu_no_nic_gives_is_a_usage_error_not_a_crash() -> None:
    """A loopback SYN's MSS 65495 makes an adapter MTU of 65535, above any DTLS MTU: the
    inverse says so in the error the analyzer's diagnosis expects (it then names no fix)."""
    from labkit import mtu

    top = mtu.dtls_mtu(mtu.MAX_IP_PACKET, mtu.DEFAULT_CIPHER, "0x0100")
    highest = mtu.config_for(top, 1347)  # the largest adapter MTU any NIC gives
    assert mtu.dtls_mtu(highest.base_mtu, mtu.DEFAULT_CIPHER, "0x0100") == top
    with pytest.raises(UsageError, match="no base MTU gives an adapter MTU of 65535"):
        mtu.config_for(65535, 1347)


def test_the_base_mtu_inverse_is_the_smallest_base_for_every_target() -> None:
    """Every DTLS MTU from 1200 to 1500, both record versions, a CBC and a GCM suite: the
    inverse gives the smallest base whose DTLS MTU is exactly the target (a scan finds the
    same), or says no base gives it (a target inside a CBC block step)."""
    from labkit import mtu

    for suite in ("AES128-SHA", "AES256-GCM-SHA384"):
        s = mtu.cipher(suite)
        for version in ("0x0100", "1.2"):
            by_value: dict[int, int] = {}
            for base in range(1200, 1700):
                by_value.setdefault(mtu.dtls_mtu(base, s, version), base)
            for target in range(1200, 1500):
                if target in by_value:
                    assert mtu.dtls_base_mtu(target, suite, version) == by_value[target]
                else:
                    with pytest.raises(UsageError):
                        mtu.dtls_base_mtu(target, suite, version)
