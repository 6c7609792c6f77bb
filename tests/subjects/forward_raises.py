"""A head that builds fine but whose forward raises: checks that need a forward report error."""

from __future__ import annotations

import torch

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def forward(self, pool_img_features: torch.Tensor, img_features: torch.Tensor, labels=None):  # type: ignore[no-untyped-def, override]
        raise RuntimeError("forward is broken on purpose")
