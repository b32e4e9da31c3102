"""The report a lab engineer acts on: the diagnosis first, the fixes from the MTU model, the
mismatch ruled out on the fix scenarios, MSS clamping and per-point repeats folded, busy
captures summarised. tshark judges every frame the diagnosis cites and every filter it prints.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.utils import wrpcap

from labkit.analyze import analyze
from tests.helpers import synth
from tests.helpers.cli import labkit
from tests.helpers.findings import assert_filters_select_exactly_the_evidence
from tests.helpers.paths import ROOT
from tests.helpers.tshark import requires_tshark, tshark_fields, tshark_frames

SCENARIOS = ROOT / "pcaps" / "scenarios"
FILES = ("outside.pcapng", "client-tunnel.pcap", "headend-inside.pcap")


def captures(name: str) -> list[str]:
    return [str(SCENARIOS / name / f) for f in FILES]


def report_json(*args: str) -> tuple[int, dict]:
    proc = labkit("analyze", "--format", "json", *args)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def block(text: str, head_prefix: str) -> list[str]:
    """The lines under the line starting with ``head_prefix``, up to a blank line, unindented."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(head_prefix)) + 1
    out = []
    for line in lines[start:]:
        if not line.strip():
            break
        out.append(line)
    indent = min(len(x) - len(x.lstrip()) for x in out)
    return [x[indent:] for x in out]


# ------------------------------------------------------------------ the reference case


@requires_tshark
def test_reference_case_diagnosis_is_the_chain_with_checked_frames():
    rc, doc = report_json(*captures("dtls-blocked-icmp-ok"))
    assert rc == 1
    d = doc["diagnosis"]
    assert d["status"] == "confirmed"
    assert "1418-byte packets meet a 1347-byte TLS tunnel" in d["headline"]
    assert [s.get("finding") for s in d["steps"]] == [
        "dtls-unanswered",
        "syn-mss",
        "mtu-mismatch",
        "oversized-df",
        "icmp-frag-needed",
        "vpn-reconnect",
    ]
    # Each link's frame shows what the link says, in tshark's reading of that file.
    checks = {
        "dtls-unanswered": (
            "ip.dst == 192.0.2.1 && udp.dstport == 443 && dtls.handshake.type == 1"
        ),
        "syn-mss": "tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.options.mss_val == 1378",
        "oversized-df": "ip.flags.df == 1 && ip.len == 1418",
        "icmp-frag-needed": "icmp.type == 3 && icmp.code == 4 && icmp.mtu == 1347",
        "vpn-reconnect": "tls.handshake.type == 1 && ip.dst == 192.0.2.1",
    }
    for step in d["steps"]:
        ev = step["evidence"]
        if step["finding"] in checks:
            assert ev["frame"] in tshark_frames(ev["file"], checks[step["finding"]]), step


def test_reference_case_text_opens_with_the_diagnosis_and_fixes():
    proc = labkit("analyze", *captures("dtls-blocked-icmp-ok"))
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("VERDICT: PROBLEM")
    assert lines[2].startswith("DIAGNOSIS: MTU mismatch confirmed")
    assert "1. DTLS from 192.0.2.10 to 192.0.2.1:443 unanswered, 4 attempt(s)" in lines[3]
    assert "[dtls-unanswered, outside.pcapng frame 12]" in lines[3]
    fixes_at = next(i for i, line in enumerate(lines) if line.startswith("FIXES"))
    assert fixes_at < lines.index("files:") < lines.index("findings:")


# ------------------------------------------------------------------ fixes: one source


@pytest.mark.parametrize("scenario", ["dtls-blocked-icmp-ok", "dtls-blocked-icmp-blocked"])
def test_analyzer_fixes_equal_labkit_mtu_for_the_numbers_shown(scenario):
    _, doc = report_json(*captures(scenario))
    model = doc["diagnosis"]["model"]
    assert model == "labkit mtu --base-mtu 1500 --tcpmss 1380"
    calc = labkit(*model.split()[1:], "--format", "json")
    assert calc.returncode == 1  # the model agrees: a mismatch
    expected = json.loads(calc.stdout)["fixes"]
    assert [{k: f[k] for k in ("id", "config", "effect")} for f in doc["fixes"]] == expected
    assert [f["rank"] for f in doc["fixes"]] == [1, 2, 3]
    # And the text: the analyzer's FIXES block is `labkit mtu`'s, line for line.
    text = labkit("analyze", *captures(scenario)).stdout
    assert block(text, "FIXES") == block(labkit(*model.split()[1:]).stdout, "fixes, best first:")


# ------------------------------------------------------------------ ruled out on the fixes


