"""``--jobs N``: the files of one case scanned in parallel processes.

Scanning is the expensive part and each file's is independent, so each file goes to a worker
process (:func:`labkit.analyze.scan_file`) and its report and facts come back pickled; the
parent then joins the case as for one process. Workers publish how far they are in a shared
array (file bytes consumed, packets) that the parent turns into one progress line. Memory is
per worker: N workers hold up to N files' flow tables at once.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing as mp
from collections.abc import MutableSequence

from labkit.analyze import Collect, Scanned, scan_file
from labkit.analyze.progress import Progress

POLL_S = 0.1

# In a worker: the parent's (bytes, packets) slots, two per file (a shared ctypes array).
_shared: MutableSequence[int] | None = None


def _init_worker(shared: MutableSequence[int]) -> None:
    global _shared
    _shared = shared


def _scan(
    index: int, label: str, collect: Collect, tunnel_mtu: int | None, max_flows: int | None
) -> Scanned:
    shared = _shared
    if shared is None:
        return scan_file(label, None, collect, tunnel_mtu, max_flows=max_flows)

    def on_chunk(position: int, packets: int) -> None:
        shared[2 * index] = position
        shared[2 * index + 1] = packets

    return scan_file(label, on_chunk, collect, tunnel_mtu, max_flows=max_flows)


def scan_files(
    labels: list[str],
    jobs: int,
    progress: Progress | None,
    collect: Collect,
    tunnel_mtu: int | None,
    max_flows: int | None = None,
) -> list[Scanned]:
    """:func:`~labkit.analyze.scan_file` for every label, ``jobs`` at a time, in label order."""
    shared = mp.Array("q", 2 * len(labels), lock=False)
    pool = cf.ProcessPoolExecutor(
        max_workers=min(jobs, len(labels)), initializer=_init_worker, initargs=(shared,)
    )
    try:
        futures = [
            pool.submit(_scan, i, label, collect, tunnel_mtu, max_flows)
            for i, label in enumerate(labels)
        ]
        pending: set[cf.Future] = set(futures)
        while pending:
            _, pending = cf.wait(pending, timeout=POLL_S)
            if progress is not None:
                progress.update(sum(shared[0::2]), sum(shared[1::2]), len(futures) - len(pending))
        results = [f.result() for f in futures]
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown()
    return results


def _stop(pool: cf.ProcessPoolExecutor) -> None:
    """End the workers now: Ctrl-C or SIGTERM reached the parent (or a file failed), and
    leaving the pool's ``with`` would wait for every worker to finish its file (35 s on a
    large one) before the parent could exit. Workers only read, so killing them loses
    nothing. The executor has no public way to do this before Python 3.14's
    ``terminate_workers``."""
    for proc in list((pool._processes or {}).values()):  # noqa: SLF001
        with contextlib.suppress(OSError):
            proc.kill()
    pool.shutdown(wait=False, cancel_futures=True)
