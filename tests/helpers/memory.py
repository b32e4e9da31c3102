"""What a block of Python allocates: the memory tests' one tracemalloc block."""

from __future__ import annotations

import contextlib
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class Traced:
    """Python allocations of a block (tracemalloc): ``held`` at its end, ``peak`` during it."""

    held: int = 0
    peak: int = 0


@contextlib.contextmanager
def traced_memory() -> Iterator[Traced]:
    """``with traced_memory() as mem: ...``, then ``mem.peak``: what the block allocated in
    Python (numpy's and the reader's anonymous mappings are not traced)."""
    mem = Traced()
    tracemalloc.start()
    try:
        yield mem
    finally:
        mem.held, mem.peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
