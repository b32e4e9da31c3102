"""``--html``: the self-contained report, opened in a real headless browser (Debian's chromium).

The browser runs the page's script (the findings filter) and the test reads the DOM it built:
the diagnosis, the fixes, the timeline picture with its MTU lines, and the rows the filter in
the URL fragment leaves. The browser runs with networking off: the page needs none.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.helpers.cli import labkit
from tests.helpers.paths import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
requires_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="chromium is not installed (CI installs Debian's chromium with apt)",
)
CASE = ROOT / "pcaps" / "scenarios" / "dtls-blocked-icmp-ok"


def dump_dom(page: Path, fragment: str = "") -> str:
    """The DOM after the page's scripts ran, as headless Chromium serialises it."""
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--dump-dom",
                page.as_uri() + fragment,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def case_report(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("html") / "case.html"
    files = sorted(str(p) for p in CASE.iterdir())
    proc = labkit("analyze", *files, "--html", str(out))
    assert proc.returncode == 1, proc.stderr
    assert f"wrote {out}" in proc.stderr
    doc = json.loads(labkit("analyze", *files, "--format", "json").stdout)
    return out, doc


def test_html_is_self_contained(case_report):
    page, _ = case_report
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>")
    # Nothing to fetch: no external script, style, image or font.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    assert "<link" not in text and "@import" not in text and "url(" not in text


@requires_chromium
def test_html_renders_in_chromium_with_diagnosis_fixes_picture_and_filters(case_report):
    page, doc = case_report
    dom = dump_dom(page)
    assert 'id="diagnosis" data-status="confirmed"' in dom
    for step in doc["diagnosis"]["steps"]:
        assert step["text"].replace(">", "&gt;") in dom
    assert "anyconnect mtu 1300" in dom and "sysopt connection tcpmss 1460" in dom
    # The picture: packet series and the MTU lines the findings name.
    svg = dom[dom.index('<svg id="timeline"') : dom.index("</svg>")]
    assert svg.count('class="series"') >= 3
    assert 'data-mtu="1347"' in svg and 'data-mtu="1418"' in svg
    assert 'class="event"' in svg
    n = len(doc["findings"])
    assert f"{n} of {n} findings shown" in dom  # the script ran over every row
    errors = sum(f["severity"] == "error" for f in doc["findings"])
    filtered = dump_dom(page, "#severity=error")
    assert f"{errors} of {n} findings shown" in filtered and 0 < errors < n
    rows = re.findall(r'<tr data-severity="(\w+)"[^>]*?( hidden="")?>', filtered)
    assert {sev for sev, hidden in rows if not hidden} == {"error"}
    searched = dump_dom(page, "#q=icmp-frag-needed")
    hits = sum("icmp-frag-needed" in (f["id"] + f["summary"]).lower() for f in doc["findings"])
    assert f"{hits} of {n} findings shown" in searched and hits >= 1


@pytest.mark.parametrize(
    "flag, name",
    [("--html", "case.png"), ("--html", "case"), ("--plot", "case.html")],
)
def test_output_extension_must_match_the_format(tmp_path, flag, name):
    proc = labkit("analyze", str(CASE / "outside.pcapng"), flag, str(tmp_path / name))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "does not end in" in proc.stderr
    assert not (tmp_path / name).exists()
