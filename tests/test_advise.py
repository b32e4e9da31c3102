"""`labkit advise`: the ASA config parser on literal text, the advice against the MTU model
worked by hand, and the command on the sample configs in configs/asa/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit import mtu
from labkit.advise import advise, negotiable_suites
from labkit.asa_config import parse
from tests.helpers.cli import labkit
from tests.helpers.paths import ROOT

CONFIGS = ROOT / "configs" / "asa"


def _policy(doc: dict, name: str) -> dict:
    return next(p for p in doc["group_policies"] if p["name"] == name)


def _advise_json(path: Path, *extra: str) -> tuple[int, dict]:
    proc = labkit("advise", str(path), "--format", "json", *extra)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


# ---------------------------------------------------------------------- the parser


def test_running_config_values_and_their_lines():
    cfg = parse((CONFIGS / "seed-9.17.cfg").read_text())
    assert (cfg.tcpmss, cfg.tcpmss_line) == (1380, 14)
    assert cfg.ciphers["tlsv1.2"].suites == ("AES128-SHA",)
    assert cfg.ciphers["dtlsv1"].line == 16
    assert cfg.webvpn is not None
    assert (cfg.webvpn.interfaces, cfg.webvpn.anyconnect_enabled, cfg.webvpn.dtls_port) == (
        ("outside",),
        True,
        443,
    )
    gp = cfg.group_policies["ac_users_group"]
    assert (gp.dtls, gp.anyconnect_mtu, gp.df_bit_ignore) == (True, None, None)
    assert gp.lines["dtls"] == 31
    assert cfg.tunnel_groups["ac_users"].default_group_policy == "ac_users_group"
    assert cfg.warnings == ()


def test_indentation_decides_the_mode():
    # The global webvpn after a group-policy block is global, and a group-policy's webvpn
    # sub-mode is not: the running-config's indentation says so.
    cfg = parse(
        "group-policy G attributes\n webvpn\n  anyconnect mtu 1300\n"
        "webvpn\n dtls port 8443\n anyconnect enable\n"
    )
    assert cfg.group_policies["G"].anyconnect_mtu == 1300
    assert cfg.webvpn is not None and (cfg.webvpn.dtls_port, cfg.webvpn.anyconnect_enabled) == (
        8443,
        True,
    )


def test_lines_under_blocks_labkit_passes_over_are_not_misread():
    # 'dtls port' under an unrelated block must not set the webvpn DTLS port.
    cfg = parse("webvpn\n enable outside\ninterface Gi0/0\n dtls port 9999\n")
    assert cfg.webvpn is not None and cfg.webvpn.dtls_port == 443


def test_unindented_paste_with_prompts_reads_like_the_cli():
    cfg = parse((CONFIGS / "fragment-pasted.txt").read_text())
    gp = cfg.group_policies["RemoteUsers"]
    assert (gp.dtls, gp.anyconnect_mtu) == (True, 1500)
    assert cfg.tunnel_groups["RA"].default_group_policy == "RemoteUsers"
    assert cfg.server_version == ("tlsv1.2", "dtlsv1.2")
    assert [(w.line, w.text) for w in cfg.warnings] == [(10, "anyconnect ssl df-bit-ignore maybe")]


def test_legacy_svc_keywords_and_ssl_encryption():
    cfg = parse((CONFIGS / "legacy-8.4-svc.cfg").read_text())
    gp = cfg.group_policies["SSLVPN"]
    assert (gp.anyconnect_mtu, gp.dtls, gp.tunnel_protocols) == (1406, True, ("svc",))
    assert cfg.cipher("tlsv1.2").suites == ("AES256-SHA", "AES128-SHA", "DES-CBC3-SHA")


@pytest.mark.parametrize(
    "line, message",
    [
        ("sysopt connection tcpmss 13x0", "expected a number"),
        ("sysopt connection tcpmss 99", "expected 536..65495"),
        ("ssl cipher tlsv1 high", "TLS 1.2 and DTLS 1.2 only"),
        ("ssl cipher tlsv1.2 strongest", "expected 'ssl cipher"),
        ("ssl encryption aes128-sha1 blowfish", "ssl encryption"),
        ("key: value", "not an ASA command line"),
    ],
)
def test_bad_lines_are_warnings_with_their_line_number(line, message):
    cfg = parse(f"hostname asa\n{line}\nsysopt connection tcpmss 1400\n")
    assert [(w.line, w.text) for w in cfg.warnings] == [(2, line)]
    assert message in cfg.warnings[0].message
    assert cfg.tcpmss == 1400  # the run goes on


def test_bad_anyconnect_mtu_keeps_the_inherited_value():
    cfg = parse("group-policy G attributes\n webvpn\n  anyconnect mtu 200\n")
    assert cfg.group_policies["G"].anyconnect_mtu is None
    assert cfg.warnings[0].line == 3 and "576" in cfg.warnings[0].message


def test_tcpmss_minimum_is_not_the_mss():
    assert parse("sysopt connection tcpmss minimum 48\n").tcpmss == mtu.DEFAULT_TCPMSS


def test_no_anyconnect_mtu_removes_the_cap():
    cfg = parse("group-policy G attributes\n webvpn\n  anyconnect mtu 1300\n  no anyconnect mtu\n")
    assert cfg.group_policies["G"].anyconnect_mtu is None


# ---------------------------------------------------------------------- the advice


def test_seed_config_gives_the_seed_numbers():
    a = advise(parse((CONFIGS / "seed-9.17.cfg").read_text()))
    p = next(p for p in a.policies if p.name == "ac_users_group")
    # 1380 - 5 - 8 - 20 = 1347 (ASA); 1500 - 20 - 8 - 13 - 16 -> 1440 - 1 - 20 - 1 = 1418.
    assert (p.worst.tls_mtu, p.worst.dtls_mtu, p.worst.adapter_mtu) == (1347, 1418, 1418)
    assert p.tunnel_groups == ("ac_users",)
    assert p.at_risk and p.reconnect_on_dtls_failure and p.black_hole_risk
    assert [f.id for f in p.fixes] == ["anyconnect-mtu", "df-bit-ignore", "tcpmss"]
    assert p.fixes[0].config.splitlines() == [
        "group-policy ac_users_group attributes",
        " webvpn",
        "  anyconnect mtu 1300",
    ]
    assert p.fixes[2].config == "sysopt connection tcpmss 1460"


def test_default_levels_report_the_range_and_judge_the_worst_pair():
    cfg = parse((CONFIGS / "defaults-two-policies.cfg").read_text())
    a = advise(cfg)
    eng = next(p for p in a.policies if p.name == "engineering")
    # TLS 1.2 medium: SHA-384 CBC gives 1380 - 13 - 48 = 1319, GCM (16-byte tag) 1351.
    assert eng.tls_mtu_range == (1319, 1351)
    assert eng.worst.tls_mtu == 1319
    # DTLS 1.0 SHA-1 suites give 1418, capped by DfltGrpPolicy's anyconnect mtu 1406.
    assert eng.anyconnect_mtu.value == 1406 and eng.anyconnect_mtu.source == "DfltGrpPolicy line 24"
    assert eng.worst.dtls_mtu == 1406 and eng.at_risk
    contractors = next(p for p in a.policies if p.name == "contractors")
    assert (contractors.worst.adapter_mtu, contractors.at_risk) == (1300, False)
    dflt = next(p for p in a.policies if p.name == "DfltGrpPolicy")
    assert dflt.tunnel_groups == ("LEGACY",) and dflt.inherited_by == ("engineering", "contractors")
    assert "inherits it from DfltGrpPolicy (engineering, contractors)" in dflt.fixes[0].effect
    assert any("dtls port 8443" in n for n in a.notes)


def test_dtls12_from_server_version_and_high_level():
    suites = negotiable_suites(parse((CONFIGS / "fragment-pasted.txt").read_text()))
    assert {v for _, v in suites.dtls} == {"1.2"}
    assert all("AES256" in s for s in suites.tls)
    a = advise(parse((CONFIGS / "fragment-pasted.txt").read_text()))
    p = next(p for p in a.policies if p.name == "RemoteUsers")
    # DTLS 1.2 GCM: 1472 - 13 - 8 - 16 - 1 = 1434; SHA-384 CBC: 1440 - 1 - 48 - 1 = 1390.
    assert p.dtls_mtu_range == (1390, 1434)
    assert p.worst.adapter_mtu == 1434


def test_dtls_none_or_tls_only_means_no_reconnect():
    base = "group-policy G attributes\n webvpn\n  anyconnect ssl dtls none\n"
    p = next(p for p in advise(parse(base)).policies if p.name == "G")
    # DTLS off: the adapter runs at the TLS MTU; the smallest of the medium suites is
    # SHA-384 CBC, 1380 - 13 - 48 = 1319.
    assert not p.at_risk and p.worst.adapter_mtu == p.worst.tls_mtu == 1319
    tls_only = "webvpn\n enable outside tls-only\n anyconnect enable\n"
    assert advise(parse(tls_only)).at_risk == ()


def test_a_policy_without_ssl_client_is_not_at_risk():
    cfg = parse("group-policy DfltGrpPolicy attributes\n vpn-tunnel-protocol ikev2\n")
    (p,) = advise(cfg).policies
    assert not p.anyconnect_allowed.value and not p.at_risk and p.fixes == ()


def test_undefined_policy_named_by_a_tunnel_group_is_noted():
    cfg = parse("tunnel-group T general-attributes\n default-group-policy Missing\n")
    a = advise(cfg)
    assert [p.name for p in a.policies] == ["DfltGrpPolicy", "Missing"]
    assert any("Missing" in n and "line 2" in n for n in a.notes)


# ---------------------------------------------------------------------- the command


@pytest.mark.parametrize(
    "name, code, risky, black_hole",
    [
        ("seed-9.17.cfg", 1, ["DfltGrpPolicy", "ac_users_group"], True),
        ("seed-df-bit-ignore.cfg", 1, ["ac_users_group"], False),
        ("seed-fixed-anyconnect-mtu.cfg", 0, [], False),
        ("seed-fixed-tcpmss-1460.cfg", 0, [], False),
    ],
)
def test_seed_and_its_fixes_exit_codes(name, code, risky, black_hole):
    rc, doc = _advise_json(CONFIGS / name)
    assert rc == code
    assert doc["at_risk"] == risky
    users = _policy(doc, "ac_users_group")
    assert users["black_hole_risk"] is black_hole
    assert users["tunnel_groups"] == ["ac_users"]


def test_tcpmss_fix_numbers_in_json():
    _, doc = _advise_json(CONFIGS / "seed-fixed-tcpmss-1460.cfg")
    users = _policy(doc, "ac_users_group")
    assert (users["tls_mtu"], users["dtls_mtu"]) == (1460 - 13 - 20, 1418)
    assert doc["tcpmss"] == {"value": 1460, "line": 13}


def test_text_output_names_the_fix_lines():
    proc = labkit("advise", str(CONFIGS / "seed-9.17.cfg"))
    assert proc.returncode == 1
    assert "group-policy ac_users_group attributes" in proc.stdout
    assert "AT RISK" in proc.stdout and "1418" in proc.stdout and "1347" in proc.stdout


def _block(text: str, head: str) -> list[str]:
    """The lines under ``head`` up to the first blank line, their common indent removed."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == head) + 1
    block = []
    for line in lines[start:]:
        if not line.strip():
            break
        block.append(line)
    indent = min(len(x) - len(x.lstrip()) for x in block)
    return [x[indent:] for x in block]


