"""A file whose compatibility ``Head`` forgot eval: it returns the parent's three values there.

In training it returns ``(logits, loss)`` like head.py, in eval ``(logits, 0, {})``:
``compat.forward`` must fail.
"""

from __future__ import annotations

import torch

from headaudit.reference.head_optimal import Head as _Compat
from headaudit.reference.head_optimal import HeadOptimal


class Head(_Compat):
    def forward(self, pool_img_features: torch.Tensor, img_features: torch.Tensor, labels=None):  # type: ignore[no-untyped-def, override]
        if self.training:
            return super().forward(pool_img_features, img_features, labels)
        return HeadOptimal.forward(self, pool_img_features, img_features, labels)
