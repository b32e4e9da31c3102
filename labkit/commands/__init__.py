"""One module per ``labkit`` command (``add_arguments`` and ``run``), and the options they share.

An option several commands take is defined once here, so its name, choices and help read the
same in every ``--help``.
"""

from __future__ import annotations

import argparse


def add_format_option(p: argparse.ArgumentParser, what: str = "the result") -> None:
    """``--format text|json``: the contract scripts rely on (one JSON document on stdout)."""
    p.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help=f"text: {what} for a person; json: one JSON document on stdout for scripts "
        "(default %(default)s)",
    )
