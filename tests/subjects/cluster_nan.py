"""A head whose cluster term averages over the batch without guarding an empty one.

With no class present the mean is over an empty set, NaN: ``edges.cluster-empty`` must fail.
"""

from __future__ import annotations

import torch

from headaudit.reference.head_optimal import HeadOptimal as _Base
from headaudit.reference.head_optimal import OptimalPrototypeLoss


class MeanClusterLoss(OptimalPrototypeLoss):
    def compute_cluster_loss(self, distances, labels, proto_indices):  # type: ignore[no-untyped-def, override]
        nearest = [
            distances[labels == c, c, : end - start].min(dim=-1).values for c, (start, end) in enumerate(proto_indices)
        ]
        return torch.cat(nearest).mean()


class HeadOptimal(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        old = self.proto_loss_fn
        self.proto_loss_fn = MeanClusterLoss(num_classes, self.max_prototypes, margin=old.margin)
