"""A three-branch fusion whose weights are independent sigmoids: in the span, not summing to 1."""

from __future__ import annotations

import torch
from torch import nn

from headaudit.reference.head_optimal import HeadOptimal as _Base
from headaudit.reference.head_optimal import MixedAttentionBlockOptimal


class SigmoidFusionBlock(MixedAttentionBlockOptimal):
    def forward(self, proto: torch.Tensor, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cross, attn_weights = self.cross_attn(proto, img, img)
        cross_out = self.norm1(proto + self.dropout(cross))
        self_out = self.norm2(cross_out + self.dropout(self.self_attn(cross_out, cross_out, cross_out)[0]))
        light_out = self.norm3(self_out + self.dropout(self.light_attn(self_out, self_out, self_out)[0]))
        w = torch.sigmoid(self.gate(torch.cat([cross_out, self_out, light_out], dim=-1)))
        return w[..., 0:1] * cross_out + w[..., 1:2] * self_out + w[..., 2:3] * light_out, attn_weights


class HeadOptimal(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        self.mixed_attn: nn.Module = SigmoidFusionBlock(emb_dim, num_heads, 0.0)
