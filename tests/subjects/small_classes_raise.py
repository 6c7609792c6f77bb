"""A head that refuses fewer than three classes: below that its constructor raises.

A check that meets this exception on the way to its measurement must report `error` with
the message, never `fail`.
"""

from __future__ import annotations

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        if num_classes < 3:
            raise ValueError(f"this head needs at least 3 classes, got {num_classes}")
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
