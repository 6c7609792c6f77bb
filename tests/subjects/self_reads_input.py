"""The self-attention branch attends over the block's input (the prototype queries), not cross_out.

Breaks attn.wiring alone: the output is still a softmax-gated mix of three branches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from headaudit.reference.head_optimal import HeadOptimal as _Base
from headaudit.reference.head_optimal import MixedAttentionBlockOptimal


class MiswiredBlock(MixedAttentionBlockOptimal):
    def forward(self, proto: torch.Tensor, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cross, attn_weights = self.cross_attn(proto, img, img)
        cross_out = self.norm1(proto + self.dropout(cross))
        self_att, _ = self.self_attn(proto, proto, proto)
        self_out = self.norm2(cross_out + self.dropout(self_att))
        light, _ = self.light_attn(self_out, self_out, self_out)
        light_out = self.norm3(self_out + self.dropout(light))
        w = F.softmax(self.gate(torch.cat([cross_out, self_out, light_out], dim=-1)), dim=-1)
        return w[..., 0:1] * cross_out + w[..., 1:2] * self_out + w[..., 2:3] * light_out, attn_weights


class HeadOptimal(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        self.mixed_attn: nn.Module = MiswiredBlock(emb_dim, num_heads, 0.0)
