"""Reference copy of the original multi-prototype head (``head.py``), defects included.

This file reproduces the behaviour described in ``shared/spec/BEHAVIOR.md`` sections 1-3
so that the audit can be proven on it. It is deliberately NOT fixed: every reproduced
defect carries a comment naming the headaudit check that catches it. It is
self-contained (torch only) so it can be loaded by path, like a user's own copy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BalancedPrototypeLoss",
    "DynamicPrototypeManager",
    "Head",
    "MixedAttentionBlock",
]


class DynamicPrototypeManager(nn.Module):
    """Per-class prototype rows with a cache/count "momentum" update (not an EMA)."""

    def __init__(
        self,
        num_classes: int,
        emb_dim: int,
        num_prototypes: int = 5,
        max_prototypes: int = 10,
        var_threshold: float = 0.5,
        momentum: float = 0.9,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.emb_dim = emb_dim
        self.max_prototypes = max_prototypes
        self.var_threshold = var_threshold
        self.momentum = momentum
        total = num_classes * max_prototypes
        # Defect (ema.initial-norm): xavier rows are not unit-norm (about 0.9-1.4).
        self.prototypes = nn.Parameter(torch.empty(total, emb_dim))
        nn.init.xavier_uniform_(self.prototypes)
        self.register_buffer("protos_per_class", torch.full((num_classes,), num_prototypes, dtype=torch.long))
        valid_mask = torch.zeros(total, dtype=torch.bool)
        for c in range(num_classes):
            start = c * max_prototypes
            valid_mask[start : start + num_prototypes] = True
        self.register_buffer("valid_mask", valid_mask)
        self.register_buffer("momentum_cache", torch.zeros(total, emb_dim))
        self.register_buffer("cache_count", torch.zeros(total))

    def get_prototypes(self) -> torch.Tensor:
        """All rows, L2-normalised (invalid rows included)."""
        return F.normalize(self.prototypes, p=2, dim=-1)

    def get_prototype_indices(self) -> list[tuple[int, int]]:
        """``(start, end)`` of each class's valid rows; one host read per class."""
        indices = []
        for c in range(self.num_classes):
            start = c * self.max_prototypes
            # Defect (static.host-syncs): .item() reads a device value on the host.
            indices.append((start, start + int(self.protos_per_class[c].item())))
        return indices

    @torch.no_grad()
    def expand_prototypes(self, class_idx: int, new_proto: torch.Tensor) -> bool:
        """Add ``normalize(new_proto)`` as the class's next row; False when full."""
        k = int(self.protos_per_class[class_idx].item())
        if k >= self.max_prototypes:
            return False
        row = class_idx * self.max_prototypes + k
        # Defect (static.data-writes): the parameter is written through .data.
        self.prototypes.data[row] = F.normalize(new_proto, p=2, dim=-1)
        self.protos_per_class[class_idx] += 1
        self.valid_mask[row] = True
        return True

    @torch.no_grad()
    def momentum_update(self, proto_idx: int, new_value: torch.Tensor) -> None:
        """Accumulate ``new_value`` into the cache; the row changes only on apply."""
        m = self.momentum
        self.momentum_cache[proto_idx] = m * self.momentum_cache[proto_idx] + (1 - m) * new_value
        self.cache_count[proto_idx] += 1

    @torch.no_grad()
    def apply_momentum_updates(self) -> None:
        """Replace each updated valid row by its normalised cache average, then reset.

        Defect (ema.standard): the previous row has weight zero, so after one update the
        row is exactly ``normalize(new_value)`` whatever the momentum.
        Defect (ema.unit-norm): two updates can cancel in the cache, leaving a zero row.
        """
        for idx in range(self.prototypes.size(0)):
            if self.cache_count[idx] > 0 and self.valid_mask[idx]:
                averaged = self.momentum_cache[idx] / self.cache_count[idx]
                self.prototypes.data[idx] = F.normalize(averaged, p=2, dim=-1)
        self.momentum_cache.zero_()
        self.cache_count.zero_()


