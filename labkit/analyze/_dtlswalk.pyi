"""Types of the compiled DTLS handshake pass (_dtlswalk.c); DtlsDetector._handshakes is its
reference."""

from typing import Any

import numpy as np

def walk(
    pkts: list[Any],
    per: tuple[np.ndarray, ...],
    src_a: np.ndarray,
    dst_a: np.ndarray,
    cols: tuple[np.ndarray, ...],
    n: int,
    sides: tuple[Any, ...],
    limits: tuple[int, float, int],
    /,
) -> tuple[int, int, int]: ...