@pytest.mark.parametrize(
    "scenario, reason, finding",
    [
        ("fix-anyconnect-mtu-1300", "adapter MTU 1300 <= tunnel MTU 1347", "syn-mss"),
        ("fix-tcpmss-1460", "adapter MTU 1418 <= tunnel MTU 1427", "syn-mss"),
        ("fix-df-bit-ignore", "the head-end fragments the 1418-byte DF packets", None),
    ],
)
def test_fix_scenarios_rule_the_mismatch_out_and_say_why(scenario, reason, finding):
    _, doc = report_json(*captures(scenario))
    d = doc["diagnosis"]
    assert d["status"] == "ruled-out", d
    assert d["headline"].startswith("MTU mismatch ruled out although DTLS failed")
    assert reason in d["headline"]
    assert doc["fixes"] == []
    assert d["steps"][0]["finding"] == "dtls-unanswered"
    if finding:
        assert any(s.get("finding") == finding for s in d["steps"][1:])


@requires_tshark
def test_df_bit_ignore_fragments_are_found_in_the_tunnel_capture():
    _, doc = report_json(*captures("fix-df-bit-ignore"))
    step = next(s for s in doc["diagnosis"]["steps"] if "fragments" in s["text"])
    ev = step["evidence"]
    assert ev["file"].endswith("client-tunnel.pcap")
    # tshark: that frame is the last fragment of a 1418-byte packet.
    rows = tshark_fields(
        ev["file"], f"frame.number == {ev['frame']}", "ip.flags.mf", "ip.frag_offset", "ip.len"
    )
    mf, offset, length = (int(x, 0) if x not in ("True", "False") else x for x in rows[0])
    assert mf in (0, "False") and offset > 0
    assert 1418 in (offset * 8 + length, offset + length)  # units differ across tshark releases
    assert "4 packet(s) of 1418 bytes" in step["text"]


# ------------------------------------------------------------------ folding findings


@requires_tshark
def test_mss_clamping_is_one_finding_with_both_sides():
    r = analyze(captures("dtls-blocked-icmp-ok"))
    clamps = [f for f in r.findings if f.fields.get("clamped_by") == "head-end"]
    assert len(clamps) == 1
    c = clamps[0]
    assert (c.fields["mss"], c.fields["mss_before_clamping"]) == (1380, 1460)
    assert "sysopt connection tcpmss 1380" in c.summary
    files = {Path(e.file).name for e in c.evidence}
    assert files == {"client-tunnel.pcap", "headend-inside.pcap"}
    # No separate finding for the unclamped inner SYN-ACK.
    inner_acks = [
        f
        for f in r.findings
        if f.id == "syn-mss" and f.fields.get("role") == "inner"
        if f.fields.get("direction") == "syn-ack"
    ]
    assert inner_acks == [c]
    assert_filters_select_exactly_the_evidence(r)


def test_info_findings_repeated_per_capture_point_fold_into_one():
    r = analyze(captures("dtls-blocked-icmp-ok"))
    syn1378 = [f for f in r.findings if f.id == "syn-mss" and f.fields.get("mss") == 1378]
    assert len(syn1378) == 1
    f = syn1378[0]
    assert {Path(e.file).name for e in f.evidence} == {"client-tunnel.pcap", "headend-inside.pcap"}
    assert set(f.fields["wireshark_filters"]) == {e.file for e in f.evidence}
    assert "Seen at 2 capture points: tunnel" in f.summary


# ------------------------------------------------------------------ busy captures


HEADENDS = [f"203.0.113.{i}" for i in range(1, 6)]


def busy_capture(path: Path) -> dict[str, int]:
    """Unanswered DTLS from many clients to five head-ends; returns hellos per head-end."""
    pkts, hellos = [], {}
    t = 0.0
    for h, head in enumerate(HEADENDS):
        for c in range(4 + 3 * h):
            client = f"198.51.{100 + h}.{c + 1}"
            for attempt in range(2):  # a retry a second later, as AnyConnect retries
                payload = synth.dtls_client_hello(rec_seq=attempt)
                pkts.append(synth.udp(client, head, 40000 + c, 443, payload, t + attempt))
            # Both seen again later (not on the DTLS port): the capture kept looking.
            pkts.append(synth.udp(client, head, 40000 + c, 9, b"later", t + 20))
            pkts.append(synth.udp(head, client, 9, 40000 + c, b"later", t + 21))
            t += 0.01
            hellos[head] = hellos.get(head, 0) + 2
    wrpcap(str(path), sorted(pkts, key=lambda p: float(p.time)))
    return hellos


