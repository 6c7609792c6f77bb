"""head_optimal.py whose aggregation keeps the similarities' dtype.

The references fill a float32 buffer whatever the input dtype; this one allocates it like
the similarities, so a double head on double inputs gives double logits: ``shapes.dtype``
must pass.
"""

from __future__ import annotations

import torch

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def aggregate_similarities(self, similarities: torch.Tensor) -> torch.Tensor:
        out = similarities.new_zeros(similarities.size(0), self.num_classes)
        for c, (start, end) in enumerate(self.proto_manager.get_prototype_indices()):
            out[:, c] = similarities[:, c, : end - start].max(dim=-1).values
        return out
