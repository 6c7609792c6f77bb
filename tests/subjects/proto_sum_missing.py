"""proto_loss sums cluster, separation and contrastive and forgets the diversity term.

Breaks loss.terms-sum alone: each term is still its scale times its unscaled value.
"""

from __future__ import annotations

from typing import Any

from headaudit.reference.head_optimal import HeadOptimal as _Base
from headaudit.reference.head_optimal import OptimalPrototypeLoss


class ForgetfulLoss(OptimalPrototypeLoss):
    def forward(self, similarities, labels, prototypes, proto_indices, valid_mask):  # type: ignore[no-untyped-def, override]
        terms = super().forward(similarities, labels, prototypes, proto_indices, valid_mask)
        terms["proto_loss"] = terms["cluster_loss"] + terms["sep_loss"] + terms["contrastive_loss"]
        return terms


class HeadOptimal(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: Any) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)
        self.proto_loss_fn.__class__ = ForgetfulLoss  # the same loss, settings and all, with the change
