"""Scapy layers for the protocols of an AnyConnect tunnel: CSTP, AnyConnect DTLS, DTLS.

Importing this package registers the layers with Scapy (UDP 443 <-> ``DTLSRecord``, TCP 443
<-> ``CSTP`` when the payload starts with the CSTP magic), as
``load_contrib`` does for Scapy's own contrib modules. It imports Scapy (about a second):
keep it out of the analyzer's per-packet path (STYLE.md rule 6).
"""

from labkit.layers.cstp import CSTP, CSTP_PORT, AnyConnectDTLS
from labkit.layers.dtls import (
    DTLS_PORT,
    DTLSAlert,
    DTLSChangeCipherSpec,
    DTLSClientHello,
    DTLSHandshake,
    DTLSHelloVerifyRequest,
    DTLSRecord,
    DTLSServerHello,
)

__all__ = [
    "CSTP",
    "CSTP_PORT",
    "DTLS_PORT",
    "AnyConnectDTLS",
    "DTLSAlert",
    "DTLSChangeCipherSpec",
    "DTLSClientHello",
    "DTLSHandshake",
    "DTLSHelloVerifyRequest",
    "DTLSRecord",
    "DTLSServerHello",
]
