"""protos_per_class starts at max_prototypes while valid_mask marks num_prototypes rows per class.

Breaks manager.layout (the three descriptions disagree); expanding checks the same
agreement after each call, so manager.expand fails too.
"""

from __future__ import annotations

import torch

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        pm = self.proto_manager
        pm.protos_per_class.copy_(torch.full_like(pm.protos_per_class, pm.max_prototypes))
