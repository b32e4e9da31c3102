"""Logs as customers send them: from a pipe, gzip-compressed, the DART bundle .zip, on another
clock; and key logs streamed. Each runs the real ``labkit analyze`` and compares the findings
with those of the plain file."""

from __future__ import annotations

import gzip
import json
import re
import zipfile
from pathlib import Path

import pytest
from scapy.utils import wrpcap

from tests.helpers import synth
from tests.helpers.cli import labkit
from tests.helpers.memory import traced_memory
from tests.helpers.paths import ROOT

DATA = ROOT / "tests" / "data"
SYSLOG, DART = DATA / "asa-seed.log", DATA / "dart-seed.txt"


def run_json(*args: str, stdin: str | None = None) -> tuple[int, dict, str]:
    proc = labkit("analyze", *args, "--format", "json", stdin=stdin)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}, proc.stderr


def essence(doc: dict, path: Path | str) -> list[tuple]:
    """Findings with the log's name taken out: (id, summary, [(line, time)])."""
    return [
        (
            f["id"],
            f["summary"].replace(str(path), "LOG"),
            [(e["frame"], e.get("time")) for e in f["evidence"] if e["file"] == str(path)],
        )
        for f in doc["findings"]
    ]


@pytest.mark.parametrize("flag, log", [("--syslog", SYSLOG), ("--dart", DART)])
def test_a_log_on_a_pipe_reads_like_the_file(flag: str, log: Path) -> None:
    """`--syslog <(ssh asa show logging)`: the reader sought back to 0 and crashed."""
    rc, plain, _ = run_json(flag, str(log))
    rc_pipe, piped, err = run_json(flag, "/dev/stdin", stdin=log.read_text())
    assert (rc_pipe, essence(piped, "/dev/stdin")) == (rc, essence(plain, log)), err
    assert plain["findings"]


@pytest.mark.parametrize("flag, log", [("--syslog", SYSLOG), ("--dart", DART)])
def test_a_gzip_log_reads_like_the_plain_one(flag: str, log: Path, tmp_path: Path) -> None:
    gz = tmp_path / (log.name + ".gz")
    gz.write_bytes(gzip.compress(log.read_bytes()))
    rc, plain, _ = run_json(flag, str(log))
    rc_gz, doc, err = run_json(flag, str(gz))
    assert (rc_gz, essence(doc, gz)) == (rc, essence(plain, log)), err


def test_the_dart_bundle_zip_is_read_as_sent(tmp_path: Path) -> None:
    """The bundle's VPN log is found among its other text files, larger ones included."""
    bundle = tmp_path / "DARTBundle_1116_0130.zip"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("DART/systeminfo.txt", "OS Name: Windows 10\n" * 5000)
        z.writestr("Cisco AnyConnect Secure Mobility Client/AnyConnect.txt", DART.read_bytes())
        z.writestr("DART/routes.log", "0.0.0.0 0.0.0.0 10.0.0.1\n")
    rc, plain, _ = run_json("--dart", str(DART))
    rc_zip, doc, err = run_json("--dart", str(bundle))
    assert (rc_zip, essence(doc, bundle)) == (rc, essence(plain, DART)), err
    (src,) = doc["sources"]
    assert src["summary"].startswith(
        "DART (Cisco AnyConnect Secure Mobility Client/AnyConnect.txt): "
    )


def test_a_zip_without_a_dart_log_and_a_zip_as_syslog_are_one_line(tmp_path: Path) -> None:
    bundle = tmp_path / "photos.zip"
    with zipfile.ZipFile(bundle, "w") as z:
        z.writestr("readme.txt", "nothing here\n")
    proc = labkit("analyze", "--dart", str(bundle))
    assert proc.returncode == 2
    assert proc.stderr == (
        f"labkit analyze: error: {bundle}: a zip with no DART event log among its 1 text file(s)\n"
    )
    proc = labkit("analyze", "--syslog", str(bundle))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"labkit analyze: error: {bundle}: a zip archive, not a text log")
    assert proc.stderr.count("\n") == 1


def test_a_log_years_from_the_capture_names_clock_offset(tmp_path: Path) -> None:
    """The seed's logs are from November 2022, the synthetic capture from November 2023."""
    outside = tmp_path / "outside.pcap"
    wrpcap(str(outside), synth.outside_dtls_blocked())
    _, doc, _ = run_json(str(outside), "--dart", str(DART), "--syslog", str(SYSLOG))
    for src in doc["sources"]:
        (warning,) = [w for w in src["warnings"] if "--clock-offset" in w]
        assert re.match(r"its times lie 36\d\.\d days before the capture's", warning), warning
        assert f"--clock-offset {src['path']}=SECONDS" in warning
    # With the offset the warning suggests, DART's first event is at the capture's start.
    (dart,) = [s for s in doc["sources"] if s["path"] == str(DART)]
    shift = dart["warnings"][-1].split("(")[-1].split()[0]
    _, doc, _ = run_json(str(outside), "--dart", str(DART), "--clock-offset", shift)
    assert not any("--clock-offset" in w for s in doc["sources"] for w in s["warnings"])
    assert not labkit("analyze", str(outside), "--dart", str(DART), "--clock-offset", shift).stderr


