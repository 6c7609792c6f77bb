"""A head whose loss replaced the contrastive and diversity terms by two others.

Its loss dict has ``cluster_loss``, ``sep_loss``, ``align_loss`` and ``spread_loss``, and its
loss has no ``compute_contrastive_loss``: checks of the missing terms must be n/a, not errors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from headaudit.reference.head_optimal import HeadOptimal as _Base
from headaudit.reference.head_optimal import OptimalPrototypeLoss


class OtherTermsLoss(OptimalPrototypeLoss):
    compute_contrastive_loss = None  # type: ignore[assignment]
    compute_diversity_loss = None  # type: ignore[assignment]

    def forward(self, similarities, labels, prototypes, proto_indices, valid_mask):  # type: ignore[no-untyped-def, override]
        distances = 1 - similarities
        unit = F.normalize(prototypes[valid_mask], dim=-1)
        terms = {
            "cluster_loss": self.clst_scale * self.compute_cluster_loss(distances, labels, proto_indices),
            "sep_loss": self.sep_scale * self.compute_separation_loss(distances, labels, proto_indices),
            "align_loss": 0.01 * (1 - unit.mean(0).norm()),
            "spread_loss": 0.01 * torch.logsumexp(unit @ unit.t(), dim=-1).mean(),
        }
        terms["proto_loss"] = sum(terms.values())  # type: ignore[assignment]
        return terms


class HeadOptimal(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        self.proto_loss_fn = OtherTermsLoss(num_classes, self.max_prototypes)


class _NoDiversityLoss(OptimalPrototypeLoss):
    def forward(self, similarities, labels, prototypes, proto_indices, valid_mask):  # type: ignore[no-untyped-def, override]
        terms = super().forward(similarities, labels, prototypes, proto_indices, valid_mask)
        terms["proto_loss"] = terms["proto_loss"] - terms.pop("div_loss")
        return terms


class NoDiversity(_Base):
    """head_optimal.py without the diversity term: losses.conflicts measures the other pairs."""

    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        old = self.proto_loss_fn
        self.proto_loss_fn = _NoDiversityLoss(
            num_classes, self.max_prototypes, margin=old.margin, clst_scale=old.clst_scale, sep_scale=old.sep_scale
        )


class _ClusterOnlyLoss(OptimalPrototypeLoss):
    def forward(self, similarities, labels, prototypes, proto_indices, valid_mask):  # type: ignore[no-untyped-def, override]
        cluster = self.clst_scale * self.compute_cluster_loss(1 - similarities, labels, proto_indices)
        return {"cluster_loss": cluster, "proto_loss": cluster}


class ClusterOnly(_Base):
    """A loss of one term: no pair to measure, losses.conflicts is n/a."""

    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        self.proto_loss_fn = _ClusterOnlyLoss(num_classes, self.max_prototypes)
