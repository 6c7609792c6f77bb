"""forward in eval mode with labels computes and returns the training loss and its dict.

Breaks forward.contract alone (eval must return a zero loss and an empty dict, even with labels).
"""

from __future__ import annotations

from typing import Any

import torch

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def forward(self, pool_img_features: torch.Tensor, img_features: torch.Tensor, labels: Any = None) -> Any:
        if labels is None or self.training:
            return super().forward(pool_img_features, img_features, labels)
        self.train(True)
        try:
            return super().forward(pool_img_features, img_features, labels)
        finally:
            self.train(False)
