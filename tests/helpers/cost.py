"""Cost growth without a clock budget: the same code timed on a small and a larger input.

A test never asserts seconds (a loaded CI machine would fail it, a fast one would hide a
regression); it asserts how CPU time grows with the input. Linear code costs k times as much
on an input k times larger, quadratic code k squared times: the ratio of the two per-byte
costs tells them apart on any machine.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


def cpu_seconds(run: Callable[[], object], tries: int = 3) -> float:
    """Least CPU time of ``tries`` runs, the garbage collector paused (a collection of the
    whole heap lands on whichever run is going and would be noise, not cost)."""
    best = float("inf")
    for _ in range(tries):
        gc.disable()
        try:
            t0 = time.process_time()
            run()
            best = min(best, time.process_time() - t0)
        finally:
            gc.enable()
    return best


def per_byte_growth(run: Callable[[int], object], small: int, factor: int) -> float:
    """How much more each byte costs at ``small * factor`` bytes than at ``small``:
    ``run(n)`` processes an input of ``n`` bytes. About 1 for linear code, ``factor`` for
    quadratic code."""
    t_small = cpu_seconds(lambda: run(small))
    t_large = cpu_seconds(lambda: run(small * factor))
    return (t_large / (small * factor)) / (t_small / small) if t_small > 0 else 0.0
