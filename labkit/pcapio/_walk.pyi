"""Types of the compiled record walk (_walk.c); walk.py_pcap and py_pcapng are its reference,
reader.py_rows_at the reference of gather."""

import numpy as np

from labkit.pcapio.walk import Buf

def pcap(
    buf: Buf, out: np.ndarray, pos: int, have: int, rec_len: int, swapped: bool, /
) -> tuple[int, int]: ...
def pcapng(buf: Buf, out: np.ndarray, pos: int, have: int, swapped: bool, /) -> tuple[int, int]: ...
def gather(buf: np.ndarray, offsets: np.ndarray, width: int, out: np.ndarray, /) -> None: ...
