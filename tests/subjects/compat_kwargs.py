"""A compatibility subclass that fixes max_prototypes itself and forwards **kwargs.

``Head(..., max_prototypes=...)`` raises TypeError (multiple values); every other keyword,
``momentum`` and ``margin`` included, reaches the parent. The audit must drop exactly
``max_prototypes`` and keep the rest.
"""

from __future__ import annotations

from typing import Any

from headaudit.reference.head_optimal import HeadOptimal


class Head(HeadOptimal):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: Any) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, max_prototypes=3, **kwargs)
