"""A head that trains eagerly but whose training step cannot be compiled (for the bench's compiled row).

``SyncFreeHead`` (tests/subjects/sync_free_head.py) traces as one graph without breaks.
``CompileRefuses`` is that head with one line more: its forward raises while
``torch.compile`` traces it. Eager steps, the op counts and every other measurement
run as for ``SyncFreeHead``; ``torch.compile(head, fullgraph=True)`` raises, so its
compiled row must be ``error`` with dynamo's message, and the rest of the bench must
carry on.
"""

from __future__ import annotations

import torch
from sync_free_head import SyncFreeHead

__all__ = ["CompileRefuses"]


class CompileRefuses(SyncFreeHead):
    def forward(
        self,
        pool_img_features: torch.Tensor,
        img_features: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        if torch.compiler.is_compiling():
            raise RuntimeError("this head refuses to be compiled")
        return super().forward(pool_img_features, img_features, labels)
