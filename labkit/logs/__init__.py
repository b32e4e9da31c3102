"""Log parsers that feed the same findings as captures: ASA syslog and the AnyConnect DART log.

Both are sans-IO: lines or text in, frozen typed events out; a line they cannot read is counted
and reported, never fatal (STYLE.md rule 5).
"""
