"""A head that takes the first token of a 3-D global feature instead of its mean.

``(B, 1, D)`` still equals ``(B, D)``, but ``(B, T, D)`` does not give the logits of its
mean: ``shapes.global-3d`` must fail on the second comparison.
"""

from __future__ import annotations

import torch

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def forward_features(self, pool_img_features: torch.Tensor, img_features: torch.Tensor):  # type: ignore[no-untyped-def, override]
        if img_features.dim() == 3:
            img_features = img_features[:, 0]
        return super().forward_features(pool_img_features, img_features)
