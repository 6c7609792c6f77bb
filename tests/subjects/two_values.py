"""A user copy whose head returns ``(logits, loss)`` in every mode, like head.py's ``Head``.

The head class is renamed (``PrototypeHead``), the file defines neither ``HeadOptimal`` nor
``Head``, and the loss breakdown stays inside the head: the host as quoted never raises
with it, so ``host.loss-dict`` must pass (the breakdown lost by the head, named), while the
report's suggested fix, which unpacks three values in training, raises.
"""

from __future__ import annotations

import torch

from headaudit.reference.head_optimal import HeadOptimal as _Base


class PrototypeHead(_Base):
    def forward(self, pool_img_features: torch.Tensor, img_features: torch.Tensor, labels=None):  # type: ignore[no-untyped-def, override]
        logits, loss, _ = super().forward(pool_img_features, img_features, labels)
        return logits, loss


del _Base  # only the renamed class is left at module level
