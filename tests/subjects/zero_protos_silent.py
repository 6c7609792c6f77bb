"""A head whose aggregation skips classes without prototypes, leaving their logit at 0.

``num_prototypes=0`` is accepted and every class gets a finite logit of 0, as if it had
been scored: ``edges.zero-prototypes`` must fail (accepted silently).
"""

from __future__ import annotations

import torch

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def aggregate_similarities(self, similarities: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(similarities.size(0), self.num_classes, device=similarities.device)
        for c, (start, end) in enumerate(self.proto_manager.get_prototype_indices()):
            if end > start:
                out[:, c] = similarities[:, c, : end - start].max(dim=-1).values
        return out
