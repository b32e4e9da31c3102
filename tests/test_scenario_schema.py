"""Scenario files: line-numbered validation, numbers from the MTU model, the timeline's logic.

Everything here is Scapy-free (the loader and the timeline model never import it). Error
messages are asserted whole, with the line computed from the text, because the message is
the contract: ``file:line: key: what is wrong``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from labkit import mtu, resources
from labkit.scenario import ScenarioError, connect, find, load, parse, shipped
from labkit.scenario.events import INSIDE, OUTSIDE, DtlsDatagram, InnerTooBig, build_timeline
from labkit.scenario.expect import check
from labkit.scenario.numbers import derive
from tests.helpers.cli import labkit
from tests.helpers.paths import ROOT

CONFIGS = ROOT / "configs" / "scenarios"
SEED_FILE = CONFIGS / "dtls-blocked-icmp-ok.yaml"
SEED = SEED_FILE.read_text()
NAMES = (
    "healthy",
    "dtls-blocked-icmp-ok",
    "dtls-blocked-icmp-blocked",
    "dtls-nondefault-port",
    "fix-anyconnect-mtu-1300",
    "fix-df-bit-ignore",
    "fix-tcpmss-1460",
    "dtls-blocked-ipv6",
)


def mutate(old: str, new: str, text: str = SEED) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def error(text: str, source: str = "s.yaml") -> str:
    with pytest.raises(ScenarioError) as exc:
        build_timeline(parse(text, source))
    return str(exc.value)


# --- the shipped scenarios ---------------------------------------------------------------------


def test_the_shipped_names_are_the_contract() -> None:
    assert sorted(p.stem for p in shipped()) == sorted(NAMES)
    for path in shipped():
        s = load(path)
        assert s.name == path.stem and s.summary and s.expect.report


def test_list_shows_every_shipped_scenario() -> None:
    proc = labkit("scenario", "list", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["name"] for r in rows] == sorted(NAMES)
    assert all(not r["summary"].startswith("INVALID") for r in rows)
    text = labkit("scenario", "list").stdout
    assert "dtls-blocked-icmp-ok" in text and "seed's case" in text


@pytest.mark.parametrize("name", NAMES)
def test_validate_every_shipped_scenario(name: str) -> None:
    proc = labkit("scenario", "validate", name)
    assert proc.returncode == 0, proc.stderr
    assert f"valid scenario {name}" in proc.stdout and "must report" in proc.stdout


def test_list_and_validate_do_not_import_scapy() -> None:
    import subprocess

    code = (
        "import sys; from labkit.cli import main; main(['scenario', 'list']); "
        "main(['scenario', 'validate', 'dtls-blocked-icmp-ok']); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scapy'))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"


def test_validate_prints_the_models_numbers() -> None:
    out = labkit("scenario", "validate", str(SEED_FILE)).stdout
    assert "TLS MTU 1347, DTLS MTU 1418, adapter MTU 1418, tunnel MSS 1378" in out
    assert "4 ClientHellos to UDP 443, unanswered" in out
    assert "adapter MTU 1418 -> 1347 (MSS 1307)" in out


# --- errors name file, line and key -------------------------------------------------------------


def test_the_issue_example_exactly(tmp_path: Path) -> None:
    text = mutate("tcpmss: 1380 ", "tcpmss: abc  ")
    (tmp_path / "dtls-blocked.yaml").write_text(text)
    proc = labkit("scenario", "validate", "dtls-blocked.yaml", cwd=tmp_path)
    line = line_of(text, "tcpmss: abc")
    assert proc.returncode == 2
    assert proc.stderr == (
        f"labkit scenario: error: dtls-blocked.yaml:{line}: head_end.tcpmss: "
        f"expected an integer 536..65495, got 'abc'\n"
    )
    assert proc.stdout == ""


@pytest.mark.parametrize(
    "old, new, needle, message",
    [
        (
            "  tcpmss: 1380",
            "  tcpmms: 1380",
            "tcpmms",
            "head_end.tcpmms: unknown key 'tcpmms'; known keys: tcpmss, tls_cipher, tls_version, dtls, "
            "dtls_cipher, dtls_version, dtls_port, anyconnect_mtu, df_bit_ignore, icmp_unreachables",
        ),
        (
            "  tcpmss: 1380",
            "  tcpmss: 1380\n  tcpmss: 1400",
            "tcpmss: 1400",
            "head_end.tcpmss: duplicate key",
        ),
        (
            "  tcpmss: 1380",
            "  tcpmss: true",
            "tcpmss: true",
            "head_end.tcpmss: expected an integer 536..65495, got True",
        ),
        (
            "  tcpmss: 1380",
            "  tcpmss: 100",
            "tcpmss: 100",
            "head_end.tcpmss: expected an integer 536..65495, got 100",
        ),
        (
            "anyconnect_mtu: null",
            "anyconnect_mtu: 500",
            "anyconnect_mtu: 500",
            "head_end.anyconnect_mtu: expected an integer 576..65535, got 500",
        ),
        (
            "\n  tls_cipher: AES128-SHA",
            "\n  tls_cipher: NOPE-SHA",
            "NOPE-SHA",
            "head_end.tls_cipher: expected one of RC4-SHA, DES-CBC3-SHA, AES128-SHA",
        ),
        (
            "dtls_cipher: AES128-SHA",
            "dtls_cipher: AES128-GCM-SHA256",
            "dtls_cipher",
            "head_end.dtls_cipher: expected one of AES256-SHA, AES128-SHA, DES-CBC3-SHA, "
            "got 'AES128-GCM-SHA256'",
        ),
        (
            'dtls_version: "0x0100"',
            'dtls_version: "1.2"',
            "dtls_version",
            "head_end.dtls_version: expected one of 0x0100, got '1.2'",
        ),
        (
            'tls_version: "1.2"',
            'tls_version: "1.3"',
            "tls_version",
            "head_end.tls_version: expected one of 1.0, 1.1, 1.2, got '1.3'",
        ),
        (
            "df_bit_ignore: false",
            "df_bit_ignore: maybe",
            "df_bit_ignore",
            "head_end.df_bit_ignore: expected true or false, got 'maybe'",
        ),
        (
            "tunnel: 198.51.100.10}",
            "tunnel: 198.51.100.300}",
            "198.51.100.300",
            "hosts.client.tunnel: expected an IPv4 or IPv6 address, got '198.51.100.300'",
        ),
        (
            "outside: 192.0.2.10,",
            "outside: 2001:db8::10,",
            "2001:db8::10",
            "hosts.client.outside: expected an IPv4 address, got '2001:db8::10' (the MTU model "
            "computes the outer path over IPv4)",
        ),
        (
            "address: 203.0.113.80",
            "address: 2001:db8:80::80",
            "2001:db8:80::80",
            "hosts.server.address: 2001:db8:80::80 is not the same IP version as the tunnel address "
            "198.51.100.10",
        ),
        (
            "outside_rtt_ms: 20",
            "outside_rtt_ms: 0",
            "outside_rtt_ms",
            "path.outside_rtt_ms: expected milliseconds 0.1..2000, got 0",
        ),
        (
            "{step: flow, at: 1, segments: 4",
            "{step: flood, at: 1, segments: 4",
            "step: flood",
            "timeline[2].step: expected one of connect, dtls, flow, got 'flood'",
        ),
        (
            "{step: flow, at: 1, segments: 4",
            "{step: flow, at: 1, segments: 40",
            "segments: 40",
            "timeline[2].segments: expected an integer 1..10, got 40",
        ),
        (
            "{step: flow, at: 1, segments: 4",
            "{step: flow, at: 1, segment: 4",
            "segment: 4",
            "timeline[2].segment: unknown key 'segment'; known keys: step, at, segments, retries",
        ),
        (
            "{step: flow, at: 20,",
            "{step: flow, at: 0.5,",
            "at: 0.5",
            "timeline[3].at: steps must be in time order (0.5 s is before 1 s)",
        ),
        (
            "{step: flow, at: 1, segments: 4, retries: 3}",
            "{step: connect, at: 1}",
            "{step: connect, at: 1}",
            "timeline[2].step: only the first step connects; reconnects follow from the DTLS outcome",
        ),
        (
            "{step: flow, at: 1, segments: 4, retries: 3}",
            "{step: dtls, at: 1}",
            "{step: dtls, at: 1}",
            "timeline[2].step: at most one 'dtls' step (its retries are in 'attempts')",
        ),
        (
            "{id: syn-mss, mss: 1378}",
            "{id: syn-mms, mss: 1378}",
            "syn-mms",
            "expect.report[1].id: expected one of dtls-established, dtls-unanswered",
        ),
        (
            "not_report: [dtls-established,",
            "not_report: [syn-mss, dtls-established,",
            "not_report",
            "expect.not_report[0]: syn-mss is also in expect.report",
        ),
        (  # a tag YAML cannot construct: the line of the value, not of the document
            "tcpmss: 1380",
            "tcpmss: !foo 1380",
            "!foo",
            "head_end.tcpmss: cannot read the value (could not determine a constructor",
        ),
    ],
)
def test_errors_name_the_line_and_key(old: str, new: str, needle: str, message: str) -> None:
    text = mutate(old, new)
    got = error(text)
    assert got.startswith(f"s.yaml:{line_of(text, needle)}: {message}"), got


def test_dtls_step_without_dtls_points_at_the_step() -> None:
    text = mutate("dtls: true ", "dtls: false")
    assert error(text) == (
        f"s.yaml:{line_of(text, '{step: dtls')}: timeline[1].step: "
        "head_end.dtls is false: the client does not try DTLS"
    )


def test_yaml_syntax_empty_file_and_missing_sections() -> None:
    text = mutate("  tcpmss: 1380", "  tcpmss: [1380")  # the list never closes
    assert error(text) == (
        f"s.yaml:{line_of(text, 'tls_cipher')}: not valid YAML: "
        "expected ',' or ']', but got '<scalar>'"
    )
    assert error("") == "s.yaml:1: the file is empty; a scenario is a YAML mapping"
    assert error("- 1\n- 2\n") == "s.yaml:1: expected a mapping, got a list"
    assert error("name: x\n") == "s.yaml:1: missing key 'hosts'"
    assert error("hosts: {}\ntimeline: []\n") == "s.yaml:1: hosts: missing key 'client'"
    assert error("foo: 1\n").startswith("s.yaml:1: foo: unknown key 'foo'; known keys: name,")


def test_timeline_must_start_with_connect_and_dtls_after_the_tunnel() -> None:
    text = mutate("  - {step: connect, at: 0}      # parent TLS tunnel + CSTP CONNECT\n", "")
    assert error(text) == (
        f"s.yaml:{line_of(text, '{step: dtls')}: timeline[0]: the timeline "
        "starts with a 'connect' step (the parent TLS tunnel)"
    )
    text = mutate("{step: dtls, at: 0.2,", "{step: dtls, at: 0.01,")
    assert error(text) == (
        f"s.yaml:{line_of(text, '{step: dtls')}: timeline: DTLS starts at "
        "0.01 s, before the CONNECT response at 0.080152 s that names the DTLS "
        "session"
    )


def test_a_flow_during_the_reconnect_names_its_line() -> None:
    text = mutate("{step: flow, at: 20,", "{step: flow, at: 15.5,")
    assert error(text) == (
        f"s.yaml:{line_of(text, 'at: 15.5')}: timeline: the flow sends at "
        "15.500 s while the tunnel is down (before it is up, or during the "
        "reconnect): move it"
    )


def test_cli_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(mutate("  tcpmss: 1380", "  tcpmss: 1380\n  bogus: 1"))
    for args in (
        ("validate", str(bad)),
        ("build", str(bad), "-o", str(tmp_path / "out")),
        ("validate", str(tmp_path / "missing.yaml")),
        ("validate", "no-such-scenario"),
        ("validate", str(tmp_path)),
    ):
        proc = labkit("scenario", *args)
        assert proc.returncode == 2, args
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "out" / "outside.pcapng").exists()
    proc = labkit("scenario", "validate", str(bad))
    assert (
        f"bad.yaml:{line_of(bad.read_text(), 'bogus')}: head_end.bogus: unknown key" in proc.stderr
    )


# --- numbers come from the model ----------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_numbers_are_the_models(name: str) -> None:
    s = load(find(name))
    n = derive(s)
    p = mtu.predict(s.tunnel_config())
    assert (n.tls_mtu, n.dtls_mtu, n.adapter_mtu, n.tunnel_mss) == (
        p.tls_mtu,
        p.dtls_mtu,
        p.adapter_mtu,
        p.tunnel_mss,
    )
    assert n.overridden == () and n.fallback_mss == p.fallback_mss


def test_seed_numbers_by_hand() -> None:
    n = derive(load(SEED_FILE))
    assert (n.tls_mtu, n.dtls_mtu, n.adapter_mtu, n.tunnel_mss) == (1380 - 33, 1418, 1418, 1378)
    ipv6 = derive(load(find("dtls-blocked-ipv6")))
    assert ipv6.tunnel_mss == 1418 - 40 - 20 == 1358
    assert derive(load(find("fix-anyconnect-mtu-1300"))).tunnel_mss == 1260
    assert derive(load(find("fix-tcpmss-1460"))).tls_mtu == 1460 - 5 - 8 - 20 == 1427


def test_an_override_is_reported_as_such() -> None:
    text = SEED + "overrides:\n  adapter_mtu: 1400\n"
    s = parse(text, "o.yaml")
    n = derive(s)
    assert (n.adapter_mtu, n.tunnel_mss, n.overridden) == (1400, 1360, ("adapter_mtu",))
    assert "adapter MTU 1400 (override; model 1418)" in n.describe()
    assert "TLS MTU 1347" in n.describe()
    flows = build_timeline(s).flows
    assert flows[0].mss == 1360
    bad = SEED + "overrides:\n  adapter_mtu: 1400\n  tunnel_mss: 1361\n"
    assert error(bad, "o.yaml") == (
        f"o.yaml:{line_of(bad, 'tunnel_mss: 1361')}: "
        "overrides.tunnel_mss: tunnel MSS 1361 does not fit adapter "
        "MTU 1400 (at most 1360)"
    )


# --- the timeline follows from the configuration ------------------------------------------------


def test_dtls_backoff_and_reconnect_times() -> None:
    tl = build_timeline(load(SEED_FILE))
    hellos = [
        x.time_us
        for x in tl.at(OUTSIDE)
        if isinstance(x.what, DtlsDatagram) and x.what.kind == "client_hello"
    ]
    assert hellos == [200_000, 1_200_000, 3_200_000, 7_200_000]  # 1 s doubling (RFC 6347)
    assert tl.dtls is not None and tl.dtls.gave_up_us == 15_200_000  # + 8 s, the last wait
    assert [s.start_us for s in tl.sessions] == [0, 16_200_000]  # reconnect_delay 1 s
    assert tl.sessions[0].end_us == 15_200_000


@pytest.mark.parametrize(
    "name, reconnects",
    [
        ("healthy", False),
        ("dtls-blocked-icmp-ok", True),
        ("dtls-blocked-icmp-blocked", True),
        ("dtls-nondefault-port", True),
        ("fix-anyconnect-mtu-1300", False),
        ("fix-df-bit-ignore", True),
        ("fix-tcpmss-1460", False),
        ("dtls-blocked-ipv6", True),
    ],
)
def test_reconnect_follows_from_the_mismatch(name: str, reconnects: bool) -> None:
    s = load(find(name))
    tl = build_timeline(s)
    assert tl.reconnected == reconnects
    assert tl.reconnected == (derive(s).mismatch and s.path.dtls_udp_blocked)
    first, second = tl.flows
    n = derive(s)
    assert first.mss == n.tunnel_mss
    assert second.mss == (n.fallback_mss if reconnects else n.tunnel_mss)


def test_icmp_is_rate_limited_and_announces_the_tls_mtu() -> None:
    tl = build_timeline(load(SEED_FILE))
    icmps = [x.what for x in tl.at(INSIDE) if isinstance(x.what, InnerTooBig)]
    assert len(icmps) == 1  # four 1418-byte segments dropped within a second: one ICMP
    assert (icmps[0].mtu, icmps[0].original.size) == (1347, 1418)
    assert tl.flows[0].delivered == tl.flows[0].total == 4 * 1378


def test_black_hole_retransmits_at_rto_backoff() -> None:
    tl = build_timeline(load(find("dtls-blocked-icmp-blocked")))
    f = tl.flows[0]
    assert (f.delivered, f.icmp, f.retransmissions) == (0, 0, 3)
    big = [x.time_us for x in tl.at(INSIDE) if getattr(x.what, "retransmission", False)]
    first = [x.time_us for x in tl.at(INSIDE) if getattr(x.what, "payload", 0) == 1378][0]
    assert [t - first for t in big] == [1_000_048, 3_000_048, 7_000_048]  # 1, 2, 4 s RTO


def test_connect_response_announces_both_mtus() -> None:
    s = load(SEED_FILE)
    text = connect.response(build_timeline(s).sessions[0].connect)
    assert "X-CSTP-MTU: 1347\r\n" in text and "X-DTLS-MTU: 1418\r\n" in text
    assert "X-DTLS-Port: 443\r\n" in text and text.endswith("\r\n\r\n")


# --- expectations --------------------------------------------------------------------------------


def test_expect_check_matches_ids_and_stated_fields() -> None:
    s = load(SEED_FILE)
    good = [
        {"id": "dtls-unanswered", "port": 443, "attempts": 4, "client": "192.0.2.10"},
        {"id": "syn-mss", "mss": 1460},
        {"id": "syn-mss", "mss": 1378},
        {"id": "icmp-frag-needed", "mtu": 1347, "original_length": 1418},
        {"id": "oversized-df", "packet_size": 1418, "tunnel_mtu": 1347, "count": 4},
        {"id": "mtu-mismatch", "packet_size": 1418, "tunnel_mtu": 1347.0},
        {"id": "vpn-reconnect", "gap_s": 1.0},
    ]
    assert check(s.expect, good) == []
    bad = [f for f in good if f["id"] != "vpn-reconnect"]
    bad[2] = {"id": "syn-mss", "mss": 1379}
    bad.append({"id": "pmtud-black-hole", "summary": "the same segment"})
    problems = check(s.expect, bad)
    assert len(problems) == 3
    assert (
        "expected {'id': 'syn-mss', 'mss': 1378}; reported with [{'mss': 1460}, {'mss': 1379}]"
        in problems[0]
    )
    assert "expected {'id': 'vpn-reconnect'}; not reported" in problems[1]
    assert problems[2] == "expected no pmtud-black-hole, got 1: the same segment"


# --- resources: found in a checkout and in an installed layout -----------------------------------


def test_configs_found_in_the_checkout() -> None:
    assert resources.configs_dir() == ROOT / "configs"
    assert resources.scenarios_dir() == CONFIGS


def test_configs_found_under_the_prefix_when_installed(tmp_path: Path) -> None:
    import shutil
    import subprocess

    site = tmp_path / "site"
    shutil.copytree(ROOT / "labkit", site / "labkit", ignore=shutil.ignore_patterns("__pycache__"))
    prefix = tmp_path / "prefix"
    shutil.copytree(CONFIGS, prefix / "share" / "labkit" / "configs" / "scenarios")
    code = (
        f"import sys; sys.prefix = {str(prefix)!r}; from labkit.cli import main; "
        "sys.exit(main(['scenario', 'list', '--format', 'json']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site)},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert sorted(r["name"] for r in rows) == sorted(NAMES)
    assert all(r["file"].startswith(str(prefix)) for r in rows)
