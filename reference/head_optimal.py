"""Reference copy of the "fixed" multi-prototype head (``head_optimal.py``), defects included.

This file reproduces the behaviour described in ``shared/spec/BEHAVIOR.md`` sections 1, 2
and 4 so that the audit can be proven on it. It is deliberately NOT fixed further:
every reproduced defect carries a comment naming the headaudit check that catches it.
It is self-contained (torch only) so it can be loaded by path, like a user's own copy.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DynamicPrototypeManagerOptimal",
    "Head",
    "HeadOptimal",
    "MixedAttentionBlockOptimal",
    "OptimalPrototypeLoss",
    "has_multi_prototype_head",
]


class DynamicPrototypeManagerOptimal(nn.Module):
    """Per-class prototype rows with an immediate, normalised momentum update."""

    def __init__(
        self,
        num_classes: int,
        emb_dim: int,
        num_prototypes: int = 5,
        max_prototypes: int = 10,
        momentum: float = 0.9,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.emb_dim = emb_dim
        self.max_prototypes = max_prototypes
        self.momentum = momentum
        total = num_classes * max_prototypes
        # Defect (ema.initial-norm): xavier rows are not unit-norm, so the first EMA step
        # weighs the old row by m * |p| instead of m.
        self.prototypes = nn.Parameter(torch.empty(total, emb_dim))
        nn.init.xavier_uniform_(self.prototypes)
        self.register_buffer("protos_per_class", torch.full((num_classes,), num_prototypes, dtype=torch.long))
        valid_mask = torch.zeros(total, dtype=torch.bool)
        for c in range(num_classes):
            start = c * max_prototypes
            valid_mask[start : start + num_prototypes] = True
        self.register_buffer("valid_mask", valid_mask)

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
    def expand_prototype(self, class_idx: int, new_proto: torch.Tensor) -> bool:
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
        """``p <- normalize(m * p + (1 - m) * normalize(v))``, applied at once.

        Defect (ema.unit-norm): when ``m * p == -(1 - m) * normalize(v)`` the sum is the
        zero vector and the "normalised" row stays zero.
        """
        new_value_norm = F.normalize(new_value, p=2, dim=-1)
        m = self.momentum
        self.prototypes.data[proto_idx] = m * self.prototypes.data[proto_idx] + (1 - m) * new_value_norm
        self.prototypes.data[proto_idx] = F.normalize(self.prototypes.data[proto_idx], p=2, dim=-1)


class MixedAttentionBlockOptimal(nn.Module):
    """Cross, self and light attention, fused by a softmax over three branch weights."""

    def __init__(self, emb_dim: int, num_heads: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.cross_attn = nn.MultiheadAttention(emb_dim, num_heads, dropout=dropout, batch_first=True)
        self.self_attn = nn.MultiheadAttention(emb_dim, num_heads, dropout=dropout, batch_first=True)
        self.light_attn = nn.MultiheadAttention(emb_dim, max(1, num_heads // 2), dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(emb_dim)
        self.norm2 = nn.LayerNorm(emb_dim)
        self.norm3 = nn.LayerNorm(emb_dim)
        self.dropout = nn.Dropout(dropout)
        self.gate = nn.Sequential(nn.Linear(3 * emb_dim, emb_dim), nn.GELU(), nn.Linear(emb_dim, 3))

    def forward(self, proto: torch.Tensor, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cross, attn_weights = self.cross_attn(proto, img, img)
        cross_out = self.norm1(proto + self.dropout(cross))
        self_att, _ = self.self_attn(cross_out, cross_out, cross_out)
        self_out = self.norm2(cross_out + self.dropout(self_att))
        light, _ = self.light_attn(self_out, self_out, self_out)
        light_out = self.norm3(self_out + self.dropout(light))
        gate_weights = F.softmax(self.gate(torch.cat([cross_out, self_out, light_out], dim=-1)), dim=-1)
        updated = (
            gate_weights[..., 0:1] * cross_out + gate_weights[..., 1:2] * self_out + gate_weights[..., 2:3] * light_out
        )
        return updated, attn_weights


class OptimalPrototypeLoss(nn.Module):
    """Cluster, separation, diversity and same-class-masked contrastive terms."""

    def __init__(
        self,
        num_classes: int,
        max_prototypes: int,
        margin: float = 0.3,
        clst_scale: float = 0.8,
        sep_scale: float = 0.08,
        div_scale: float = 0.01,
        contrastive_scale: float = 0.05,
        use_class_balanced: bool = False,
        cb_beta: float = 0.9999,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.max_prototypes = max_prototypes
        self.margin = margin
        self.clst_scale = clst_scale
        self.sep_scale = sep_scale
        self.div_scale = div_scale
        self.contrastive_scale = contrastive_scale
        self.use_class_balanced = use_class_balanced
        self.cb_beta = cb_beta

    def _get_class_weight(self, class_count: torch.Tensor) -> torch.Tensor:
        """Per-class weights from this batch's counts, normalised to sum to ``num_classes``.

        Defect (weights.absent-classes): an absent class (count 0) gets the largest
        weight, which shrinks the normalised weights of the classes that are present.
        """
        if self.use_class_balanced:
            weights = (1.0 - self.cb_beta) / (1.0 - torch.pow(self.cb_beta, class_count) + 1e-6)
        else:
            weights = 1.0 / torch.sqrt(class_count + 1e-6)
        return weights / weights.sum() * self.num_classes

    def compute_cluster_loss(
        self, distances: torch.Tensor, labels: torch.Tensor, proto_indices: list[tuple[int, int]]
    ) -> torch.Tensor:
        class_count = torch.bincount(labels, minlength=self.num_classes).float()
        weights = self._get_class_weight(class_count)
        weighted = torch.tensor(0.0, device=distances.device)
        valid_classes = 0
        # Defect (static.class-loops, static.host-syncs): loop with a host read per class.
        for c, (start, end) in enumerate(proto_indices):
            mask = labels == c
            if mask.sum() == 0:
                continue
            nearest = distances[mask, c, : end - start].min(dim=-1).values
            weighted = weighted + weights[c] * nearest.mean()
            valid_classes += 1
        if valid_classes > 0:
            return weighted / valid_classes
        return torch.tensor(0.0, device=distances.device)

    def compute_separation_loss(
        self, distances: torch.Tensor, labels: torch.Tensor, proto_indices: list[tuple[int, int]]
    ) -> torch.Tensor | float:
        # As the original: a plain 0.0 accumulator, so with no class counted the term is
        # the Python number 0.0, not a tensor.
        total: torch.Tensor | float = 0.0
        counted = 0
        # Defect (static.class-loops): a class loop nested in a class loop.
        for c in range(self.num_classes):
            mask = labels == c
            if mask.sum() == 0:
                continue
            others = []
            for o, (start, end) in enumerate(proto_indices):
                if o == c or end - start == 0:
                    continue
                others.append(distances[mask, o, : end - start])
            if not others:
                continue
            nearest_other = torch.cat(others, dim=-1).min(dim=-1).values
            total = total + F.relu(self.margin - nearest_other).mean()
            counted += 1
        if counted > 0:
            return total / counted
        return total

    def compute_diversity_loss(
        self, prototypes: torch.Tensor, proto_indices: list[tuple[int, int]]
    ) -> torch.Tensor | float:
        normed = F.normalize(prototypes, p=2, dim=-1)
        total: torch.Tensor | float = 0.0  # the Python number 0.0 when no class has k_c > 1
        counted = 0
        for start, end in proto_indices:
            k = end - start
            if k > 1:
                gram = normed[start:end] @ normed[start:end].t()
                off_diag = ~torch.eye(k, dtype=torch.bool, device=prototypes.device)
                total = total + F.relu(gram[off_diag] - 0.5).mean()
                counted += 1
        if counted > 0:
            return total / counted
        return total

    def compute_contrastive_loss(
        self, prototypes: torch.Tensor, valid_mask: torch.Tensor, proto_indices: list[tuple[int, int]]
    ) -> torch.Tensor:
        """Mean similarity over different-class pairs of valid prototypes (the fix)."""
        valid_protos = prototypes[valid_mask]
        n = valid_protos.size(0)
        if n <= 1:
            return torch.tensor(0.0, device=prototypes.device)
        valid_protos = F.normalize(valid_protos, p=2, dim=-1)
        sim_matrix = valid_protos @ valid_protos.t()
        same_class_mask = torch.zeros(n, n, dtype=torch.bool, device=prototypes.device)
        idx = 0
        for start, end in proto_indices:
            num_valid = end - start
            stop = min(idx + num_valid, n)
            same_class_mask[idx:stop, idx:stop] = True
            idx = stop
        eye = torch.eye(n, dtype=torch.bool, device=prototypes.device)
        diff_class_mask = ~same_class_mask & ~eye
        if diff_class_mask.sum() == 0:
            return torch.tensor(0.0, device=prototypes.device)
        return sim_matrix[diff_class_mask].mean()

    def forward(
        self,
        similarities: torch.Tensor,
        labels: torch.Tensor,
        prototypes: torch.Tensor,
        proto_indices: list[tuple[int, int]],
        valid_mask: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        distances = 1 - similarities
        terms = {
            "cluster_loss": self.clst_scale * self.compute_cluster_loss(distances, labels, proto_indices),
            "sep_loss": self.sep_scale * self.compute_separation_loss(distances, labels, proto_indices),
            "div_loss": self.div_scale * self.compute_diversity_loss(prototypes, proto_indices),
            "contrastive_loss": self.contrastive_scale
            * self.compute_contrastive_loss(prototypes, valid_mask, proto_indices),
        }
        terms["proto_loss"] = terms["cluster_loss"] + terms["sep_loss"] + terms["div_loss"] + terms["contrastive_loss"]
        return terms


class HeadOptimal(nn.Module):
    """The "fixed" multi-prototype head; returns a loss breakdown as a third value."""

    def __init__(
        self,
        num_classes: int,
        emb_dim: int,
        num_heads: int,
        img_feat_dim: int,
        num_prototypes: int = 5,
        max_prototypes: int = 10,
        dropout_rate: float = 0.1,
        momentum: float = 0.9,
        margin: float = 0.3,
        temperature: float = 10.0,
        clst_scale: float = 0.8,
        sep_scale: float = 0.08,
        div_scale: float = 0.01,
        contrastive_scale: float = 0.05,
        use_class_balanced: bool = False,
        cb_beta: float = 0.9999,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.emb_dim = emb_dim
        self.max_prototypes = max_prototypes
        self.proj = nn.Sequential(nn.Linear(img_feat_dim, emb_dim), nn.LayerNorm(emb_dim), nn.Dropout(dropout_rate))
        self.proto_manager = DynamicPrototypeManagerOptimal(
            num_classes, emb_dim, num_prototypes, max_prototypes, momentum
        )
        self.mixed_attn = MixedAttentionBlockOptimal(emb_dim, num_heads, dropout_rate)
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
        self.proto_loss_fn = OptimalPrototypeLoss(
            num_classes,
            max_prototypes,
            margin=margin,
            clst_scale=clst_scale,
            sep_scale=sep_scale,
            div_scale=div_scale,
            contrastive_scale=contrastive_scale,
            use_class_balanced=use_class_balanced,
            cb_beta=cb_beta,
        )

    def compute_similarities(self, img_proj: torch.Tensor, class_emb: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of each sample with its ``P`` class embeddings, ``(B, C, M)``."""
        sims = F.cosine_similarity(img_proj.unsqueeze(1), class_emb, dim=-1)
        return sims.view(sims.size(0), self.num_classes, self.max_prototypes)

    def forward_features(
        self, pool_img_features: torch.Tensor, img_features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
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
        return similarities, class_emb, attn_weights, img_proj

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
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        similarities, _, _, _ = self.forward_features(pool_img_features, img_features)
        logits = self.aggregate_similarities(similarities) * self.temperature
        if self.training and labels is not None:
            ce = F.cross_entropy(logits, labels)
            loss_dict = self.proto_loss_fn(
                similarities,
                labels,
                self.proto_manager.prototypes,
                self.proto_manager.get_prototype_indices(),
                self.proto_manager.valid_mask,
            )
            proto_loss = loss_dict["proto_loss"]
            total = (
                torch.exp(-self.log_sigma_ce) * ce
                + self.log_sigma_ce
                + torch.exp(-self.log_sigma_proto) * proto_loss
                + self.log_sigma_proto
            )
            return logits, total, {"ce_loss": ce, **loss_dict, "total_loss": total}
        return logits, torch.tensor(0.0), {}


class Head(HeadOptimal):
    """Compatibility head with the original's two-value ``forward``.

    Defect (compat.constructor): ``max_prototypes`` is fixed to ``2 * num_prototypes``,
    so passing it raises TypeError (multiple values), and ``var_threshold`` raises
    TypeError (unexpected keyword).
    """

    def __init__(
        self,
        num_classes: int,
        emb_dim: int,
        num_heads: int,
        img_feat_dim: int,
        num_prototypes: int = 5,
        dropout_rate: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            num_classes,
            emb_dim,
            num_heads,
            img_feat_dim,
            num_prototypes=num_prototypes,
            max_prototypes=2 * num_prototypes,
            dropout_rate=dropout_rate,
            **kwargs,
        )

    def forward(  # type: ignore[override]
        self,
        pool_img_features: torch.Tensor,
        img_features: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training:
            logits, loss, _ = super().forward(pool_img_features, img_features, labels)
            return logits, loss
        logits, _, _ = super().forward(pool_img_features, img_features)
        return logits, torch.tensor(0.0, device=logits.device)


def has_multi_prototype_head(model: nn.Module) -> bool:
    """True when ``model.head`` is one of these heads or has a ``proto_manager``."""
    head = getattr(model, "head", None)
    return isinstance(head, (HeadOptimal, Head)) or hasattr(head, "proto_manager")
