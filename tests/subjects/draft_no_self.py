"""A draft whose loss method lacks ``self``: the training forward raises TypeError.

Not a working head. The checks that never reach its loss (gate, attention, similarities)
would pass on their own; the audit must not show a pass for a head that cannot train:
every check that runs it is ``error`` with the TypeError, or ``n/a`` for a name the file
lacks (the static checks read the source alone).
"""

from __future__ import annotations

import torch

from headaudit.reference.head_optimal import HeadOptimal as _Base
from headaudit.reference.head_optimal import OptimalPrototypeLoss


class DraftLoss(OptimalPrototypeLoss):
    def compute_cluster_loss(distances, labels, proto_indices):  # type: ignore[no-untyped-def, override]
        return (1 - distances).mean()


class HeadOptimal(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        self.proto_loss_fn = DraftLoss(num_classes, self.max_prototypes)

    def unused(self) -> torch.Tensor:
        return torch.zeros(())
