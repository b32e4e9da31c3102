"""labkit: predict, craft, replay and analyze the AnyConnect DTLS-vs-TLS MTU mismatch.

The MTU arithmetic lives in :mod:`labkit.mtu`; every other module imports it.
"""

__version__ = "0.1.0"
