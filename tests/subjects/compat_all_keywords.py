"""A file whose compatibility ``Head`` accepts every keyword of the original constructor.

``max_prototypes`` is honoured and ``var_threshold`` kept on the manager, where the
original has it: ``compat.constructor`` must pass (the manager, checkpoint and forward
differ from head.py's as in head_optimal.py).
"""

from __future__ import annotations

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
        **kwargs: object,
    ) -> None:
        HeadOptimal.__init__(
            self,
            num_classes,
            emb_dim,
            num_heads,
            img_feat_dim,
            num_prototypes=num_prototypes,
            max_prototypes=max_prototypes,
            dropout_rate=dropout_rate,
            **kwargs,  # type: ignore[arg-type]
        )
        self.proto_manager.var_threshold = var_threshold
