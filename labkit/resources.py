"""Where labkit's bundled data lives, in a checkout and in an installed copy.

In a checkout (or an editable install) ``configs/`` sits next to the ``labkit`` package. A
regular ``pip install .`` copies it to ``<prefix>/share/labkit/configs`` (the
``[tool.setuptools.data-files]`` table of ``pyproject.toml``); ``pip install --user`` to the
same path under the user base. The first of these that exists wins.
"""

from __future__ import annotations

import site
import sys
from pathlib import Path

from labkit.errors import InputError


def config_candidates() -> list[Path]:
    """Where labkit looks for ``configs/``, in order."""
    package_parent = Path(__file__).resolve().parent.parent
    found = []
    # A checkout: configs/ beside the package *and* the project file, so a stray top-level
    # "configs" folder in site-packages is never taken for ours.
    if (package_parent / "pyproject.toml").is_file():
        found.append(package_parent / "configs")
    found.append(Path(sys.prefix) / "share" / "labkit" / "configs")
    found.append(Path(site.getuserbase()) / "share" / "labkit" / "configs")
    return found


def configs_dir() -> Path:
    """The ``configs`` folder with the shipped scenarios, lab topologies and ASA configs."""
    candidates = config_candidates()
    for path in candidates:
        if path.is_dir():
            return path
    raise InputError(
        "labkit's bundled configs are missing (looked in "
        + ", ".join(str(p) for p in candidates)
        + ")",
        hint="reinstall labkit with 'pip install .' from its checkout",
    )


def scenarios_dir() -> Path:
    return configs_dir() / "scenarios"
