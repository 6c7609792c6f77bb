"""At capacity, expanding refuses (returns False) but still overwrites the class's last row.

Breaks manager.expand alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from headaudit.reference.head_optimal import DynamicPrototypeManagerOptimal
from headaudit.reference.head_optimal import HeadOptimal as _Base


class OverwritingManager(DynamicPrototypeManagerOptimal):
    @torch.no_grad()
    def expand_prototype(self, class_idx: int, new_proto: torch.Tensor) -> bool:
        k = int(self.protos_per_class[class_idx].item())
        if k >= self.max_prototypes:
            self.prototypes.data[class_idx * self.max_prototypes + k - 1] = F.normalize(new_proto, p=2, dim=-1)
            return False
        return super().expand_prototype(class_idx, new_proto)


class HeadOptimal(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        old = self.proto_manager
        self.proto_manager = OverwritingManager(
            num_classes, emb_dim, int(old.protos_per_class[0]), old.max_prototypes, old.momentum
        )
