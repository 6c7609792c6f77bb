"""A correct EMA whose manager calls it ``momentum_update_fixed`` (no ``momentum_update``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from headaudit.reference.head_optimal import DynamicPrototypeManagerOptimal
from headaudit.reference.head_optimal import HeadOptimal as _Base


class RenamedManager(DynamicPrototypeManagerOptimal):
    momentum_update = None  # type: ignore[assignment]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        with torch.no_grad():
            self.prototypes.copy_(F.normalize(self.prototypes, dim=-1))

    @torch.no_grad()
    def momentum_update_fixed(self, proto_idx: int, new_value: torch.Tensor) -> None:
        m = self.momentum
        mixed = m * self.prototypes[proto_idx] + (1 - m) * F.normalize(new_value, dim=-1)
        if mixed.norm() > 1e-6:  # an exact cancellation keeps the old row
            self.prototypes[proto_idx] = mixed / mixed.norm()


class HeadOptimal(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        old = self.proto_manager
        self.proto_manager = RenamedManager(
            old.num_classes, old.emb_dim, int(old.protos_per_class[0]), old.max_prototypes, old.momentum
        )