@pytest.mark.parametrize(
    "config, mtu_args",
    [("seed-9.17.cfg", []), ("seed-df-bit-ignore.cfg", ["--df-bit-ignore"])],
)
def test_advise_and_mtu_print_the_same_verdict_and_fixes(config, mtu_args):
    """One text for a fix: `advise` only puts the group-policy's name into `mtu`'s lines."""
    adv = labkit("advise", str(CONFIGS / config)).stdout
    calc = labkit("mtu", *mtu_args).stdout
    users = adv[adv.index("group-policy ac_users_group") :]
    fixes = _block(users, "fixes, best first:")
    expected = [x.replace("<name>", "ac_users_group") for x in _block(calc, "fixes, best first:")]
    assert fixes == expected and len(fixes) >= 6
    risk = next(x for x in users.splitlines() if "AT RISK:" in x).split("AT RISK: ")[1]
    assert calc.count(risk) == 1  # the same sentence, word for word


def test_warning_goes_to_stderr_with_file_and_line(tmp_path):
    proc = labkit("advise", str(CONFIGS / "fragment-pasted.txt"))
    assert proc.returncode == 1
    assert "fragment-pasted.txt:10:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_stdin_is_read():
    proc = labkit(
        "advise",
        "-",
        "--format",
        "json",
        stdin="group-policy G attributes\n webvpn\n  anyconnect mtu 1300\n"
        "group-policy DfltGrpPolicy attributes\n vpn-tunnel-protocol ikev2\n",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _policy(json.loads(proc.stdout), "G")["adapter_mtu"] == 1300


@pytest.mark.parametrize(
    "content, message",
    [
        (b"name: seed\nsteps:\n  - syn\n", "no ASA command labkit models"),
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "binary data"),
    ],
)
def test_unusable_input_is_one_line_exit_2(tmp_path, content, message):
    path = tmp_path / "input.cfg"
    path.write_bytes(content)
    proc = labkit("advise", str(path))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if "error" in line]) == 1


def test_missing_file_is_exit_2(tmp_path):
    proc = labkit("advise", str(tmp_path / "nope.cfg"))
    assert proc.returncode == 2 and "cannot read" in proc.stderr
