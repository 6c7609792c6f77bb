"""A head that adds a position code along the one sequence of all the batch's patches.

The batch is flattened into one sequence (as in the references), and a sinusoidal position
code over it makes the logits depend on where a sample sits: ``shapes.permutation`` must
fail.
"""

from __future__ import annotations

import math

import torch

from headaudit.reference.head_optimal import HeadOptimal as _Base


def _positions(length: int, dim: int) -> torch.Tensor:
    index = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(1000.0) / dim))
    code = torch.zeros(length, dim)
    code[:, 0::2] = torch.sin(index * freq)
    code[:, 1::2] = torch.cos(index * freq[: dim // 2])
    return code


class HeadOptimal(_Base):
    def forward_features(self, pool_img_features: torch.Tensor, img_features: torch.Tensor):  # type: ignore[no-untyped-def, override]
        batch, patches, _ = pool_img_features.shape
        if img_features.dim() == 3:
            img_features = img_features.mean(dim=1)
        img_proj = self.proj(img_features)
        pool_proj = self.proj(pool_img_features).reshape(1, batch * patches, -1)
        img_seq = pool_proj + _positions(batch * patches, pool_proj.shape[-1]).to(pool_proj.dtype)
        protos = self.proto_manager.get_prototypes().unsqueeze(0)
        updated, attn_weights = self.mixed_attn(protos, img_seq)
        class_emb = self.ffn_norm(updated + self.ffn(updated)).expand(batch, -1, -1)
        similarities = self.compute_similarities(img_proj, class_emb)
        return similarities, class_emb, attn_weights, img_proj
