"""head_optimal.py kept in float64: every parameter and buffer double, inputs cast on entry.

The audit feeds float32 features; a check that compared its own float32 arithmetic
against this head's float64 results at float64's tolerance, or fed float32 straight into
its layers, would blame the head. shapes.global-3d, forward.similarity and ema.isolation
must pass (as on head_optimal.py).
"""

from __future__ import annotations

import torch

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        self.double()

    def forward_features(self, pool_img_features: torch.Tensor, img_features: torch.Tensor):  # type: ignore[no-untyped-def, override]
        return super().forward_features(pool_img_features.double(), img_features.double())
