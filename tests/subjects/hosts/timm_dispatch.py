"""Hosts that dispatch on what the head returns, as a real ``models_mae.py`` does; they import timm.

The real host of this family keeps the head's return whole (``head_output = self.head(...)``)
and branches on its length. timm does not import on the audit machine, so none of these
classes can run there: ``host.loss-dict`` judges them from their source, each head class's
measured return against the branch (``--host tests/subjects/hosts/timm_dispatch.py:CLASS``).

- ``main_model``: ``isinstance(head_output, tuple) and len(head_output) == 3`` takes the
  three-name unpack, else two names; in training the breakdown of a three-value head is kept
  (``len(head_output) > 2`` then ``loss_dict.items()``). Works in every cell;
- ``indexing_model``: indexes (``head_output[0]``, ``head_output[1]``, ``head_output[2]``
  where ``len(head_output) >= 3``), keeps the breakdown by ``.update``. Works everywhere;
- ``wrong_arm_model``: the arms swapped (``len(head_output) == 2`` takes the three-name
  unpack): raises in every cell, ``not enough values`` or ``too many values``;
- ``config_model``: the dispatch reads ``self.dict_head``, which only its constructor sets:
  the cells where the arms differ are not decided (``n/a``, naming the condition).

The constructors are never run by the audit (they would build a timm backbone).
"""

from __future__ import annotations

from typing import Any

import timm  # the real host's backbone: not importable on the audit machine
import torch
from torch import nn


class _Backbone(nn.Module):
    def __init__(self, head: nn.Module, dict_head: bool = True) -> None:
        super().__init__()
        self.backbone = timm.create_model("vit_tiny_patch16_224", num_classes=0)
        self.head = head
        self.dict_head = dict_head

    def forward_train(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.backbone.forward_features(images)
        return tokens[:, :1], tokens[:, 1:]


class main_model(_Backbone):  # the original's lowercase name, kept
    def forward(self, images: torch.Tensor, target: torch.Tensor | None = None) -> Any:
        features, poolling_feature = self.forward_train(images)
        head_output = self.head(poolling_feature, features, labels=target)
        if isinstance(head_output, tuple) and len(head_output) == 3:
            logits, head_loss, loss_dict = head_output
        else:
            logits, head_loss = head_output
            loss_dict = {}
        if self.training:
            extra_dict = {"head_loss": head_loss.detach()}
            if len(head_output) > 2:
                extra_dict.update({k: v.detach() for k, v in loss_dict.items()})
            return head_loss, extra_dict
        return logits, head_loss


class indexing_model(_Backbone):
    def forward(self, images: torch.Tensor, target: torch.Tensor | None = None) -> Any:
        features, poolling_feature = self.forward_train(images)
        head_output = self.head(poolling_feature, features, labels=target)
        logits, head_loss = head_output[0], head_output[1]
        loss_dict = head_output[2] if len(head_output) >= 3 else {}
        if not self.training:
            return logits, head_loss
        extra_dict = {"head_loss": head_loss.detach()}
        extra_dict.update(loss_dict)
        return head_loss, extra_dict


class wrong_arm_model(_Backbone):
    def forward(self, images: torch.Tensor, target: torch.Tensor | None = None) -> Any:
        features, poolling_feature = self.forward_train(images)
        head_output = self.head(poolling_feature, features, labels=target)
        if len(head_output) == 2:  # defect: the arms are swapped
            logits, head_loss, loss_dict = head_output
        else:
            logits, head_loss = head_output
            loss_dict = {}
        if self.training:
            return head_loss, {"head_loss": head_loss.detach(), **loss_dict}
        return logits, head_loss


class config_model(_Backbone):
    def forward(self, images: torch.Tensor, target: torch.Tensor | None = None) -> Any:
        features, poolling_feature = self.forward_train(images)
        head_output = self.head(poolling_feature, features, labels=target)
        if self.dict_head:  # set by the constructor only: the source does not say which arm runs
            logits, head_loss, loss_dict = head_output
        else:
            logits, head_loss = head_output
            loss_dict = {}
        if self.training:
            return head_loss, {"head_loss": head_loss.detach(), **loss_dict}
        return logits, head_loss
