"""A hinge-style contrastive term: it pushes apart only different-class pairs above cos 0.2.

It does push only different classes apart (contrastive.pairs must pass), but it is not the
mean similarity (contrastive.value must fail).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        per_class = self.max_prototypes

        def contrastive(prototypes: torch.Tensor, valid_mask: torch.Tensor, proto_indices: object) -> torch.Tensor:
            rows = torch.nonzero(valid_mask).flatten()
            unit = F.normalize(prototypes[rows], dim=-1)
            owner = rows // per_class
            cross = owner[:, None] != owner[None, :]
            if not bool(cross.any()):
                return prototypes.new_zeros(())
            return F.relu((unit @ unit.t())[cross] - 0.2).mean()

        self.proto_loss_fn.compute_contrastive_loss = contrastive
