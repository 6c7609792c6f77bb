"""An update that re-normalises every row: it touches rows it was not asked to update."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        manager = self.proto_manager

        @torch.no_grad()
        def momentum_update(proto_idx: int, new_value: torch.Tensor) -> None:
            m = manager.momentum
            manager.prototypes[proto_idx] = m * manager.prototypes[proto_idx] + (1 - m) * F.normalize(new_value, dim=-1)
            manager.prototypes.copy_(F.normalize(manager.prototypes, dim=-1))

        manager.momentum_update = momentum_update
