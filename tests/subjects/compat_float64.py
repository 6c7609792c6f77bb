"""head_optimal.py's compatibility ``Head`` kept in float64 (inputs cast on entry).

Its returns have head.py's arity, kinds and shapes in every mode; only their dtype is the
head's own. compat.forward judges the interface, so it must pass (dtype is
shapes.dtype's business); the float64 main class passes forward.contract as well.
"""

from __future__ import annotations

from typing import Any

import torch

from headaudit.reference.head_optimal import Head as _CompatBase
from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.double()

    def forward_features(self, pool_img_features: torch.Tensor, img_features: torch.Tensor) -> Any:
        return super().forward_features(pool_img_features.double(), img_features.double())


class Head(_CompatBase):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.double()

    def forward_features(self, pool_img_features: torch.Tensor, img_features: torch.Tensor) -> Any:
        return super().forward_features(pool_img_features.double(), img_features.double())
