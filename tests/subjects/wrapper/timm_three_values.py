"""The project's wrapper (timm, mae_lite) unpacking three values in training where the host
returns two: its source shows that the step raises."""

from __future__ import annotations

import warnings

import timm  # the project's backbones
import torch
from mae_lite.exps.timm_imagenet_exp import Exp as BaseExp  # noqa: F401
from mae_lite.utils import get_root_logger  # noqa: F401
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
            if hasattr(head, "proto_manager"):
                return True
        return False

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None, epoch: int | None = None) -> tuple:
        if self.training:
            target_orig = target
            if self._use_multi_prototype_head:
                if self.mixup:
                    warnings.warn("mixup is on; the head is trained with the hard labels", UserWarning, stacklevel=2)
                loss, extra_dict, _terms = self.model(x, target=target_orig)
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


class Exp:
    """The project's experiment: builds the wrapper (never calls ``self.model(...)``)."""

    def get_model(self) -> Model:
        encoder = timm.create_model("vit_tiny_patch16_224")
        self.model = Model(encoder)
        return self.model
