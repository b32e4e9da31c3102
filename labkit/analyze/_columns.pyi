"""Types of the compiled column decode (_columns.c); decode.py_columns is its reference."""

import numpy as np

from labkit.pcapio.walk import Buf

def columns(
    buf: Buf | np.ndarray,
    win: np.ndarray,
    data: np.ndarray,
    caplen: np.ndarray,
    linktype: np.ndarray,
    out: np.ndarray,
    /,
) -> int: ...
