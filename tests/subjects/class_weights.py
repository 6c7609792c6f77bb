"""Three ways of weighting the cluster term, as user copies of head_optimal.py might.

- `AllClassesDenominator`: weights from each present class's own count (`1/sqrt(n)`, or the
  effective number with `use_class_balanced`), computed inline (no `_get_class_weight`),
  but the sum is divided by the number of classes of the head instead of the number
  present: absent classes still shrink the loss.
- `InverseFrequency`: "class-balanced" simplified to plain inverse frequency `1/n`,
  normalised over the classes present; absent classes do not matter.
- `PresentOnly`: head_optimal's formulas, normalised over the classes present only (the
  fix of `weights.absent-classes`; the class-balanced mode still sees batch counts).
- `InertSetting`: takes and stores `use_class_balanced` but always weights by `1/sqrt(n)`
  over the classes present: the setting does nothing.
"""

from __future__ import annotations

import torch

from headaudit.reference.head_optimal import HeadOptimal as _Base
from headaudit.reference.head_optimal import OptimalPrototypeLoss


def _swap_loss(head: _Base, loss_cls: type[OptimalPrototypeLoss], num_classes: int) -> None:
    old = head.proto_loss_fn
    head.proto_loss_fn = loss_cls(
        num_classes,
        head.max_prototypes,
        margin=old.margin,
        clst_scale=old.clst_scale,
        sep_scale=old.sep_scale,
        div_scale=old.div_scale,
        contrastive_scale=old.contrastive_scale,
        use_class_balanced=old.use_class_balanced,
        cb_beta=old.cb_beta,
    )


class _DenominatorLoss(OptimalPrototypeLoss):
    _get_class_weight = None  # type: ignore[assignment]

    def compute_cluster_loss(self, distances, labels, proto_indices):  # type: ignore[no-untyped-def, override]
        total = distances.new_zeros(())
        for c, (start, end) in enumerate(proto_indices):
            mask = labels == c
            n = mask.sum()
            if n == 0:
                continue
            if self.use_class_balanced:
                w = (1 - self.cb_beta) / (1 - torch.pow(self.cb_beta, n.float()))
            else:
                w = n.float().rsqrt()
            total = total + w * distances[mask, c, : end - start].min(dim=-1).values.mean()
        return total / self.num_classes


class _InverseLoss(OptimalPrototypeLoss):
    def _get_class_weight(self, class_count: torch.Tensor) -> torch.Tensor:
        present = class_count > 0
        safe = class_count.clamp(min=1)
        raw = (1.0 / safe if self.use_class_balanced else safe.rsqrt()) * present
        return raw / raw.sum() * present.sum()


class _PresentOnlyLoss(OptimalPrototypeLoss):
    def _get_class_weight(self, class_count: torch.Tensor) -> torch.Tensor:
        present = class_count > 0
        weights = super()._get_class_weight(class_count) * present
        return weights / weights.sum() * present.sum()


class _InertLoss(OptimalPrototypeLoss):
    def _get_class_weight(self, class_count: torch.Tensor) -> torch.Tensor:
        present = class_count > 0
        raw = class_count.clamp(min=1).rsqrt() * present
        return raw / raw.sum() * present.sum()


class AllClassesDenominator(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        _swap_loss(self, _DenominatorLoss, num_classes)


class InverseFrequency(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        _swap_loss(self, _InverseLoss, num_classes)


class PresentOnly(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        _swap_loss(self, _PresentOnlyLoss, num_classes)


class InertSetting(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        _swap_loss(self, _InertLoss, num_classes)
