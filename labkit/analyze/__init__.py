"""The analyzer: capture files -> findings, fast enough for multi-GB customer captures.

Data flows one way (DESIGN.md section 4): :mod:`~labkit.analyze.reader` (bytes -> record
columns) -> :mod:`~labkit.analyze.decode` (columns and, for the rare packets that decide
verdicts, struct-decoded summaries) -> detectors (per-flow state, never per-packet lists) ->
findings -> :mod:`~labkit.analyze.render`. Scapy is never imported on this path.
"""