def test_a_junk_key_log_is_streamed_not_held(tmp_path: Path) -> None:
    """8 MiB of junk lines: the key log reader held every line (1.7 GB for 63 MiB)."""
    from labkit.analyze.sources import read_keylog

    path = tmp_path / "junk.keylog"
    line = b"CLIENT_RANDOM not-hex at all\n"
    path.write_bytes(line * ((8 << 20) // len(line)))
    with traced_memory() as mem:
        keylog = read_keylog(str(path))
    assert keylog.malformed == (8 << 20) // len(line) and not keylog.secrets
    assert mem.peak < 2 << 20, f"peak {mem.peak >> 20} MiB"


def _busy_asa_log(path: Path, lines: int) -> Path:
    """A busy head-end: 50 users' 722036 lines, 20 a second, as an ASA logs them."""
    with open(path, "w") as f:
        for i in range(lines):
            s, u = i // 20, (i * 7) % 50
            f.write(
                f"Nov 16 2022 {s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}: "
                f"%ASA-6-722036: Group <GP-{u % 5}> User <user{u}> IP <10.0.{u}.2> "
                "Transmitting large packet 1418 (threshold 1347).\n"
            )
    return path


def _held_after_reading(path: Path, lines: int) -> int:
    """Bytes the folded log holds once read; its one size/MTU pair counts every line."""
    from labkit.analyze.sources import read_syslog

    with traced_memory() as mem:
        _report, fold = read_syslog(str(path), year=2022)
    ((pair, folded),) = fold.mismatches.items()
    assert pair == (1418, 1347) and folded.count == lines
    return mem.held


def test_a_busy_syslog_is_folded_not_held(tmp_path: Path) -> None:
    """Each event was an object kept to the end (~570 bytes, later ~160 with shared values:
    the allowed 20 M lines took 3.2 GB). Events are folded as they are read: after 4x the
    lines the fold holds what it held after 1x (50 users, one size/MTU pair)."""
    small = _held_after_reading(_busy_asa_log(tmp_path / "small.log", 25_000), 25_000)
    large = _held_after_reading(_busy_asa_log(tmp_path / "large.log", 100_000), 100_000)
    assert large < small * 1.2 + (64 << 10), (small, large)
    # What is held is the plot's earliest markers and thinned points, at their ceilings.
    assert large < 100_000 * 20, f"{large} bytes held for 100 000 lines"


# --- folded as read: time order and ceilings -------------------------------------------------


def _reconnects(doc: dict) -> list[tuple]:
    return [
        (f["gap_s"], sorted(e["frame"] for e in f["evidence"]))
        for f in doc["findings"]
        if f["id"] == "vpn-reconnect"
    ]


def test_a_relayed_log_a_little_out_of_order_tells_the_same_reconnect(tmp_path: Path) -> None:
    """Reconnects are told as the log is read, in time order: lines a syslog relay delivered
    out of order by seconds give the reconnect the sorted file gives; lines later than the
    reorder window are counted in a warning, not silently misjudged."""
    from labkit.analyze.logfold import REORDER_S

    lines = SYSLOG.read_text().splitlines(keepends=True)
    _, plain, _ = run_json("--syslog", str(SYSLOG))
    assert _reconnects(plain) == [(1.0, [19, 20, 21, 22])]
    shuffled = tmp_path / "relayed.log"
    shuffled.write_text("".join(lines[:18] + lines[18:22][::-1] + lines[22:]))
    _, doc, _ = run_json("--syslog", str(shuffled))
    assert _reconnects(doc) == _reconnects(plain)
    (src,) = doc["sources"]
    assert not any("behind the log's time order" in w for w in src["warnings"])
    # The two closes (01:28:50) arrive after a line REORDER_S + 10 s later: too late.
    later = lines[5].replace("01:27:53", "01:30:00")
    assert REORDER_S < 80
    late = tmp_path / "late.log"
    late.write_text("".join(lines[:18] + lines[20:] + [later] + lines[18:20]))
    _, doc, _ = run_json("--syslog", str(late))
    (src,) = doc["sources"]
    assert "2 tunnel event(s) came more than 60 s behind the log's time order" in " ".join(
        src["warnings"]
    )


def _two_clients(path: Path) -> Path:
    """The seed's reconnect (lines 19-22) for its user and for a second one, and 722036 of
    two size/MTU pairs."""
    lines = SYSLOG.read_text().splitlines(keepends=True)
    other = [x.replace("User <vpn> IP <10.1.75.111>", "User <eve> IP <10.9.9.9>") for x in lines]
    path.write_text(
        "".join(lines[5:6] + [lines[5].replace("1418", "1406")] + lines[18:22] + other[18:22])
    )
    return path


def test_tables_keyed_by_the_log_have_a_ceiling_and_say_what_was_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clients and size/MTU pairs come from the log: past a ceiling, new keys are counted
    and left out, and the source's warnings say how many."""
    from labkit.analyze import logfold
    from labkit.analyze.sources import read_syslog

    path = _two_clients(tmp_path / "two.log")
    report, fold = read_syslog(str(path), year=None)
    assert [r.fields["user"] for r in fold.reconnects()] == ["vpn", "eve"]
    assert sorted(fold.mismatches) == [(1406, 1347), (1418, 1347)]
    assert not report.warnings
    monkeypatch.setattr(logfold, "MAX_CLIENTS", 1)
    monkeypatch.setattr(logfold, "MAX_PAIRS", 1)
    report, fold = read_syslog(str(path), year=None)
    assert [r.fields["user"] for r in fold.reconnects()] == ["vpn"]
    assert list(fold.mismatches) == [(1418, 1347)]
    assert report.warnings == (
        "1 722036/602101 event(s) of packet size/MTU pairs beyond the first 1 left out of the "
        "MTU findings",
        "4 tunnel event(s) of clients beyond the first 1 not checked for reconnects",
    )
