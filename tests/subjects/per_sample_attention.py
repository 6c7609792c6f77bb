"""head_optimal.py with the mixed attention run per sample, over that sample's patches only.

Each sample's class embeddings come from its own patches, so a sample's logits do not
depend on the rest of the batch: ``shapes.batch-independence`` must pass, and
``attn.wiring`` recomputes the block per sample and passes. ``RawQueries`` keeps the
per-sample scope but feeds the block the prototype rows unnormalised: it must fail there.
"""

from __future__ import annotations

import torch

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def forward_features(self, pool_img_features: torch.Tensor, img_features: torch.Tensor):  # type: ignore[no-untyped-def, override]
        batch = pool_img_features.shape[0]
        if img_features.dim() == 3:
            img_features = img_features.mean(dim=1)
        img_proj = self.proj(img_features)
        pool_proj = self.proj(pool_img_features)
        protos = self._queries().unsqueeze(0).expand(batch, -1, -1)
        updated, attn_weights = self.mixed_attn(protos, pool_proj)  # one sequence per sample
        class_emb = self.ffn_norm(updated + self.ffn(updated))
        similarities = self.compute_similarities(img_proj, class_emb)
        return similarities, class_emb, attn_weights, img_proj

    def _queries(self) -> torch.Tensor:
        return self.proto_manager.get_prototypes()


class RawQueries(HeadOptimal):
    def _queries(self) -> torch.Tensor:
        return self.proto_manager.prototypes
