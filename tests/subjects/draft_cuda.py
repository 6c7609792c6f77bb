"""A draft that moves its inputs with ``.cuda()``: on a machine without CUDA, forward raises.

Not a working head here: every check that runs it is ``error`` with torch's own message
(or ``n/a`` for a name the file lacks), never a pass; the static checks read its source.
On a CUDA machine it is head_optimal.py.
"""

from __future__ import annotations

from typing import Any

import torch

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def forward(self, pool_img_features: torch.Tensor, img_features: torch.Tensor, labels: Any = None) -> Any:
        pool_img_features, img_features = pool_img_features.cuda(), img_features.cuda()
        if labels is not None:
            labels = labels.cuda()
        return super().forward(pool_img_features, img_features, labels)
