"""A momentum update that does nothing: it touches no other row, yet it is not an update."""

from __future__ import annotations

import torch

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

        @torch.no_grad()
        def momentum_update(proto_idx: int, new_value: torch.Tensor) -> None:
            return None

        self.proto_manager.momentum_update = momentum_update
