"""The weighted cluster sum is divided by ``num_classes``, not by the classes present.

A one-word refactoring slip that nothing shows while every class is in the batch. Breaks
loss.cluster-scale's absent-class part: with a class missing, each present class's
coefficient is its ``_get_class_weight`` weight over ``num_classes`` instead of over the
number of classes present. Everything else is head_optimal.py's.
"""

from __future__ import annotations

import torch

from headaudit.reference.head_optimal import HeadOptimal as _Base
from headaudit.reference.head_optimal import OptimalPrototypeLoss


class AllClassesLoss(OptimalPrototypeLoss):
    def compute_cluster_loss(
        self, distances: torch.Tensor, labels: torch.Tensor, proto_indices: list[tuple[int, int]]
    ) -> torch.Tensor:
        weights = self._get_class_weight(torch.bincount(labels, minlength=self.num_classes).float())
        total = torch.tensor(0.0, device=distances.device)
        for c, (start, end) in enumerate(proto_indices):
            mask = labels == c
            if mask.any():
                total = total + weights[c] * distances[mask, c, : end - start].min(dim=-1).values.mean()
        return total / self.num_classes


class HeadOptimal(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        self.proto_loss_fn.__class__ = AllClassesLoss  # the same loss, settings and all, with the change