@requires_tshark
def test_busy_capture_is_summarised_by_head_end_with_exact_filters(tmp_path):
    path = tmp_path / "busy.pcap"
    hellos = busy_capture(path)
    flows = sum(n // 2 for n in hellos.values())
    heads = [a for h in HEADENDS for a in ("--headend", h)]  # as the engineer knows them
    proc = labkit("analyze", str(path), *heads)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert len(lines) <= 60
    head = next(x for x in lines if "] dtls-unanswered:" in x)
    assert f"{flows} flows, {len(HEADENDS)} head-end(s)" in head
    for he in HEADENDS:
        line = next(x for x in lines if x.strip().startswith(f"head-end {he}:443:"))
        assert f"{hellos[he] // 2} flow(s) from {hellos[he] // 2} client(s)" in line
        assert f"and {hellos[he] // 2 - 3} more" in line
        i = lines.index(line)
        filt = lines[i + 1].split("wireshark filter: ")[1]
        # tshark: the head-end filter selects exactly the hellos sent to that head-end.
        assert len(tshark_frames(path, filt)) == hellos[he]
    every = labkit("analyze", "--all", str(path), *heads).stdout
    assert every.count("] dtls-unanswered:") == flows


def test_min_severity_filters_and_counts_what_it_hides():
    args = captures("dtls-blocked-icmp-ok")
    errors = labkit("analyze", "--min-severity", "error", *args).stdout
    assert "] icmp-frag-needed:" not in errors and "] mtu-mismatch:" in errors
    assert "finding(s) not listed (" in errors and "icmp-frag-needed x1" in errors
    info = labkit("analyze", "--min-severity", "info", *args).stdout
    assert "[info] syn-mss:" in info and "not listed" not in info
    bad = labkit("analyze", "--min-severity", "debug", *args)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_generated_benchmark_capture_fits_one_screen(tmp_path):
    """The benchmark generator's mix (100 k packets here; the 1 M capture is checked by hand,
    see the report) keeps the text to one screen and names every head-end with unanswered
    DTLS."""
    path = tmp_path / "mix.pcap"
    subprocess.run(
        [sys.executable, "-m", "benchmarks.generate", "-o", str(path), "--packets", "100000"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    _, doc = report_json(str(path), "--no-progress")
    heads = {f["server"] for f in doc["findings"] if f["id"] == "dtls-unanswered"}
    assert heads
    text = labkit("analyze", "--no-progress", str(path)).stdout
    assert len(text.splitlines()) <= 60
    for h in heads:
        assert f"{h}:" in text or f"to {h} UDP" in text


def test_readme_first_screen_is_the_reference_case_diagnosis():
    readme = (ROOT / "README.md").read_text()
    shown = readme.split("```text\n", 1)[1].split("```", 1)[0].splitlines()
    assert shown[2].startswith("DIAGNOSIS:") and any(x.startswith("FIXES") for x in shown)
    folder = SCENARIOS / "dtls-blocked-icmp-ok"
    out = labkit("analyze", *sorted(str(p) for p in folder.iterdir())).stdout.splitlines()
    assert out[: len(shown)] == shown


@requires_tshark
def test_decrypted_connect_prints_the_tshark_command_that_shows_it():
    data = ROOT / "tests" / "data"
    pcap, keylog = data / "cstp-tls12.pcap", data / "cstp-tls12.keylog"
    proc = labkit("analyze", str(pcap), "--keylog", str(keylog))
    commands = [x.split("show it: ", 1)[1] for x in proc.stdout.splitlines() if "show it: " in x]
    assert len(commands) == 1 and f"-o tls.keylog_file:{keylog}" in commands[0]
    run = subprocess.run(
        [*shlex.split(commands[0]), "-T", "fields", "-e", "frame.number"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.stdout.split() == ["25"]  # the CONNECT response, as tshark decrypts it
    # The numbers of the decrypted CONNECT give the model's fixes (not-shown: no drop seen).
    _, doc = report_json(str(pcap), "--keylog", str(keylog))
    assert doc["diagnosis"]["status"] == "not-shown"
    assert doc["diagnosis"]["model"] == "labkit mtu --base-mtu 1500 --tcpmss 1380"
    assert [f["id"] for f in doc["fixes"]] == ["anyconnect-mtu", "df-bit-ignore", "tcpmss"]


def test_fragments_rule_out_only_when_seen_on_the_clients_adapter():
    """Any router may fragment a packet; only on the adapter do fragments of the adapter-sized
    packets show the head-end's df-bit-ignore."""
    from dataclasses import replace

    from labkit.analyze.diagnosis import diagnose

    r = analyze(captures("fix-df-bit-ignore"))
    assert r.fragments and diagnose(r.findings, r.files, r.fragments).status == "ruled-out"
    elsewhere = tuple(
        replace(f, capture_point="inside") if f.capture_point == "tunnel" else f for f in r.files
    )
    assert diagnose(r.findings, elsewhere, r.fragments).status == "not-shown"
