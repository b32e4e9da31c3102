"""The network-namespace lab: four nodes (client, router, head-end, server) on one Linux box.

``topology`` (the knobs and their YAML file), ``netops`` (``ip``/``nft``/``ethtool``),
``state`` (what was made, on disk, for teardown after a crash), ``manager`` (up/status/down),
``vpn`` (ocserv and openconnect), ``capture`` (tcpdump), ``nsenter`` (setns for probes and
replay), ``traffic`` and ``record`` (the real captures under pcaps/real), ``probe`` (path MTU,
MSS clamping and DTLS answer probes) and ``replay`` (a capture's packets sent into a lab
interface).
"""
