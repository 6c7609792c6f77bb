"""Two heads for the training section's eval-batch check (issue 27).

- `PerSample`: head_fixed.py's head unchanged: each sample's logits depend on that sample
  alone, so a trained model's balanced accuracy is the same at every evaluation batch size.
- `BatchCentred`: the same head whose eval logits are centred over the batch (each class's
  mean over the batch subtracted), as a careless "calibration" might: at a batch of one every
  logit is 0 and the prediction is class 0, so the accuracy moves with the batch size.
"""

from __future__ import annotations

from typing import Any

import torch

from headaudit.reference.head_fixed import HeadOptimal as PerSample

__all__ = ["BatchCentred", "PerSample"]


class BatchCentred(PerSample):
    """head_fixed.py's head with its eval logits centred over the batch."""

    def forward(self, pool_img_features: torch.Tensor, img_features: torch.Tensor, labels: Any = None) -> Any:
        out = super().forward(pool_img_features, img_features, labels=labels)
        if self.training:
            return out
        logits = out[0] - out[0].mean(dim=0, keepdim=True)
        return (logits, *out[1:])
