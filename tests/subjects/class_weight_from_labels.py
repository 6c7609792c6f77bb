"""A user's loss whose ``_get_class_weight`` takes the labels, not the per-class counts.

The cluster term is head_optimal.py's, computed through that helper. loss.cluster-scale
cannot call the helper with a batch's counts, so its absent-class part is not compared,
and the evidence says what the call raised; the verdict rests on the rest and passes.
"""

from __future__ import annotations

import torch

from headaudit.reference.head_optimal import HeadOptimal as _Base
from headaudit.reference.head_optimal import OptimalPrototypeLoss


class LabelWeightLoss(OptimalPrototypeLoss):
    def _get_class_weight(self, labels: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if labels.dtype.is_floating_point:
            raise TypeError("_get_class_weight expects integer labels, got per-class counts")
        return super()._get_class_weight(torch.bincount(labels, minlength=self.num_classes).float())

    def compute_cluster_loss(
        self, distances: torch.Tensor, labels: torch.Tensor, proto_indices: list[tuple[int, int]]
    ) -> torch.Tensor:
        weights = self._get_class_weight(labels)
        total = torch.tensor(0.0, device=distances.device)
        present = 0
        for c, (start, end) in enumerate(proto_indices):
            mask = labels == c
            if mask.any():
                total = total + weights[c] * distances[mask, c, : end - start].min(dim=-1).values.mean()
                present += 1
        return total / max(present, 1)


class HeadOptimal(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        self.proto_loss_fn.__class__ = LabelWeightLoss  # the same loss, settings and all, with the change
