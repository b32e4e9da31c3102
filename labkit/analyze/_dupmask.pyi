"""Types of the compiled duplicate-frame mask (_dupmask.c); duplicates.py_marks is its
reference."""

import numpy as np

from labkit.pcapio.walk import Buf

def marks(
    buf: Buf | np.ndarray,
    win: np.ndarray,
    data: np.ndarray,
    caplen: np.ndarray,
    ts: np.ndarray,
    tail: tuple[bytes, ...],
    tail_ts: np.ndarray,
    window: int,
    max_gap: float,
    dup: np.ndarray,
    back: np.ndarray,
    /,
) -> int: ...
