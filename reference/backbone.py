"""A tiny stand-in for the backbone of ``projects/mae_lite/models_mae.py``.

``shared/spec/BEHAVIOR.md`` section 5: the audit is about the call sites of the head, not
the backbone, so this module reproduces only the backbone's interface: images
``(B, 3, H, W)`` in, a global feature ``(B, 1, D)`` and patch features ``(B, 49, D)`` (a
7x7 map) out. It carries no defect of its own and is deliberately plain: no batch
statistics (no BatchNorm), so a sample's features never depend on the rest of its batch
and whatever batch coupling the audit measures comes from the head. It seeds nothing:
its weights are deterministic given torch's global seed. Torch only, like the heads.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TinyBackbone"]


class TinyBackbone(nn.Module):
    """Stand-in backbone: a strided conv, 7x7 average pooling and a LayerNorm (no defects)."""

    def __init__(self, feat_dim: int = 16, in_chans: int = 3, grid: int = 7) -> None:
        super().__init__()
        self.feat_dim = feat_dim
        self.grid = grid
        self.patch_embed = nn.Conv2d(in_chans, feat_dim, kernel_size=3, stride=2, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.norm = nn.LayerNorm(feat_dim)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features (B, 1, D), pooled (B, grid*grid, D))`` for images ``(B, C, H, W)``."""
        fmap = self.pool(self.patch_embed(images))  # (B, D, grid, grid)
        pooled = self.norm(fmap.flatten(2).transpose(1, 2))  # (B, grid*grid, D)
        features = pooled.mean(dim=1, keepdim=True)  # (B, 1, D)
        return features, pooled
