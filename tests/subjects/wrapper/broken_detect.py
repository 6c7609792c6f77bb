"""An importable wrapper whose detection looks for `head.prototypes` (a head has `proto_manager`):
trainer.detect fails."""

from __future__ import annotations

import warnings

import torch
from torch import nn


class Model(nn.Module):
    def __init__(self, model: nn.Module, train_loss_fn: nn.Module | None = None, mixup: bool = False) -> None:
        super().__init__()
        self.model = model
        self.train_loss_fn = train_loss_fn if train_loss_fn is not None else nn.CrossEntropyLoss()
        self.mixup = mixup
        self._use_multi_prototype_head = self._detect_multi_prototype_head()

    def _detect_multi_prototype_head(self) -> bool:
        if hasattr(self.model, "head"):
            head = self.model.head
            if hasattr(head, "prototypes"):  # the manager's tensor, not an attribute of the head
                return True
        return False

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None, epoch: int | None = None) -> tuple:
        if self.training:
            target_orig = target
            if self._use_multi_prototype_head:
                if self.mixup:
                    warnings.warn("mixup is on; the head is trained with the hard labels", UserWarning, stacklevel=2)
                loss, extra_dict = self.model(x, target=target_orig)
            else:
                output = self.model(x)
                logits, head_loss = output
                loss = self.train_loss_fn(logits, target) + head_loss
                extra_dict = {}
            return loss, extra_dict
        if self._use_multi_prototype_head:
            logits, head_loss = self.model(x, target=target)
        else:
            logits, head_loss = self.model(x)
        return logits, head_loss
