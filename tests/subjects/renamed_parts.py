"""head_optimal.py with three parts renamed, as a user's refactor might:
``mixed_attn.light_attn`` -> ``mixed_attn.third_attn``, the loss key ``sep_loss`` ->
``separation_loss`` and ``expand_prototype`` -> ``add_prototype``.

The contracts that touch them are n/a, naming the missing part and the closest existing
one; with ``--map`` for the three names they pass.
"""

from __future__ import annotations

from typing import Any

from headaudit.reference.head_optimal import DynamicPrototypeManagerOptimal, OptimalPrototypeLoss
from headaudit.reference.head_optimal import HeadOptimal as _Base


class RenamedLoss(OptimalPrototypeLoss):
    def forward(self, similarities, labels, prototypes, proto_indices, valid_mask):  # type: ignore[no-untyped-def, override]
        terms = super().forward(similarities, labels, prototypes, proto_indices, valid_mask)
        return {("separation_loss" if k == "sep_loss" else k): v for k, v in terms.items()}


class RenamedManager(DynamicPrototypeManagerOptimal):
    add_prototype = DynamicPrototypeManagerOptimal.expand_prototype
    expand_prototype = None  # type: ignore[assignment]


class HeadOptimal(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: Any) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)
        block = self.mixed_attn
        block.third_attn = block.light_attn
        del block.light_attn
        block.forward = self._block_forward  # the block's own forward reads light_attn
        old, pm = self.proto_loss_fn, self.proto_manager
        self.proto_loss_fn = RenamedLoss(
            num_classes,
            self.max_prototypes,
            margin=old.margin,
            clst_scale=old.clst_scale,
            sep_scale=old.sep_scale,
            div_scale=old.div_scale,
            contrastive_scale=old.contrastive_scale,
            use_class_balanced=old.use_class_balanced,
            cb_beta=old.cb_beta,
        )
        manager = RenamedManager(num_classes, emb_dim, 1, pm.max_prototypes, pm.momentum)
        manager.load_state_dict(pm.state_dict())
        self.proto_manager = manager

    def _block_forward(self, proto: Any, img: Any) -> Any:
        import torch
        import torch.nn.functional as F

        b = self.mixed_attn
        cross, attn_weights = b.cross_attn(proto, img, img)
        cross_out = b.norm1(proto + b.dropout(cross))
        self_out = b.norm2(cross_out + b.dropout(b.self_attn(cross_out, cross_out, cross_out)[0]))
        third_out = b.norm3(self_out + b.dropout(b.third_attn(self_out, self_out, self_out)[0]))
        w = F.softmax(b.gate(torch.cat([cross_out, self_out, third_out], dim=-1)), dim=-1)
        return w[..., 0:1] * cross_out + w[..., 1:2] * self_out + w[..., 2:3] * third_out, attn_weights
