"""An element-wise gate, as head.py's design intended: ``g * self_out + (1 - g) * third_out``.

Per channel it is a convex mix of two branches (gate.convex must pass); per-token weights do
not exist (gate.sum-to-one must be n/a, not fail).
"""

from __future__ import annotations

import torch
from torch import nn

from headaudit.reference.head_optimal import HeadOptimal as _Base
from headaudit.reference.head_optimal import MixedAttentionBlockOptimal


class ChannelGateBlock(MixedAttentionBlockOptimal):
    def __init__(self, emb_dim: int, num_heads: int, dropout: float = 0.1) -> None:
        super().__init__(emb_dim, num_heads, dropout)
        self.gate = nn.Sequential(nn.Linear(3 * emb_dim, emb_dim), nn.Sigmoid())

    def forward(self, proto: torch.Tensor, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cross, attn_weights = self.cross_attn(proto, img, img)
        cross_out = self.norm1(proto + self.dropout(cross))
        self_out = self.norm2(cross_out + self.dropout(self.self_attn(cross_out, cross_out, cross_out)[0]))
        light_out = self.norm3(self_out + self.dropout(self.light_attn(self_out, self_out, self_out)[0]))
        g = self.gate(torch.cat([cross_out, self_out, light_out], dim=-1))
        return g * self_out + (1 - g) * light_out, attn_weights


class HeadOptimal(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        self.mixed_attn: nn.Module = ChannelGateBlock(emb_dim, num_heads, 0.0)
