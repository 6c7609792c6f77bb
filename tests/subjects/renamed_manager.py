"""A user copy that renamed ``proto_manager`` to ``prototype_bank`` throughout.

The training wrapper detects multi-prototype heads by the attribute name
``proto_manager``, so it misses this head and would train it with its own loss function:
``trainer.detect`` must fail. Checks that need ``proto_manager`` are n/a, naming it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        self.prototype_bank = self.proto_manager
        del self.proto_manager

    def forward_features(self, pool_img_features: torch.Tensor, img_features: torch.Tensor):  # type: ignore[no-untyped-def, override]
        batch, patches, _ = pool_img_features.shape
        if img_features.dim() == 3:
            img_features = img_features.mean(dim=1)
        img_proj = self.proj(img_features)
        img_seq = self.proj(pool_img_features).reshape(1, batch * patches, -1)
        updated, attn_weights = self.mixed_attn(self.prototype_bank.get_prototypes().unsqueeze(0), img_seq)
        class_emb = self.ffn_norm(updated + self.ffn(updated)).expand(batch, -1, -1)
        return self.compute_similarities(img_proj, class_emb), class_emb, attn_weights, img_proj

    def aggregate_similarities(self, similarities: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(similarities.size(0), self.num_classes)
        for c, (start, end) in enumerate(self.prototype_bank.get_prototype_indices()):
            out[:, c] = similarities[:, c, : end - start].max(dim=-1).values
        return out

    def forward(self, pool_img_features: torch.Tensor, img_features: torch.Tensor, labels=None):  # type: ignore[no-untyped-def, override]
        similarities, _, _, _ = self.forward_features(pool_img_features, img_features)
        logits = self.aggregate_similarities(similarities) * self.temperature
        if self.training and labels is not None:
            bank = self.prototype_bank
            ce = F.cross_entropy(logits, labels)
            terms = self.proto_loss_fn(
                similarities, labels, bank.prototypes, bank.get_prototype_indices(), bank.valid_mask
            )
            total = ce + terms["proto_loss"]
            return logits, total, {"ce_loss": ce, **terms, "total_loss": total}
        return logits, torch.tensor(0.0), {}
