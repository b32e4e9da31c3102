"""What a lab made, kept on disk so ``down`` can remove it even after its creator was killed.

``up`` writes the state *before* it creates anything (the namespaces it is about to make,
then each process it starts), so a SIGKILL at any point leaves a record that ``down``
reads. The state lives in ``/run/labkit/<lab>/`` (tmpfs: gone after a reboot, as the
namespaces are); ``LABKIT_RUN_DIR`` moves it.

One lock file per lab name serialises ``up``/``down`` of that lab: a second ``up`` of the
same name fails at once with one line instead of fighting over the same namespaces.
Different lab names share nothing (their namespaces have different names).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from labkit.fileio import atomic_output
from labkit.lab.netops import LabError
from labkit.lab.topology import NODES, Topology, netns_name

STATE_FILE = "state.json"


class UnreadableState(LabError):
    """The state file exists but cannot be read: ``down`` falls back to the namespace names."""


def run_dir() -> Path:
    return Path(os.environ.get("LABKIT_RUN_DIR", "/run/labkit"))


def lab_dir(lab: str) -> Path:
    return run_dir() / lab


@dataclass(frozen=True, slots=True)
class Process:
    """A process the lab started: ``down`` ends it only if its command line still matches."""

    role: str  # "ocserv", "openconnect"
    pid: int
    netns: str
    exe: str  # basename of the program, checked against /proc/PID/cmdline before a kill


@dataclass(frozen=True, slots=True)
class LabState:
    lab: str
    topology: Topology
    namespaces: tuple[str, ...]
    processes: tuple[Process, ...] = ()
    info: dict[str, object] = field(default_factory=dict)  # what the head-end told (MTUs...)
    complete: bool = False  # up finished

    @classmethod
    def planned(cls, lab: str, topo: Topology) -> LabState:
        return cls(lab, topo, tuple(netns_name(lab, n) for n in NODES))

    def netns(self, node: str) -> str:
        return netns_name(self.lab, node)

    def with_process(self, proc: Process) -> LabState:
        return replace(self, processes=(*self.processes, proc))

    def to_json(self) -> dict[str, object]:
        return {
            "lab": self.lab,
            "topology": self.topology.to_json(),
            "namespaces": list(self.namespaces),
            "processes": [
                {"role": p.role, "pid": p.pid, "netns": p.netns, "exe": p.exe}
                for p in self.processes
            ],
            "info": self.info,
            "complete": self.complete,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabState:
        # Any: the parsed JSON of a state file this module wrote itself (to_json above).
        procs = tuple(Process(**p) for p in data.get("processes", []))
        return cls(
            str(data["lab"]),
            Topology.from_json(data["topology"]),
            tuple(data["namespaces"]),
            procs,
            dict(data.get("info", {})),
            bool(data.get("complete", False)),
        )


def save(state: LabState) -> None:
    folder = lab_dir(state.lab)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_output(folder / STATE_FILE, force=True) as tmp:
        tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n", encoding="utf-8")


def load(lab: str) -> LabState | None:
    path = lab_dir(lab) / STATE_FILE
    try:
        return LabState.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UnreadableState(
            f"{path}: unreadable lab state ({exc})",
            hint=f"'labkit lab down --lab {lab}' removes it and the lab's namespaces",
        ) from None


def forget(lab: str) -> None:
    folder = lab_dir(lab)
    if folder.is_dir():
        for p in sorted(folder.rglob("*"), reverse=True):
            p.unlink() if not p.is_dir() else p.rmdir()
        folder.rmdir()


@contextlib.contextmanager
def locked(lab: str) -> Iterator[None]:
    """Hold the lab's lock, or fail at once if another labkit process holds it.

    When the lab has no state left at release (``down``, a failed ``up``), the lock file goes
    too: nothing of the lab stays behind.
    """
    run_dir().mkdir(parents=True, exist_ok=True)
    lock_path = run_dir() / f"{lab}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabError(
                f"lab {lab!r} is being changed by another labkit process",
                hint="wait for it, or use another --lab name",
            ) from None
        try:
            yield
        finally:
            # Also when the body raised (Ctrl-C or SIGTERM mid-up, after its teardown): the
            # lock file is ours to remove as long as we hold it.
            if not lab_dir(lab).exists():
                with contextlib.suppress(OSError):
                    lock_path.unlink()
    finally:
        os.close(fd)
