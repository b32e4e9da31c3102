"""Helpers the tests import (fixtures stay in ``tests/conftest.py``).

``paths``: where the checkout and its test data are. ``cli``: run labkit as a user would.
``tshark``: the independent judge. ``findings``: tshark checks of a report's filters.
``capfiles``: capture files written byte by byte, independently of labkit's reader.
``synth``: synthetic failure captures built with Scapy. ``labenv``: the lab tests' environment.
"""
