"""Fixtures shared by the tests. Helpers they import live in the ``tests.helpers`` package."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.paths import PUBLIC


@pytest.fixture(scope="session")
def public_captures() -> Path:
    return PUBLIC
