"""A head that builds fine but whose forward raises: checks that run the head report error;
the static checks, which read the source only, still judge it."""

from __future__ import annotations

import torch

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def forward(self, pool_img_features: torch.Tensor, img_features: torch.Tensor, labels=None):  # type: ignore[no-untyped-def, override]
        raise RuntimeError("forward is broken on purpose")


class ReadsThenRaises(_Base):
    """Reads its inputs on the host, then raises: not a working head, yet the static checks
    read its source and find the host read on its forward path (static.host-syncs fails)."""

    def forward(self, pool_img_features: torch.Tensor, img_features: torch.Tensor, labels=None):  # type: ignore[no-untyped-def, override]
        scale = float(img_features.abs().max().item())
        raise RuntimeError(f"forward is broken on purpose (after reading {scale:.3g} on the host)")
