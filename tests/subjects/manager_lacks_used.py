"""A compatibility ``Head`` whose manager lacks a method the file's own caller uses.

head_optimal.py's manager with ``var_threshold`` and ``expand_prototypes`` added back
but no ``apply_momentum_updates``, which the file's training helper calls after each
step, as head.py's callers do: that caller would raise AttributeError, so
``compat.manager-api`` must fail naming it.
"""

from __future__ import annotations

from typing import Any

import torch

from headaudit.reference.head_optimal import DynamicPrototypeManagerOptimal, HeadOptimal
from headaudit.reference.head_optimal import Head as _Compat


class Manager(DynamicPrototypeManagerOptimal):
    def __init__(self, *args: Any, var_threshold: float = 0.5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.var_threshold = var_threshold

    def expand_prototypes(self, class_idx: int, new_proto: torch.Tensor) -> bool:
        """head.py's name for :meth:`expand_prototype`."""
        return self.expand_prototype(class_idx, new_proto)


class Head(_Compat):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: Any) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)
        old = self.proto_manager
        self.proto_manager = Manager(
            old.num_classes, old.emb_dim, int(old.protos_per_class[0]), old.max_prototypes, old.momentum
        )


def settle(model: Any) -> None:
    """A training loop's use of the manager (head.py's API) after each optimiser step."""
    model.head.proto_manager.apply_momentum_updates()


__all__ = ["Head", "HeadOptimal", "settle"]
