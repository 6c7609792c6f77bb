"""A head that clamps its labels into range instead of refusing them.

A label equal to ``num_classes`` becomes the last class and the loss is finite, as if
nothing were wrong: ``shapes.bad-input`` must fail (a wrong input accepted silently).
"""

from __future__ import annotations

import torch

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def forward(self, pool_img_features: torch.Tensor, img_features: torch.Tensor, labels=None):  # type: ignore[no-untyped-def, override]
        if labels is not None:
            labels = labels.clamp(0, self.num_classes - 1)
        return super().forward(pool_img_features, img_features, labels)
