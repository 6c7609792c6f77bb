"""A head that feeds detached prototypes to its attention and its loss.

Training runs and the loss is finite, but no gradient reaches
``proto_manager.prototypes``: ``trainer.step`` must fail.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from headaudit.reference.head_optimal import DynamicPrototypeManagerOptimal
from headaudit.reference.head_optimal import HeadOptimal as _Base


class DetachedManager(DynamicPrototypeManagerOptimal):
    def get_prototypes(self) -> torch.Tensor:
        return F.normalize(self.prototypes.detach(), p=2, dim=-1)


class HeadOptimal(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        self.proto_manager.__class__ = DetachedManager

    def forward(self, pool_img_features: torch.Tensor, img_features: torch.Tensor, labels=None):  # type: ignore[no-untyped-def, override]
        similarities, _, _, _ = self.forward_features(pool_img_features, img_features)
        logits = self.aggregate_similarities(similarities) * self.temperature
        if self.training and labels is not None:
            manager = self.proto_manager
            ce = F.cross_entropy(logits, labels)
            terms = self.proto_loss_fn(
                similarities, labels, manager.prototypes.detach(), manager.get_prototype_indices(), manager.valid_mask
            )
            total = (ce + terms["proto_loss"]).reshape(1)
            return logits, total, {"ce_loss": ce, **terms, "total_loss": total}
        return logits, torch.tensor(0.0), {}
