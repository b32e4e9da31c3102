"""Types of the compiled key tally (_tally.c); engine.py_tally is its reference."""

import numpy as np

def tally(keys: np.ndarray, unique: np.ndarray, first: np.ndarray, count: np.ndarray, /) -> int: ...
def largest(
    keys: np.ndarray, values: np.ndarray, unique: np.ndarray, best: np.ndarray, /
) -> int: ...
