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
        self.proto_loss_fn.__class__ = SimilarityHinge  # the same loss, settings and all, with the change
