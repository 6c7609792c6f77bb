"""Reference copy of the host that calls the head (``main_model`` in ``projects/mae_lite/models_mae.py``).

This file reproduces the call site described in ``shared/spec/BEHAVIOR.md`` section 5 and
quoted in the analysis report (its section 2.1), on a tiny stand-in backbone
(``backbone.py``): ``logits, head_loss = self.head(poolling_feature, features,
labels=target)``, a two-name unpack. It is deliberately NOT fixed: with ``HeadOptimal``
(which returns three values, in eval too) the unpack raises ValueError, and with the
compatibility ``Head`` it works and the loss breakdown is lost. The reproduced defect
carries a comment naming the headaudit check that catches it. The original's names are
kept (``main_model``, ``forward_train``, ``poolling_feature``).

The head is passed in, so any head class fits and nothing here imports a head. Sibling
import scheme (shared by every host file here): loaded as part of a package
(``headaudit.reference.models_mae``, or any package the folder forms), ``__package__`` is
set and the backbone is imported relatively; loaded as a top-level module (the folder on
``sys.path``, or run as a script), ``__package__`` is empty and the backbone is imported
by its top-level name. The choice is made on ``__package__``, not by catching
ImportError, so a real error inside ``backbone.py`` is never masked by a fallback.
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
    """The host as quoted: a two-name unpack of the head's output (loses or breaks on three values)."""

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
        """Training: ``(head_loss, {"head_loss": head_loss.detach()})``; eval: ``(logits, head_loss)``."""
        features, poolling_feature = self.forward_train(images)
        # Defect (host.loss-dict): a two-name unpack. HeadOptimal returns three values in
        # training AND in eval, so this line raises ValueError ("too many values to
        # unpack"); the compatibility Head returns two and the loss breakdown is lost.
        logits, head_loss = self.head(poolling_feature, features, labels=target)
        if self.training:
            return head_loss, {"head_loss": head_loss.detach()}
        return logits, head_loss
