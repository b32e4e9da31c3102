"""Where the checkout and the tests' data are: everything the tests read is inside the repo."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Third-party captures, copied into the repository (provenance and licences in SOURCES.md).
PUBLIC = ROOT / "tests" / "data" / "public"
