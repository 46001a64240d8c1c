"""The PyInstaller entry point of the ``grid-supervisor`` binary: the same ``main`` as the
``grid-supervisor`` console script (``cli.main:main``)."""

from __future__ import annotations

import sys

from cli.main import main

if __name__ == "__main__":
    sys.exit(main())
