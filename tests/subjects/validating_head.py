"""A head that checks its inputs and its configuration and says what is wrong.

``num_prototypes < 1`` is refused by the constructor; 2-D patch features, mismatched batch
sizes, labels out of range and non-finite features are refused by ``forward`` with a
message naming the argument: ``shapes.bad-input`` and ``edges.zero-prototypes`` must pass.
"""

from __future__ import annotations

import torch

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        count = kwargs.get("num_prototypes", 5)
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"num_prototypes must be at least 1, got {count!r}")
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]

    def forward(self, pool_img_features: torch.Tensor, img_features: torch.Tensor, labels=None):  # type: ignore[no-untyped-def, override]
        if pool_img_features.dim() != 3:
            raise ValueError(f"pool_img_features must be (B, N, D), got shape {tuple(pool_img_features.shape)}")
        if img_features.shape[0] != pool_img_features.shape[0]:
            raise ValueError(
                f"img_features has batch size {img_features.shape[0]}, pool_img_features {pool_img_features.shape[0]}"
            )
        if not torch.isfinite(img_features).all():
            raise ValueError("img_features contain NaN or infinite values")
        if labels is not None and ((labels < 0) | (labels >= self.num_classes)).any():
            raise ValueError(f"labels must lie in [0, {self.num_classes}), got {labels.tolist()}")
        return super().forward(pool_img_features, img_features, labels)
