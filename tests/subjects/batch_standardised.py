"""A head that standardises its logits over the batch (an unbiased standard deviation).

A batch of one has no spread: the logits and the loss are NaN. ``edges.small-batches``
must fail on the batch of one and pass the other cases.
"""

from __future__ import annotations

import torch

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def aggregate_similarities(self, similarities: torch.Tensor) -> torch.Tensor:
        logits = super().aggregate_similarities(similarities)
        return (logits - logits.mean(dim=0)) / (logits.std(dim=0) + 1e-6)
