"""A compatibility ``Head`` that accepts ``max_prototypes`` but ignores a given value.

It takes every keyword of head.py's constructor, yet builds ``2 * num_prototypes`` rows
per class whatever ``max_prototypes`` says (head_optimal.py's choice, with the keyword now
swallowed instead of refused). At the default (``max_prototypes=10``, ``num_prototypes=5``)
the two agree, so only a read-back at another value shows it: ``compat.constructor`` must
fail naming ``max_prototypes``.
"""

from __future__ import annotations

from typing import Any

from headaudit.reference.head_optimal import Head as _Compat
from headaudit.reference.head_optimal import HeadOptimal


class Head(_Compat):
    def __init__(
        self,
        num_classes: int,
        emb_dim: int,
        num_heads: int,
        img_feat_dim: int,
        num_prototypes: int = 5,
        max_prototypes: int = 10,
        dropout_rate: float = 0.1,
        var_threshold: float = 0.5,
        **kwargs: Any,
    ) -> None:
        del max_prototypes  # accepted, not applied: the capacity is 2 * num_prototypes
        super().__init__(
            num_classes, emb_dim, num_heads, img_feat_dim, num_prototypes=num_prototypes, dropout_rate=dropout_rate,
            **kwargs,
        )  # fmt: skip
        self.proto_manager.var_threshold = var_threshold


__all__ = ["Head", "HeadOptimal"]
