"""``python -m headaudit``: the same as the ``headaudit`` console script."""

from __future__ import annotations

import sys

from headaudit.cli import main

if __name__ == "__main__":
    sys.exit(main())
