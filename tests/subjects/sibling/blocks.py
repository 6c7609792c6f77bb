"""A sibling module the head imports by plain name (``import blocks``)."""

from __future__ import annotations

from headaudit.reference.head_optimal import HeadOptimal

SIBLING_MARK = "sibling"
__all__ = ["SIBLING_MARK", "HeadOptimal"]
