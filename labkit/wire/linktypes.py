"""Capture link types: their numbers, names, and which ones labkit reads through to IP.

tcpdump.org's "Link-layer header types" (pcap-linktype(7)). The analyzer's decode
(:func:`labkit.analyze.decode.locate`) and ``labkit replay`` read frames by these numbers;
``labkit/analyze/_columns.c`` repeats the supported ones as ``LT_*`` macros (C cannot import
Python), and a test holds both to this table.

The five link types labkit writes itself are named in :mod:`labkit.wire` beside the other
wire numbers; the rest are here, read only.
"""

from __future__ import annotations

from typing import Final

from labkit.wire import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_RAW,
)

LINKTYPE_NULL: Final = 0  # BSD loopback: the address family in the host's byte order
LINKTYPE_LOOP: Final = 108  # OpenBSD loopback: the address family in network byte order
#: DLT_RAW as some systems number it in files (libpcap maps both to LINKTYPE_RAW).
DLT_RAW_12: Final = 12
DLT_RAW_14: Final = 14
LINKTYPE_LINUX_SLL2: Final = 276
LINKTYPE_PPP: Final = 9
LINKTYPE_FDDI: Final = 10
LINKTYPE_PPP_HDLC: Final = 50
LINKTYPE_C_HDLC: Final = 104
LINKTYPE_IEEE802_11: Final = 105
LINKTYPE_RADIOTAP: Final = 127
LINKTYPE_ARCNET_LINUX: Final = 129
LINKTYPE_NFLOG: Final = 239
LINKTYPE_USER0: Final = 147  # private use: no dissector claims it

#: Link types whose frames labkit reads through to the IP header.
SUPPORTED_LINKTYPES: Final = frozenset(
    {
        LINKTYPE_NULL,
        LINKTYPE_ETHERNET,
        LINKTYPE_LOOP,
        LINKTYPE_RAW,
        DLT_RAW_12,
        DLT_RAW_14,
        LINKTYPE_IPV4,
        LINKTYPE_IPV6,
        LINKTYPE_LINUX_SLL,
        LINKTYPE_LINUX_SLL2,
        LINKTYPE_FDDI,
        LINKTYPE_PPP,
        LINKTYPE_PPP_HDLC,
        LINKTYPE_C_HDLC,
        LINKTYPE_IEEE802_11,
        LINKTYPE_RADIOTAP,
        LINKTYPE_ARCNET_LINUX,
        LINKTYPE_NFLOG,
    }
)
#: Frames that start with the IP header itself.
RAW_LINKTYPES: Final = frozenset(
    {LINKTYPE_RAW, DLT_RAW_12, DLT_RAW_14, LINKTYPE_IPV4, LINKTYPE_IPV6}
)
_NAMES: Final[dict[int, str]] = {
    0: "NULL",
    1: "ETHERNET",
    6: "IEEE802_5",
    8: "SLIP",
    9: "PPP",
    10: "FDDI",
    12: "RAW (DLT 12)",
    14: "RAW (DLT 14)",
    50: "PPP_HDLC",
    51: "PPP_ETHER",
    101: "RAW",
    104: "C_HDLC",
    105: "IEEE802_11",
    107: "FRELAY",
    108: "LOOP",
    113: "LINUX_SLL",
    119: "IEEE802_11_PRISM",
    127: "IEEE802_11_RADIOTAP",
    147: "USER0",
    187: "BLUETOOTH_HCI_H4",
    189: "USB_LINUX",
    192: "PPI",
    195: "IEEE802_15_4",
    201: "BLUETOOTH_HCI_H4_WITH_PHDR",
    215: "NFLOG",
    220: "USB_LINUX_MMAPPED",
    227: "CAN_SOCKETCAN",
    228: "IPV4",
    229: "IPV6",
    239: "NFLOG",
    249: "USBPCAP",
    252: "WIRESHARK_UPPER_PDU",
    263: "BLUETOOTH_LE_LL",
    276: "LINUX_SLL2",
}


def linktype_name(linktype: int) -> str:
    """``'105 (IEEE802_11)'``: how warnings name a link type."""
    name = _NAMES.get(linktype)
    return f"{linktype} ({name})" if name else str(linktype)
