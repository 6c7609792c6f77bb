"""head_fixed.py's head twice, told apart only by the name of forward's labels parameter.

``LabelsHead`` takes them as ``labels`` (BEHAVIOR.md's name); ``TargetsHead`` as
``targets``, as many projects call them. Nothing else differs: each forward hands its
labels on to the same code. Unmapped, the checks that pass labels by keyword are ``n/a``
naming the parameter (and suggesting ``targets``) while the others measure it; with
``--map forward.labels=targets`` it gets ``LabelsHead``'s verdicts.
"""

from __future__ import annotations

import torch

from headaudit.reference.head_fixed import HeadOptimal as _Base


class LabelsHead(_Base):
    def forward(  # type: ignore[override]
        self, pool_img_features: torch.Tensor, img_features: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        return super().forward(pool_img_features, img_features, labels)


class TargetsHead(_Base):
    def forward(  # type: ignore[override]
        self, pool_img_features: torch.Tensor, img_features: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        return super().forward(pool_img_features, img_features, targets)
