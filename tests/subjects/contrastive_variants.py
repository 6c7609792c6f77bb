"""Two wrong contrastive terms, loaded as PATH:CLASS: one reads invalid rows, one attracts classes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from headaudit.reference.head_optimal import HeadOptimal as _Base


class IgnoresValidMask(_Base):
    """Mean different-class similarity over ALL rows, valid or not."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        per_class = self.max_prototypes

        def contrastive(prototypes: torch.Tensor, valid_mask: torch.Tensor, proto_indices: object) -> torch.Tensor:
            unit = F.normalize(prototypes, dim=-1)
            owner = torch.arange(prototypes.size(0)) // per_class
            return (unit @ unit.t())[owner[:, None] != owner[None, :]].mean()

        self.proto_loss_fn.compute_contrastive_loss = contrastive


class Attracts(_Base):
    """The fixed term with its sign flipped: raising a different-class similarity lowers it."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        original = self.proto_loss_fn.compute_contrastive_loss
        self.proto_loss_fn.compute_contrastive_loss = lambda *a: -original(*a)
