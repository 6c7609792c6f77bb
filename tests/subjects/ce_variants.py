"""Cross-entropies a user's copy of head_optimal.py might compute, for forward.contract.

Every class here returns a total that is the uncertainty weighting of the ``ce_loss`` and
``proto_loss`` it reports, except ``TotalOff``; they differ in the ``ce_loss`` itself:

- `ClassBalanced`: as a real head of this family does with ``use_class_balanced=True``
  (the default here), the cross-entropy is weighted by the loss's own
  ``_get_class_weight`` of the batch's class counts: warn, naming the weights.
- `InlineWeights`: inverse-frequency weights ``1/n_c`` of the batch's counts computed
  inline (the loss's own ``_get_class_weight`` gives others): warn, naming the weights
  fitted over batches.
- `Smoothed`: ``label_smoothing=0.1``: warn, naming 0.1.
- `BalancedSmoothed`: `ClassBalanced`'s weights and ``label_smoothing=0.05``: warn, naming both.
- `PreTemperature`: the cross-entropy of the logits before the temperature (the total
  uses it too): nothing explains it, fail.
- `TotalOff`: the total weights ``proto_loss`` by ``0.5 * exp(-2 * log_sigma_proto)`` (the
  variance convention) while reporting plain terms: fail on the total.
- `TwoValueSmoothed`: ``label_smoothing=0.1`` in a head that returns (logits, total) only:
  the cross-entropy the total implies is explained, warn naming 0.1.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from headaudit.reference.head_optimal import HeadOptimal as _Base


class _Variant(_Base):
    """head_optimal.py's forward with the cross-entropy and the total as overridable steps."""

    def _ce(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels)

    def _total(self, ce: torch.Tensor, proto_loss: torch.Tensor) -> torch.Tensor:
        s_ce, s_p = self.log_sigma_ce, self.log_sigma_proto
        return torch.exp(-s_ce) * ce + s_ce + torch.exp(-s_p) * proto_loss + s_p

    def forward(self, pool_img_features: torch.Tensor, img_features: torch.Tensor, labels: Any = None) -> Any:
        similarities = self.forward_features(pool_img_features, img_features)[0]
        logits = self.aggregate_similarities(similarities) * self.temperature
        if not (self.training and labels is not None):
            return logits, torch.tensor(0.0), {}
        ce = self._ce(logits, labels)
        pm = self.proto_manager
        loss_dict = self.proto_loss_fn(similarities, labels, pm.prototypes, pm.get_prototype_indices(), pm.valid_mask)
        total = self._total(ce, loss_dict["proto_loss"])
        return logits, total, {"ce_loss": ce, **loss_dict, "total_loss": total}


class ClassBalanced(_Variant):
    def __init__(self, *args: Any, use_class_balanced: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, use_class_balanced=use_class_balanced, **kwargs)
        self.use_class_balanced = use_class_balanced

    def _ce(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if not self.use_class_balanced:
            return F.cross_entropy(logits, labels)
        counts = torch.bincount(labels, minlength=self.num_classes).float()
        return F.cross_entropy(logits, labels, weight=self.proto_loss_fn._get_class_weight(counts))


class InlineWeights(_Variant):
    def _ce(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        counts = torch.bincount(labels, minlength=self.num_classes).float()
        return F.cross_entropy(logits, labels, weight=1.0 / counts.clamp(min=1))


class Smoothed(_Variant):
    def _ce(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels, label_smoothing=0.1)


class BalancedSmoothed(ClassBalanced):
    def _ce(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        counts = torch.bincount(labels, minlength=self.num_classes).float()
        weight = self.proto_loss_fn._get_class_weight(counts)
        return F.cross_entropy(logits, labels, weight=weight, label_smoothing=0.05)


class PreTemperature(_Variant):
    def _ce(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits / self.temperature, labels)


class TotalOff(_Variant):
    def _total(self, ce: torch.Tensor, proto_loss: torch.Tensor) -> torch.Tensor:
        s_ce, s_p = self.log_sigma_ce, self.log_sigma_proto
        return torch.exp(-s_ce) * ce + s_ce + 0.5 * torch.exp(-2 * s_p) * proto_loss + s_p


class TwoValueSmoothed(Smoothed):
    def forward(self, pool_img_features: torch.Tensor, img_features: torch.Tensor, labels: Any = None) -> Any:
        out = super().forward(pool_img_features, img_features, labels)
        return out[0], out[1]
