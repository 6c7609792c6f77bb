"""The cluster term's nearest prototype is searched over all max_prototypes slots, unused ones included.

Breaks loss.cluster-nearest (an invalid slot moves the term); the balanced mean of
loss.cluster-scale reads the same per-sample distances, so it fails there too.
"""

from __future__ import annotations

from headaudit.reference.head_optimal import HeadOptimal as _Base
from headaudit.reference.head_optimal import OptimalPrototypeLoss


class AllSlotsLoss(OptimalPrototypeLoss):
    def compute_cluster_loss(self, distances, labels, proto_indices):  # type: ignore[no-untyped-def, override]
        full = [(start, start + self.max_prototypes) for start, _ in proto_indices]
        return super().compute_cluster_loss(distances, labels, full)


class HeadOptimal(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        self.proto_loss_fn.__class__ = AllSlotsLoss  # the same loss, settings and all, with the change
