"""A head whose third attention has ``num_heads // 2`` heads, with no ``max(1, ...)``.

One attention head makes that zero and the constructor raises ZeroDivisionError; with two
or more it is a correct head. Checks must pick a head count that builds, not report `fail`.
"""

from __future__ import annotations

from torch import nn

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        self.mixed_attn.light_attn = nn.MultiheadAttention(emb_dim, num_heads // 2, batch_first=True)
