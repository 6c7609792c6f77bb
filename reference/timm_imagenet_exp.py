"""Reference copy of the training wrapper ``Model`` in ``timm_imagenet_exp.py``.

This file reproduces the wrapper of ``shared/spec/BEHAVIOR.md`` section 5, as quoted in
the analysis report (its section 2.5): it detects a multi-prototype head by duck typing
(``self.model.head`` has a ``proto_manager``) and then trusts the host to return the
head's own loss. It is deliberately NOT fixed: it passes whatever the host raises
straight through (with ``HeadOptimal`` behind the quoted host, every step raises), and
returns the head's total loss as it is, shape ``(1,)`` (the heads' ``log_sigma_*`` have
shape ``(1,)``). Reproduced defects carry a comment naming the headaudit check that
catches them.

Mixup and EMA are out of scope and modelled as off: ``mixup`` is a flag, off by default,
whose only effect is the warning the original gives when the multi-prototype head is
trained with the hard labels (no mixing is implemented here).

``LinearHeadModel`` is a plain linear-head host (a ``head`` without ``proto_manager``) for
the negative case of ``trainer.detect``; it lives here, not in ``models_mae.py``, so that
the host file keeps exactly one ``self.head(...)`` call for the static scan of
``host.loss-dict``. It follows the project's host convention of returning
``(logits, head_loss)`` with a zero ``head_loss``, which is what the wrapper unpacks.
Same sibling import scheme as ``models_mae.py``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn

if __package__:
    from .backbone import TinyBackbone
else:  # a top-level module: this folder is on sys.path
    from backbone import TinyBackbone  # type: ignore[no-redef]

__all__ = ["LinearHeadModel", "Model"]


class LinearHeadModel(nn.Module):
    """A plain linear-head host returning ``(logits, zero head_loss)``; not a multi-prototype model."""

    def __init__(self, num_classes: int = 3, feat_dim: int = 16) -> None:
        super().__init__()
        self.backbone = TinyBackbone(feat_dim)
        self.head = nn.Linear(feat_dim, num_classes)

    def forward(self, images: torch.Tensor, target: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits (B, num_classes), torch.tensor(0.0))``; ``target`` is ignored."""
        features, _ = self.backbone(images)
        logits = self.head(features.squeeze(1))
        return logits, torch.tensor(0.0, device=logits.device)


class Model(nn.Module):
    """The training wrapper as quoted: the head's own loss for multi-prototype heads, else ``train_loss_fn``."""

    def __init__(
        self,
        model: nn.Module,
        train_loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        mixup: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.train_loss_fn = train_loss_fn if train_loss_fn is not None else nn.CrossEntropyLoss()
        self.mixup = mixup
        # Detected once, at construction (as in the original).
        self._use_multi_prototype_head = self._detect_multi_prototype_head()

    def _detect_multi_prototype_head(self) -> bool:
        """True when ``self.model.head`` has a ``proto_manager`` attribute (duck typing, as quoted)."""
        if hasattr(self.model, "head"):
            head = self.model.head
            if hasattr(head, "proto_manager"):
                return True
        return False

    def forward(
        self,
        x: torch.Tensor,
        target: torch.Tensor | None = None,
        epoch: int | None = None,
        update_param: bool = False,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | torch.Tensor]:
        """Training: ``(loss, extra_dict)``; eval: ``(logits, head_loss)``.

        ``epoch`` and ``update_param`` are accepted for the original's signature and unused
        (schedules and EMA are out of scope).
        """
        if self.training:
            target_orig = target  # hard labels, kept before mixup (mixup itself is off here)
            if self._use_multi_prototype_head:
                if self.mixup:
                    warnings.warn(
                        "mixup is on, but the multi-prototype head is trained with the hard labels "
                        "(target_orig): its loss ignores the mixed targets",
                        UserWarning,
                        stacklevel=2,
                    )
                # Defect (trainer.step): whatever the host returns is the step's loss. Behind
                # the quoted host, HeadOptimal raises ValueError here (see host.loss-dict);
                # with the compatibility Head the loss is the head's total, shape (1,).
                loss, extra_dict = self.model(x, target=target_orig)
            else:
                output = self.model(x)
                logits, head_loss = output
                loss = self.train_loss_fn(logits, target) + head_loss
                extra_dict = {}
            return loss, extra_dict
        if self._use_multi_prototype_head:
            # Defect (trainer.step): with HeadOptimal behind either host variant, eval raises
            # ValueError in the host's two-name unpack (see host.loss-dict).
            logits, head_loss = self.model(x, target=target)
        else:
            logits, head_loss = self.model(x)
        return logits, head_loss
