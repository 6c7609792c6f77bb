"""head_fixed.py with one loss term that cannot train: right values, no (or a zero) gradient.

Issue 25, item 2: each class changes one term the way real refactors have, and every value
a check compares stays what it was (or, for the masked minima, becomes a constant 0):

- ``Detached<Term>``: ``.detach()`` appended to that term's method;
- ``NoGradContrastive``: the contrastive term computed under ``torch.no_grad()``;
- ``MaskedMinCluster``: the cluster term's nearest distance as ``min(d * same_class_mask)``,
  which is 0 whatever the distances (the other classes' entries are masked to 0);
- ``MaskedMinSeparation``: the separation hinge as ``min(relu(margin - d) * other_class_mask)``,
  0 whatever the distances for the same reason;
- ``Aligned`` / ``AlignedDetached``: every key the same trainable term (no pair conflicts:
  ``losses.conflicts`` passes), and the same with the contrastive key detached;
- ``NeverDiverse``: diversity times 0 (inactive in every state, not a cut graph).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from headaudit.reference.head_fixed import HeadOptimal as _Base
from headaudit.reference.head_fixed import OptimalPrototypeLoss


class _DetachedClusterLoss(OptimalPrototypeLoss):
    def compute_cluster_loss(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return super().compute_cluster_loss(*args, **kwargs).detach()


class _DetachedSeparationLoss(OptimalPrototypeLoss):
    def compute_separation_loss(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return super().compute_separation_loss(*args, **kwargs).detach()


class _DetachedDiversityLoss(OptimalPrototypeLoss):
    def compute_diversity_loss(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return super().compute_diversity_loss(*args, **kwargs).detach()


class _DetachedContrastiveLoss(OptimalPrototypeLoss):
    def compute_contrastive_loss(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return super().compute_contrastive_loss(*args, **kwargs).detach()


class _NoGradContrastiveLoss(OptimalPrototypeLoss):
    def compute_contrastive_loss(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        with torch.no_grad():
            return super().compute_contrastive_loss(*args, **kwargs)


class _MaskedMinClusterLoss(OptimalPrototypeLoss):
    def compute_cluster_loss(
        self, distances: torch.Tensor, labels: torch.Tensor, proto_indices: Any = None, valid_mask: Any = None
    ) -> torch.Tensor:
        same_class_mask = self._onehot(labels, distances.dtype).unsqueeze(-1).expand_as(distances)
        nearest = (distances * same_class_mask).flatten(1).amin(-1)  # 0: the other classes' entries
        onehot = self._onehot(labels, distances.dtype)
        counts = onehot.sum(0)
        per_class = (onehot * nearest.unsqueeze(1)).sum(0) / counts.clamp(min=1)
        present = (counts > 0).to(distances.dtype)
        return (self._get_class_weight(counts) * per_class).sum() / present.sum().clamp(min=1)


class _MaskedMinSeparationLoss(OptimalPrototypeLoss):
    def compute_separation_loss(
        self, distances: torch.Tensor, labels: torch.Tensor, proto_indices: Any = None, valid_mask: Any = None
    ) -> torch.Tensor:
        valid = self._valid(proto_indices, valid_mask, distances.device)
        onehot = self._onehot(labels, distances.dtype)
        other = (valid.unsqueeze(0) & ~onehot.bool().unsqueeze(-1)).to(distances.dtype)
        hinge = (F.relu(self.margin - distances) * other).flatten(1).amin(-1)  # 0: the own class's entries
        counts = onehot.sum(0)
        per_class = (onehot * hinge.unsqueeze(1)).sum(0) / counts.clamp(min=1)
        present = (counts > 0).to(distances.dtype)
        return (per_class * present).sum() / present.sum().clamp(min=1)


class _WithLoss(_Base):
    loss_class: type[OptimalPrototypeLoss] = OptimalPrototypeLoss

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.proto_loss_fn.__class__ = self.loss_class


class DetachedCluster(_WithLoss):
    loss_class = _DetachedClusterLoss


class DetachedSeparation(_WithLoss):
    loss_class = _DetachedSeparationLoss


class DetachedDiversity(_WithLoss):
    loss_class = _DetachedDiversityLoss


class DetachedContrastive(_WithLoss):
    loss_class = _DetachedContrastiveLoss


class NoGradContrastive(_WithLoss):
    loss_class = _NoGradContrastiveLoss


class MaskedMinCluster(_WithLoss):
    loss_class = _MaskedMinClusterLoss


class MaskedMinSeparation(_WithLoss):
    loss_class = _MaskedMinSeparationLoss


class _AlignedLoss(OptimalPrototypeLoss):
    """Every key one term (cluster plus contrastive): every pair of gradients is aligned."""

    detach_contrastive = False

    def forward(
        self, similarities: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor, *args: Any, **kwargs: Any
    ) -> dict[str, torch.Tensor]:  # type: ignore[override]
        valid = kwargs.get("valid_mask", args[1] if len(args) > 1 else None)
        same = self.compute_cluster_loss(1 - similarities, labels, valid_mask=valid)
        same = same + self.compute_contrastive_loss(prototypes, valid)
        terms = dict.fromkeys(("cluster_loss", "sep_loss", "div_loss", "contrastive_loss"), same)
        if self.detach_contrastive:
            terms["contrastive_loss"] = same.detach()
        terms["proto_loss"] = sum(terms.values(), torch.zeros((), dtype=same.dtype))
        return terms


class _AlignedDetachedLoss(_AlignedLoss):
    detach_contrastive = True


class Aligned(_WithLoss):
    loss_class = _AlignedLoss


class AlignedDetached(_WithLoss):
    loss_class = _AlignedDetachedLoss


class _NeverDiverseLoss(OptimalPrototypeLoss):
    def compute_diversity_loss(
        self, prototypes: torch.Tensor, proto_indices: Any = None, valid_mask: Any = None
    ) -> torch.Tensor:
        return 0.0 * super().compute_diversity_loss(prototypes, proto_indices, valid_mask)


class NeverDiverse(_WithLoss):
    """Diversity scaled to 0 (trainable, never active): its pairs in ``losses.conflicts`` are
    inactive while cluster/separation still conflict, and the finding must say both."""

    loss_class = _NeverDiverseLoss
