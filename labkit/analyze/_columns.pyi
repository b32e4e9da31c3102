"""Types of the compiled column decode and rare-packet summaries (_columns.c); decode.py_columns
and decode.decode are their references."""

from collections.abc import Sequence

import numpy as np

from labkit.analyze.decode import Packet
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
def set_types(
    packet: type,
    tcp: type,
    tls: type,
    dtls: type,
    quote: type,
    icmp: type,
    dtls_versions: Sequence[int],
    max_dtls_records: int,
    /,
) -> None: ...
def summarise(
    buf: Buf | np.ndarray,
    data: np.ndarray,
    caplen: np.ndarray,
    linktype: np.ndarray,
    frame: np.ndarray,
    ts: np.ndarray,
    origlen: np.ndarray,
    l3: np.ndarray,
    ipver: np.ndarray,
    /,
) -> list[Packet]: ...