class MixedAttentionBlock(nn.Module):
    """Cross, self and local-self attention, fused by an element-wise sigmoid gate."""

    def __init__(self, emb_dim: int, num_heads: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.cross_attn = nn.MultiheadAttention(emb_dim, num_heads, dropout=dropout, batch_first=True)
        self.self_attn = nn.MultiheadAttention(emb_dim, num_heads, dropout=dropout, batch_first=True)
        self.local_self_attn = nn.MultiheadAttention(emb_dim, max(1, num_heads // 2), dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(emb_dim)
        self.norm2 = nn.LayerNorm(emb_dim)
        self.norm3 = nn.LayerNorm(emb_dim)
        self.dropout = nn.Dropout(dropout)
        self.gate = nn.Sequential(nn.Linear(3 * emb_dim, emb_dim), nn.LayerNorm(emb_dim), nn.Sigmoid())

    def forward(self, proto: torch.Tensor, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cross, attn_weights = self.cross_attn(proto, img, img)
        cross_out = self.norm1(proto + self.dropout(cross))
        self_att, _ = self.self_attn(cross_out, cross_out, cross_out)
        self_out = self.norm2(cross_out + self.dropout(self_att))
        local, _ = self.local_self_attn(self_out, self_out, self_out)
        local_out = self.norm3(self_out + self.dropout(local))
        gate = self.gate(torch.cat([cross_out, self_out, local_out], dim=-1))
        # Defect (gate.convex): the output mixes local_out with the block INPUT; cross_out
        # and self_out reach it only through the gate.
        updated = gate * local_out + (1 - gate) * proto
        return updated, attn_weights


class BalancedPrototypeLoss(nn.Module):
    """Cluster, separation, diversity and contrastive terms, all computed inline."""

    def __init__(
        self,
        num_classes: int,
        margin: float = 0.3,
        clst_scale: float = 0.8,
        sep_scale: float = 0.08,
        div_scale: float = 0.01,
        contrastive_scale: float = 0.1,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.margin = margin
        self.clst_scale = clst_scale
        self.sep_scale = sep_scale
        self.div_scale = div_scale
        self.contrastive_scale = contrastive_scale

    def forward(
        self,
        similarities: torch.Tensor,
        labels: torch.Tensor,
        prototypes: torch.Tensor,
        proto_indices: list[tuple[int, int]],
        valid_mask: torch.Tensor,
        max_prototypes: int,
    ) -> dict[str, torch.Tensor]:
        distances = 1 - similarities
        device = similarities.device

        # Cluster: weight 1/sqrt(n_c) per present class, from the class's own count.
        # Defect (static.class-loops, static.host-syncs): a Python loop over classes with
        # a host read of `mask.sum() == 0` per class.
        # As the original, every accumulator starts as the Python number 0.0: a term with
        # nothing to measure (no class present, no class with k_c > 1) stays a float.
        cluster_loss: torch.Tensor | float = 0.0
        present = 0
        for c in range(self.num_classes):
            mask = labels == c
            if mask.sum() == 0:
                continue
            start, end = proto_indices[c]
            nearest = distances[mask, c, : end - start].min(dim=-1).values
            weight = 1.0 / torch.sqrt(mask.sum().float() + 1e-6)
            cluster_loss = cluster_loss + weight * nearest.mean()
            present += 1
        if present > 0:
            cluster_loss = cluster_loss / present

        # Separation: nearest prototype of any other class. Defect (edges.small-batches):
        # classes with zero prototypes are kept as empty slices, so `min` raises when
        # every other class is empty. Defect (static.class-loops): nested class loop.
        sep_loss: torch.Tensor | float = 0.0
        present = 0
        for c in range(self.num_classes):
            mask = labels == c
            if mask.sum() == 0:
                continue
            others = []
            for o in range(self.num_classes):
                if o == c:
                    continue
                start, end = proto_indices[o]
                others.append(distances[mask, o, : end - start])
            nearest_other = torch.cat(others, dim=-1).min(dim=-1).values
            sep_loss = sep_loss + F.relu(self.margin - nearest_other).mean()
            present += 1
        if present > 0:
            sep_loss = sep_loss / present

        # Diversity: penalise same-class prototype similarity above 0.5.
        normed = F.normalize(prototypes, p=2, dim=-1)
        div_loss: torch.Tensor | float = 0.0
        counted = 0
        for start, end in proto_indices:
            k = end - start
            if k > 1:
                gram = normed[start:end] @ normed[start:end].t()
                off_diag = ~torch.eye(k, dtype=torch.bool, device=device)
                div_loss = div_loss + F.relu(gram[off_diag] - 0.5).mean()
                counted += 1
        if counted > 0:
            div_loss = div_loss / counted

        # Contrastive. Defect (contrastive.pairs, contrastive.value): the mean over ALL
        # off-diagonal pairs, same-class pairs included. Defect (contrastive.tiny): with
        # n <= 1 valid rows the mean is over an empty set, i.e. NaN.
        valid = F.normalize(prototypes[valid_mask], p=2, dim=-1)
        n = valid.size(0)
        gram = valid @ valid.t()
        off_diag = ~torch.eye(n, dtype=torch.bool, device=device)
        contrastive_loss = gram[off_diag].mean()

        terms = {
            "cluster_loss": self.clst_scale * cluster_loss,
            "sep_loss": self.sep_scale * sep_loss,
            "div_loss": self.div_scale * div_loss,
            "contrastive_loss": self.contrastive_scale * contrastive_loss,
        }
        terms["proto_loss"] = terms["cluster_loss"] + terms["sep_loss"] + terms["div_loss"] + terms["contrastive_loss"]
        return terms


class Head(nn.Module):
    """The original multi-prototype classification head."""

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
        momentum: float = 0.9,
        margin: float = 0.3,
        temperature: float = 10.0,
        clst_scale: float = 0.8,
        sep_scale: float = 0.08,
        div_scale: float = 0.01,
        contrastive_scale: float = 0.1,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.emb_dim = emb_dim
        self.max_prototypes = max_prototypes
        self.proj = nn.Sequential(nn.Linear(img_feat_dim, emb_dim), nn.LayerNorm(emb_dim), nn.Dropout(dropout_rate))
        self.proto_manager = DynamicPrototypeManager(
            num_classes, emb_dim, num_prototypes, max_prototypes, var_threshold, momentum
        )
        self.mixed_attn = MixedAttentionBlock(emb_dim, num_heads, dropout_rate)
        self.ffn = nn.Sequential(
            nn.Linear(emb_dim, 4 * emb_dim),
            nn.GELU(),
            nn.Dropout(dropout_rate),
            nn.Linear(4 * emb_dim, emb_dim),
            nn.Dropout(dropout_rate),
        )
        self.ffn_norm = nn.LayerNorm(emb_dim)
        self.temperature = nn.Parameter(torch.tensor(temperature))
        self.log_sigma_ce = nn.Parameter(torch.zeros(1))
        self.log_sigma_proto = nn.Parameter(torch.zeros(1))
        self.proto_loss_fn = BalancedPrototypeLoss(
            num_classes, margin, clst_scale, sep_scale, div_scale, contrastive_scale
        )

    def compute_similarities(self, img_proj: torch.Tensor, class_emb: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of each sample with its ``P`` class embeddings, ``(B, C, M)``."""
        sims = F.cosine_similarity(img_proj.unsqueeze(1), class_emb, dim=-1)
        return sims.view(sims.size(0), self.num_classes, self.max_prototypes)

    def forward_features(
        self, pool_img_features: torch.Tensor, img_features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Defect (shapes.bad-input): a 2-D input fails here with "not enough values to unpack".
        B, N, _C = pool_img_features.shape
        if img_features.dim() == 3:
            img_features = img_features.mean(dim=1)
        img_proj = self.proj(img_features)
        pool_proj = self.proj(pool_img_features)
        # Defect (shapes.batch-independence): the patches of the WHOLE batch form one
        # sequence, so every sample's logits depend on the other samples.
        img_seq = pool_proj.reshape(1, B * N, -1)
        protos = self.proto_manager.get_prototypes().unsqueeze(0)
        updated, attn_weights = self.mixed_attn(protos, img_seq)
        class_emb = self.ffn_norm(updated + self.ffn(updated))
        class_emb = class_emb.expand(B, -1, -1)
        similarities = self.compute_similarities(img_proj, class_emb)
        return similarities, class_emb, attn_weights

    def aggregate_similarities(self, similarities: torch.Tensor) -> torch.Tensor:
        """Max similarity over each class's first ``k_c`` prototypes, ``(B, C)``."""
        # Defect (shapes.dtype): a float32 buffer whatever the input dtype.
        # Defect (edges.zero-prototypes): a class with k_c == 0 fails in `max`.
        out = torch.zeros(similarities.size(0), self.num_classes, device=similarities.device)
        for c, (start, end) in enumerate(self.proto_manager.get_prototype_indices()):
            out[:, c] = similarities[:, c, : end - start].max(dim=-1).values
        return out

    def forward(
        self,
        pool_img_features: torch.Tensor,
        img_features: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        similarities, _, _ = self.forward_features(pool_img_features, img_features)
        logits = self.aggregate_similarities(similarities) * self.temperature
        if self.training and labels is not None:
            ce = F.cross_entropy(logits, labels)
            loss_dict = self.proto_loss_fn(
                similarities,
                labels,
                self.proto_manager.prototypes,
                self.proto_manager.get_prototype_indices(),
                self.proto_manager.valid_mask,
                self.max_prototypes,
            )
            proto_loss = loss_dict["proto_loss"]
            total = (
                torch.exp(-self.log_sigma_ce) * ce
                + self.log_sigma_ce
                + torch.exp(-self.log_sigma_proto) * proto_loss
                + self.log_sigma_proto
            )
            return logits, total
        return logits, torch.tensor(0.0)
