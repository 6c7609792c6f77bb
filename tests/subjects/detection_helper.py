"""head_fixed.py's heads beside a ``has_multi_prototype_head`` helper: inverted, and kept.

``Inverted`` (this module's default heads) ships the helper with its condition inverted,
the single change a refactor makes when it flips a guard: the wrapper still detects the
heads, so only the file's own helper is wrong, and ``trainer.detect`` must fail naming it.
``detection_helper_kept`` is the must-pass twin (the same heads, the helper as written).
"""

from __future__ import annotations

from torch import nn

from headaudit.reference.head_fixed import Head, HeadOptimal

__all__ = ["Head", "HeadOptimal", "has_multi_prototype_head"]


def has_multi_prototype_head(model: nn.Module) -> bool:
    """Inverted: false for these heads, true for a plain one."""
    head = getattr(model, "head", None)
    return not (isinstance(head, (HeadOptimal, Head)) or hasattr(head, "proto_manager"))
