"""Four loss terms that are one and the same function: every pair of gradients is aligned."""

from __future__ import annotations

import torch

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        loss = self.proto_loss_fn

        def forward(similarities, labels, prototypes, proto_indices, valid_mask):  # type: ignore[no-untyped-def]
            distances = 1 - similarities
            same = loss.compute_cluster_loss(distances, labels, proto_indices)
            same = same + loss.compute_contrastive_loss(prototypes, valid_mask, proto_indices)
            terms = dict.fromkeys(("cluster_loss", "sep_loss", "div_loss", "contrastive_loss"), same)
            terms["proto_loss"] = 4 * same
            return terms

        loss.forward = forward  # type: ignore[method-assign]


def _unused() -> torch.Tensor:  # keeps the torch import honest for readers
    return torch.zeros(())
