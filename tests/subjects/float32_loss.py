"""head_optimal.py with every loss term computed in float32, whatever dtype comes in.

The float32 twin of a must-pass subject: it is correct, so it must pass every check the
float64 computation passes; only rounding differs, and tolerances must allow for it.
"""

from __future__ import annotations

from headaudit.reference.head_optimal import HeadOptimal as _Base
from headaudit.reference.head_optimal import OptimalPrototypeLoss


class Float32Loss(OptimalPrototypeLoss):
    def compute_contrastive_loss(self, prototypes, valid_mask, proto_indices):  # type: ignore[no-untyped-def, override]
        return super().compute_contrastive_loss(prototypes.float(), valid_mask, proto_indices)

    def compute_diversity_loss(self, prototypes, proto_indices):  # type: ignore[no-untyped-def, override]
        return super().compute_diversity_loss(prototypes.float(), proto_indices)

    def forward(self, similarities, labels, prototypes, proto_indices, valid_mask):  # type: ignore[no-untyped-def, override]
        return super().forward(similarities.float(), labels, prototypes.float(), proto_indices, valid_mask)


class HeadOptimal(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        old = self.proto_loss_fn
        self.proto_loss_fn = Float32Loss(
            num_classes,
            self.max_prototypes,
            margin=old.margin,
            clst_scale=old.clst_scale,
            sep_scale=old.sep_scale,
            div_scale=old.div_scale,
            contrastive_scale=old.contrastive_scale,
        )
