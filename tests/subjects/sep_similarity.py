"""Separation hinges on the similarity to the nearest other-class prototype, relu(margin - cos),
instead of on its distance 1 - cos.

Breaks loss.separation-value alone.
"""

from __future__ import annotations

from headaudit.reference.head_optimal import HeadOptimal as _Base
from headaudit.reference.head_optimal import OptimalPrototypeLoss


class SimilarityHinge(OptimalPrototypeLoss):
    def compute_separation_loss(self, distances, labels, proto_indices):  # type: ignore[no-untyped-def, override]
        return super().compute_separation_loss(1 - distances, labels, proto_indices)


class HeadOptimal(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        old = self.proto_loss_fn
        self.proto_loss_fn = SimilarityHinge(
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
