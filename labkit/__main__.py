"""``python -m labkit`` is the same entry point as the ``labkit`` console script."""

import sys

from labkit.cli import main

sys.exit(main())
