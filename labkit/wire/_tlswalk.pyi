"""Types of the compiled TLS record walk (_tlswalk.c); tlswalk.py_records is its reference."""

import numpy as np

def records(
    head: bytes,
    buf: np.ndarray,
    offs: np.ndarray,
    lens: np.ndarray,
    pos: int,
    rec: np.ndarray,
    blocks: np.ndarray,
    cuts: np.ndarray,
    row: int,
    /,
) -> tuple[int, int, int]: ...
def cbc_peek(
    clear: bytes,
    masks: np.ndarray,
    cipher: np.ndarray,
    mac: int,
    plain: np.ndarray,
    length: np.ndarray,
    /,
) -> None: ...
def cstp_heads(
    plain: np.ndarray,
    length: np.ndarray,
    ctype: np.ndarray,
    magic: int,
    content_type: int,
    header: int,
    size: np.ndarray,
    ptype: np.ndarray,
    count: np.ndarray,
    first: np.ndarray,
    /,
) -> int: ...
