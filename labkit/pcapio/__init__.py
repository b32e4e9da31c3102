"""Capture files: the one reader (:mod:`labkit.pcapio.reader`) and the one writer
(:mod:`labkit.pcapio.writer`) of pcap and pcapng, and the format numbers both use.

Every module that opens or writes a capture goes through them: the analyzer, scenario builds,
``--annotate``, craft, replay and the benchmarks' generators. One parser means one set of
rules for hostile files (bounded reads, warnings with byte offsets, gzip); one writer means
one byte layout, so what labkit writes reads back the same everywhere.

Numbers from ``pcap-savefile(5)`` and draft-ietf-opsawg-pcapng (sections 4.1-4.3).
"""

from __future__ import annotations

from typing import Final

#: pcap's magic, as written (little-endian microseconds); the reader knows every variant.
PCAP_MAGIC_US: Final = 0xA1B2C3D4
PCAP_VERSION: Final = (2, 4)
#: pcapng block types.
PCAPNG_SHB: Final = 0x0A0D0D0A
PCAPNG_IDB: Final = 1
PCAPNG_PB: Final = 2  # obsolete Packet Block
PCAPNG_SPB: Final = 3
PCAPNG_EPB: Final = 6
#: A section header's byte-order magic: reads 0x1A2B3C4D in the section's own byte order.
PCAPNG_BOM: Final = 0x1A2B3C4D
#: Option codes: any block's end and comment; the section's writing application; an
#: interface's name, timestamp resolution and offset.
OPT_ENDOFOPT: Final = 0
OPT_COMMENT: Final = 1
SHB_USERAPPL: Final = 4
IF_NAME: Final = 2
IF_TSRESOL: Final = 9
IF_TSOFFSET: Final = 14
#: Wireshark's WTAP_MAX_PACKET_SIZE_STANDARD: the snap length labkit writes, and the largest
#: captured length it reads (a larger one means a corrupt file).
MAX_CAPLEN: Final = 262144
