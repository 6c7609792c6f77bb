"""compute_similarities returns plain dot products: the class embeddings and the sample are not normalised.

Breaks forward.similarity alone: the aggregation, the forward's returns and the loss all
consume whatever similarities forward_features gives them, consistently.
"""

from __future__ import annotations

import torch

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def compute_similarities(self, img_proj: torch.Tensor, class_emb: torch.Tensor) -> torch.Tensor:
        sims = (img_proj.unsqueeze(1) * class_emb).sum(dim=-1)
        return sims.view(sims.size(0), self.num_classes, self.max_prototypes)
