"""head_optimal.py's head beside a ``has_multi_prototype_head`` that ends the process with ``os._exit(7)``.

Only ``trainer.detect`` calls the file's helper, so with ``--jobs 2`` only that pair may
be ``error`` (its worker ended), and every other check measures the head as usual.
``os._exit`` cannot be caught: in a serial run it would end the audit itself.
"""

from __future__ import annotations

import os

from torch import nn

from headaudit.reference.head_optimal import HeadOptimal

__all__ = ["HeadOptimal", "has_multi_prototype_head"]


def has_multi_prototype_head(model: nn.Module) -> bool:
    """Leaves the interpreter at once, skipping every handler."""
    os._exit(7)
