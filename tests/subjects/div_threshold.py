"""Diversity hinges at cos 0.3 instead of 0.5.

Breaks loss.diversity-value alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from headaudit.reference.head_optimal import HeadOptimal as _Base
from headaudit.reference.head_optimal import OptimalPrototypeLoss


class LowThreshold(OptimalPrototypeLoss):
    def compute_diversity_loss(self, prototypes, proto_indices):  # type: ignore[no-untyped-def, override]
        normed = F.normalize(prototypes, p=2, dim=-1)
        values = []
        for start, end in proto_indices:
            k = end - start
            if k > 1:
                gram = normed[start:end] @ normed[start:end].t()
                off = ~torch.eye(k, dtype=torch.bool, device=prototypes.device)
                values.append(F.relu(gram[off] - 0.3).mean())
        return torch.stack(values).mean() if values else torch.tensor(0.0, device=prototypes.device)


class HeadOptimal(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        self.proto_loss_fn.__class__ = LowThreshold  # the same loss, settings and all, with the change
