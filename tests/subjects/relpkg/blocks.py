"""The package's building blocks."""

from __future__ import annotations

from headaudit.reference.head_optimal import HeadOptimal

PACKAGE_MARK = "relpkg"
__all__ = ["PACKAGE_MARK", "HeadOptimal"]
