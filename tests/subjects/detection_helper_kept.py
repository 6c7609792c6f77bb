"""The must-pass twin of ``detection_helper.py``: head_fixed.py's heads and its helper as written."""

from __future__ import annotations

from headaudit.reference.head_fixed import Head, HeadOptimal, has_multi_prototype_head

__all__ = ["Head", "HeadOptimal", "has_multi_prototype_head"]
