"""Lab safety beyond tests/test_lab.py (which covers SIGKILL of ``lab up`` then ``down``, two
labs of different names side by side, and ``replay``'s refusals in test_lab_replay.py):

* Ctrl-C or SIGTERM in the middle of ``lab up``: exit 130 / 143 with one line, and ``lab
  down`` afterwards leaves no namespace, link or state behind;
* two ``lab up`` of the *same* name at once: one builds it, the other is refused in one line,
  and nothing is built twice;
* ``replay`` refuses namespaces that only look like a lab's (the name pattern of a lab that is
  not up, a path) and interfaces in the host namespace; no packet is sent in any of these.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.cli import default_signals, labkit
from tests.helpers.labenv import lab, lab_down, lab_namespaces, requires_lab, unique
from tests.helpers.paths import PUBLIC, ROOT


def _host_lab_links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if " lk-" in line]


def _up(name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "labkit", "lab", "up", "--lab", name],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signals,
    )


@requires_lab
@pytest.mark.parametrize(
    "sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_signal_mid_up_then_down_leaves_nothing(sig, code, word) -> None:
    name = unique("sig" + str(int(sig)))
    proc = _up(name)
    try:
        deadline = time.monotonic() + 30
        while not lab_namespaces(name) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.005)
        assert lab_namespaces(name), "lab up made no namespace"
        proc.send_signal(sig)  # mid-build
        _, err = proc.communicate(timeout=60)
        # what the interrupted up left, before any `down` cleans: nothing, not even its lock
        lock_left = Path("/run/labkit", f"{name}.lock").exists()
        built_left = lab_namespaces(name)
    finally:
        if proc.poll() is None:
            proc.kill()
        lab_down(name)
    assert proc.returncode == code, err
    assert err.strip().splitlines()[-1] == f"labkit lab: {word}", err
    assert "Traceback" not in err
    assert not lock_left and built_left == []
    assert lab_namespaces(name) == [] and _host_lab_links() == []
    assert not Path("/run/labkit", name).exists()


@requires_lab
def test_two_ups_of_the_same_lab_at_once_build_it_once() -> None:
    name = unique("same")
    procs = [_up(name) for _ in range(2)]
    try:
        results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
        codes = sorted(rc for rc, _ in results)
        assert codes == [0, 2], results
        refused = next(err for rc, err in results if rc == 2)
        assert refused.count("\n") == 1 and "another labkit process" in refused, refused
        assert len(lab_namespaces(name)) == 4
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        lab_down(name)
    assert lab_namespaces(name) == []


@pytest.mark.parametrize(
    "netns",
    [
        "lk-notup-server",
        "lk-notup-headend",
        "../../proc/1/ns/net",
        "/var/run/netns/lk-x-client",
        "lk--server",
    ],
)
def test_replay_refuses_namespaces_that_only_look_like_a_lab(netns: str) -> None:
    proc = labkit(
        "replay",
        str(PUBLIC / "tcp-mss-fast-retransmit.pcap"),
        "--iface",
        "lk-h-r",
        "--netns",
        netns,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "not a node of a labkit lab" in proc.stderr
    assert "Sent" not in proc.stdout


@pytest.mark.parametrize("iface", ["lo", "eth0", "lk-h-r", "../lo"])
def test_replay_refuses_host_interfaces(iface: str) -> None:
    proc = labkit("replay", str(PUBLIC / "tcp-mss-fast-retransmit.pcap"), "--iface", iface)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "host's own namespace" in proc.stderr
    assert "Sent" not in proc.stdout


@requires_lab
def test_down_removes_a_lab_whose_state_file_is_unreadable(tmp_path, monkeypatch) -> None:
    """The hint names a command that exists (there is no `lab down --force`) and that command
    does remove the lab: its namespaces by name, the unreadable state, the lock."""
    monkeypatch.setenv("LABKIT_RUN_DIR", str(tmp_path))
    name = unique("bad")
    made = labkit("lab", "up", "--lab", name)
    assert made.returncode == 0, made.stderr
    try:
        (tmp_path / name / "state.json").write_text("{ not json", encoding="utf-8")
        status = labkit("lab", "status", "--lab", name)
        assert status.returncode == 2 and status.stderr.count("\n") == 1, status.stderr
        assert "unreadable lab state" in status.stderr and "--force" not in status.stderr
        assert f"'labkit lab down --lab {name}'" in status.stderr
        down = labkit("lab", "down", "--lab", name)
        assert down.returncode == 0, down.stderr
        assert f"lk-{name}-headend" in down.stdout
    finally:
        if lab_namespaces(name):
            lab_down(name)
    assert lab_namespaces(name) == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("lab_name", ["abc\n", "abc\r", " abc"])
def test_lab_names_with_trailing_or_leading_junk_are_refused(lab_name: str) -> None:
    proc = labkit("lab", "status", "--lab", lab_name)
    assert proc.returncode == 2 and "lab name" in proc.stderr, proc.stderr


@requires_lab
def test_replay_refuses_a_look_alike_of_an_up_labs_namespace() -> None:
    """A regex "$" matches before a trailing newline: "lk-<lab>-server\\n" passed as the lab's own
    namespace while the lab was up. Refused, nothing sent."""
    name = unique("la")
    with lab(name):
        for netns in (f"lk-{name}-server\n", f"lk-{name}-server\n\n", f"lk-{name}-server "):
            proc = labkit(
                "replay",
                str(PUBLIC / "tcp-mss-fast-retransmit.pcap"),
                "--iface",
                "lk-s-h",
                "--netns",
                netns,
            )
            assert proc.returncode == 2 and "not a node of a labkit lab" in proc.stderr, netns
            assert "Successful packets" not in proc.stdout
