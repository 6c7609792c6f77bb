"""A compatibility ``Head`` whose manager keeps head.py's API, less its two cache buffers.

The manager (head_optimal.py's, with ``var_threshold``, ``expand_prototypes`` and
``apply_momentum_updates`` added back) has every method and attribute of head.py's
``DynamicPrototypeManager``; only the buffers ``momentum_cache`` and ``cache_count`` are
gone (the EMA applies at once). The file's own training helper, a caller, uses
``expand_prototypes`` and ``apply_momentum_updates``. Buffers are state, judged by
``compat.checkpoint`` (which fails: head.py's cache keys are unexpected):
``compat.manager-api`` must pass.
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

    def apply_momentum_updates(self) -> None:
        """Nothing pending: the momentum update applies at once."""


class Head(_Compat):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: Any) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)
        old = self.proto_manager
        self.proto_manager = Manager(
            old.num_classes, old.emb_dim, int(old.protos_per_class[0]), old.max_prototypes, old.momentum
        )


def grow_and_settle(model: Any, class_idx: int, feature: torch.Tensor) -> bool:
    """A training loop's use of the manager (head.py's API): add a prototype, apply the EMA."""
    added = bool(model.head.proto_manager.expand_prototypes(class_idx, feature))
    model.head.proto_manager.apply_momentum_updates()
    return added


__all__ = ["Head", "HeadOptimal", "grow_and_settle"]
