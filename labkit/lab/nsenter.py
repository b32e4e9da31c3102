"""Enter a lab node's network namespace from inside this process (``setns(2)``).

Probes and replay open their sockets inside a lab node: after :func:`inside`, every socket
the thread creates belongs to that namespace and keeps belonging to it after the thread
returns to the host's namespace. Python 3.12 has ``os.setns``; 3.10/3.11 reach libc's
``setns`` through ctypes. Only the network namespace changes; the file system stays.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
from collections.abc import Iterator

from labkit.lab.netops import NETNS_DIR, LabError

CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    if hasattr(os, "setns"):
        os.setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def inside(netns: str) -> Iterator[None]:
    """Run the ``with`` body in network namespace ``netns`` (a name under /run/netns)."""
    path = NETNS_DIR / netns
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise LabError(
            f"network namespace {netns!r} does not exist",
            hint="is the lab up? see 'labkit lab status'",
        ) from None
    except PermissionError:
        raise LabError(f"cannot open {path}: entering a namespace needs root") from None
    home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            _setns(target)
        except OSError as exc:
            raise LabError(
                f"cannot enter network namespace {netns!r}: {exc.strerror}",
                hint="entering a namespace needs root",
            ) from None
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)
