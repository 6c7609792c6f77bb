"""An EMA done right: unit-norm rows from the start, and a cancelling update keeps the old row."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        manager = self.proto_manager
        with torch.no_grad():
            manager.prototypes.copy_(F.normalize(manager.prototypes, dim=-1))

        @torch.no_grad()
        def momentum_update(proto_idx: int, new_value: torch.Tensor) -> None:
            m = manager.momentum
            mixed = m * manager.prototypes[proto_idx] + (1 - m) * F.normalize(new_value, dim=-1)
            if mixed.norm() > 1e-6:  # an exact cancellation keeps the old row
                manager.prototypes[proto_idx] = mixed / mixed.norm()

        manager.momentum_update = momentum_update
