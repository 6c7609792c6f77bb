"""A compatibility ``Head`` that accepts ``var_threshold`` but does not pass it on to the manager.

Its manager has head.py's ``var_threshold`` attribute, set to the manager's own default
(0.5), and the ``Head`` takes the keyword without handing it over. At the default the two
agree, so only a read-back at another value shows it: ``compat.constructor`` must fail
naming ``var_threshold``.
"""

from __future__ import annotations

from typing import Any

from headaudit.reference.head_optimal import DynamicPrototypeManagerOptimal, HeadOptimal
from headaudit.reference.head_optimal import Head as _Compat


class Manager(DynamicPrototypeManagerOptimal):
    def __init__(self, *args: Any, var_threshold: float = 0.5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.var_threshold = var_threshold


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
        HeadOptimal.__init__(
            self, num_classes, emb_dim, num_heads, img_feat_dim, num_prototypes=num_prototypes,
            max_prototypes=max_prototypes, dropout_rate=dropout_rate, **kwargs,
        )  # fmt: skip
        old = self.proto_manager
        # var_threshold is accepted above but not handed over: the manager keeps its default
        self.proto_manager = Manager(old.num_classes, old.emb_dim, num_prototypes, max_prototypes, old.momentum)


__all__ = ["Head", "HeadOptimal"]
