"""Reference copy of ``main_model`` after the analysis report's suggested fix (its section 4.2).

This file reproduces the second host variant of ``shared/spec/BEHAVIOR.md`` section 5:
``models_mae.py`` with ``main_model.forward`` replaced by the edit the report suggests.
Training with a target unpacks three values and returns ``(head_loss, extra_dict)`` with
every loss term detached; the other branch still unpacks two. It is deliberately NOT
fixed further, so the audit can judge the suggestion itself: with ``HeadOptimal`` eval
still raises, and with a two-value head (the compatibility ``Head``, head.py's ``Head``)
training now raises. Each reproduced defect carries a comment naming the headaudit check
that catches it. Same class name and constructor as ``models_mae.py`` (it is the same
file after the edit); same sibling import scheme (see ``models_mae.py``).
"""

from __future__ import annotations

import torch
from torch import nn

if __package__:
    from .backbone import TinyBackbone
else:  # a top-level module: this folder is on sys.path
    from backbone import TinyBackbone  # type: ignore[no-redef]

__all__ = ["main_model"]


class main_model(nn.Module):  # the original's lowercase name, kept
    """The host after the report's suggested edit: three-name unpack in training, two-name otherwise."""

    def __init__(self, head: nn.Module, feat_dim: int = 16) -> None:
        super().__init__()
        self.backbone = TinyBackbone(feat_dim)
        self.head = head

    def forward_train(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features (B, 1, D), poolling_feature (B, 49, D))`` from the backbone."""
        features, poolling_feature = self.backbone(images)
        return features, poolling_feature

    def forward(
        self, images: torch.Tensor, target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | torch.Tensor]:
        """Training with a target: ``(head_loss, extra_dict)``; otherwise ``(logits, head_loss)``."""
        features, poolling_feature = self.forward_train(images)

        if self.training and target is not None:
            # Defect (host.loss-dict, trainer.step): a three-name unpack. A two-value head
            # (the compatibility Head, head.py's Head) raises ValueError here
            # ("not enough values to unpack (expected 3, got 2)").
            logits, head_loss, loss_dict = self.head(poolling_feature, features, labels=target)
            extra_dict = {
                "head_loss": head_loss.detach(),
                **{k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in loss_dict.items()},
            }
            return head_loss, extra_dict
        else:
            # Defect (host.loss-dict): still a two-name unpack. HeadOptimal returns three
            # values in eval too, so eval raises ValueError ("too many values to unpack").
            logits, head_loss = self.head(poolling_feature, features, labels=target)
            return logits, head_loss
