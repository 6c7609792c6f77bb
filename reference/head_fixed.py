"""A corrected, fast multi-prototype head with the public API of ``head_optimal.py``.

The positive control of the audit (issue 16): the names of ``shared/spec/BEHAVIOR.md``
(``HeadOptimal``, the compatibility ``Head``, ``OptimalPrototypeLoss`` with its per-term
methods, ``DynamicPrototypeManagerOptimal``, ``MixedAttentionBlockOptimal``,
``has_multi_prototype_head``), with the defects of ``head_optimal.py`` fixed:

- each sample's prototypes attend to that sample's own patches (queries ``(B, P, E)``,
  keys ``(B, N, E)``), so a prediction does not depend on the rest of the batch;
- every loss term is a masked reduction over the ``(num_classes, max_prototypes)``
  layout (``valid_mask``): no Python loop over classes, no host read of a device value,
  so the operator count per step does not grow with ``num_classes``;
- class weights are normalised over the classes present only; the class-balanced mode
  can use dataset-level counts (``proto_loss_fn.set_class_counts(counts)``);
- prototype rows are unit-norm from the start and under every EMA sequence (an update
  that cancels out keeps the old row);
- the compatibility ``Head`` accepts every keyword of head.py's ``Head``, the manager keeps
  ``expand_prototypes``, ``apply_momentum_updates`` and ``var_threshold``, and
  :func:`load_head_py_state_dict` loads a head.py checkpoint through a documented mapping;
- the input dtype is kept, bad inputs and ``num_prototypes=0`` are refused with messages
  naming the argument, and the training step compiles with ``torch.compile(fullgraph=True)``.

Self-contained (torch only) so it can be loaded by path, like a user's own copy.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "HEAD_PY_KEY_MAP",
    "CheckpointMapping",
    "DynamicPrototypeManagerOptimal",
    "Head",
    "HeadOptimal",
    "MixedAttentionBlockOptimal",
    "OptimalPrototypeLoss",
    "has_multi_prototype_head",
    "load_head_py_state_dict",
]

# A cancelling EMA update (``m * p == -(1 - m) * normalize(v)``) leaves a vector shorter
# than this; the old row is kept instead of normalising (almost) nothing.
_EMA_EPS = 1e-6


def _check_count(name: str, value: int, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


class DynamicPrototypeManagerOptimal(nn.Module):
    """Unit-norm per-class prototype rows with an immediate, cancellation-safe EMA update."""

    def __init__(
        self,
        num_classes: int,
        emb_dim: int,
        num_prototypes: int = 5,
        max_prototypes: int = 10,
        momentum: float = 0.9,
        var_threshold: float = 0.5,
    ) -> None:
        super().__init__()
        _check_count("num_classes", num_classes, 1)
        _check_count("num_prototypes", num_prototypes, 1)
        _check_count("max_prototypes", max_prototypes, 1)
        if max_prototypes < num_prototypes:
            raise ValueError(f"max_prototypes ({max_prototypes!r}) must be >= num_prototypes ({num_prototypes!r})")
        self.num_classes = num_classes
        self.emb_dim = emb_dim
        self.max_prototypes = max_prototypes
        self.momentum = momentum
        self.var_threshold = var_threshold  # kept for head.py callers; no behaviour reads it
        total = num_classes * max_prototypes
        self.prototypes = nn.Parameter(torch.empty(total, emb_dim))
        nn.init.xavier_uniform_(self.prototypes)
        with torch.no_grad():  # unit-norm from the start (fixes ema.initial-norm)
            self.prototypes.copy_(F.normalize(self.prototypes, p=2, dim=-1))
        self.register_buffer("protos_per_class", torch.full((num_classes,), num_prototypes, dtype=torch.long))
        self.register_buffer("valid_mask", torch.arange(total) % max_prototypes < num_prototypes)
        # head.py's cache buffers, kept for callers that read them: always zero, because
        # momentum_update applies at once. Not persistent (no checkpoint key; see
        # load_head_py_state_dict, which drops head.py's).
        self.register_buffer("momentum_cache", torch.zeros(total, emb_dim), persistent=False)
        self.register_buffer("cache_count", torch.zeros(total), persistent=False)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # head.py checkpoints carry the EMA cache as state; here it is always empty. An
        # empty cache is consumed; pending updates (a count above zero) are reported.
        for name in ("momentum_cache", "cache_count"):
            value = state_dict.pop(prefix + name, None)
            if name == "cache_count" and value is not None and bool((value > 0).any()):
                warnings.warn(
                    f"{prefix}cache_count: head.py checkpoint with pending EMA updates; they are not "
                    "applied (call apply_momentum_updates in head.py before saving)",
                    UserWarning,
                    stacklevel=2,
                )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def get_prototypes(self) -> torch.Tensor:
        """All rows, L2-normalised (invalid rows included)."""
        return F.normalize(self.prototypes, p=2, dim=-1)

    def get_prototype_indices(self) -> list[tuple[int, int]]:
        """``(start, end)`` of each class's valid rows. API compatibility only: one host
        read; the forward path uses ``valid_mask`` instead."""
        counts = self.protos_per_class.tolist()
        return [(c * self.max_prototypes, c * self.max_prototypes + int(k)) for c, k in enumerate(counts)]

    @torch.no_grad()
    def expand_prototype(self, class_idx: int, new_proto: torch.Tensor) -> bool:
        """Add ``normalize(new_proto)`` as the class's next row; False (nothing written) when full."""
        used = int(self.protos_per_class[class_idx])
        if used >= self.max_prototypes:
            return False
        row = class_idx * self.max_prototypes + used
        self.prototypes[row].copy_(F.normalize(new_proto.to(self.prototypes.dtype), p=2, dim=-1))
        self.protos_per_class[class_idx] += 1
        self.valid_mask[row] = True
        return True

    def expand_prototypes(self, class_idx: int, new_proto: torch.Tensor) -> bool:
        """head.py's name for :meth:`expand_prototype`."""
        return self.expand_prototype(class_idx, new_proto)

    @torch.no_grad()
    def momentum_update(self, proto_idx: int, new_value: torch.Tensor) -> None:
        """``p <- normalize(m * p + (1 - m) * normalize(v))``, applied at once.

        The old row is normalised first (it already is unit-norm unless written from
        outside); when the mix cancels out (norm below ``1e-6``) the old row is kept.
        """
        m = self.momentum
        old = F.normalize(self.prototypes[proto_idx], p=2, dim=-1)
        mixed = m * old + (1 - m) * F.normalize(new_value.to(old.dtype), p=2, dim=-1)
        norm = mixed.norm(p=2, dim=-1, keepdim=True)
        self.prototypes[proto_idx].copy_(torch.where(norm > _EMA_EPS, mixed / norm.clamp(min=_EMA_EPS), old))

    def apply_momentum_updates(self) -> None:
        """head.py's API: a no-op here, because :meth:`momentum_update` applies at once."""


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

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # head.py named the third attention local_self_attn: the same module, renamed.
        old = prefix + "local_self_attn."
        for key in [k for k in state_dict if k.startswith(old)]:
            state_dict.setdefault(prefix + "light_attn." + key[len(old) :], state_dict.pop(key))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, proto: torch.Tensor, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``proto`` ``(B, P, E)`` queries over ``img`` ``(B, N, E)``: one sequence per sample."""
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
    """Cluster, separation, diversity and different-class contrastive terms as masked reductions.

    Every term works on the ``(num_classes, max_prototypes)`` layout with a boolean
    ``valid`` mask of that shape (``valid_mask.view(C, M)``). ``proto_indices`` is still
    accepted by every method for head_optimal.py's signatures; it is used only when no
    ``valid_mask`` is given.
    """

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
        # Dataset-level class counts for the class-balanced weights; all zero means unset
        # (the batch's counts are used then).
        self.register_buffer("class_counts", torch.zeros(num_classes))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # head_optimal.py checkpoints have no class_counts: keep the current (unset) value.
        state_dict.setdefault(prefix + "class_counts", self.class_counts.detach().clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def set_class_counts(self, counts: torch.Tensor | list[int] | tuple[int, ...]) -> None:
        """Use the training set's per-class counts (not each batch's) for the class weights."""
        values = torch.as_tensor(counts, dtype=self.class_counts.dtype, device=self.class_counts.device)
        if values.shape != self.class_counts.shape:
            raise ValueError(f"counts must have one value per class ({self.num_classes}), got {tuple(values.shape)}")
        if bool((values < 0).any()):
            raise ValueError("counts must be non-negative")
        self.class_counts.copy_(values)

    # --- layout helpers --------------------------------------------------------------------

    def _valid(self, proto_indices: Any, valid_mask: torch.Tensor | None, device: torch.device) -> torch.Tensor:
        """The ``(C, M)`` boolean layout of valid slots."""
        if valid_mask is not None:
            return valid_mask.to(device=device, dtype=torch.bool).view(self.num_classes, self.max_prototypes)
        slots = torch.arange(self.max_prototypes, device=device)
        if proto_indices is None:
            return (slots >= 0).unsqueeze(0).expand(self.num_classes, -1)
        bounds = torch.as_tensor(proto_indices, device=device).view(self.num_classes, 2)
        return slots.unsqueeze(0) < (bounds[:, 1:2] - bounds[:, 0:1])

    def _onehot(self, labels: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        classes = torch.arange(self.num_classes, device=labels.device)
        return (labels.unsqueeze(1) == classes).to(dtype)

    def _get_class_weight(self, class_count: torch.Tensor) -> torch.Tensor:
        """Per-class weights for a batch's per-class counts (absent classes included).

        Absent classes (count 0) get weight 0 and the present ones are normalised to a mean
        of 1 over the classes present, so absent classes never shrink them. With
        ``use_class_balanced`` and dataset counts set (:meth:`set_class_counts`), the
        effective-number weights ``(1 - beta) / (1 - beta**n)`` use the dataset's ``n``.
        """
        count = class_count.to(self.class_counts.dtype) if not class_count.is_floating_point() else class_count
        present = count > 0
        if self.use_class_balanced:
            dataset = self.class_counts.to(count)
            n = torch.where(dataset.sum() > 0, dataset, count).clamp(min=1)
            raw = (1.0 - self.cb_beta) / (1.0 - torch.pow(self.cb_beta, n))
        else:
            raw = torch.rsqrt(count.clamp(min=1))
        raw = raw * present
        return raw / raw.sum().clamp(min=torch.finfo(raw.dtype).tiny) * present.sum()

    # --- the four terms --------------------------------------------------------------------

    def compute_cluster_loss(
        self,
        distances: torch.Tensor,
        labels: torch.Tensor,
        proto_indices: Any = None,
        valid_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Weighted mean over present classes of their samples' distance to the nearest own prototype."""
        valid = self._valid(proto_indices, valid_mask, distances.device)
        batch = distances.size(0)
        index = labels.view(batch, 1, 1).expand(batch, 1, self.max_prototypes)
        own = distances.gather(1, index).squeeze(1)  # (B, M)
        own_valid = valid[labels]  # (B, M)
        nearest = own.masked_fill(~own_valid, float("inf")).amin(-1)
        nearest = torch.where(own_valid.any(-1), nearest, torch.zeros_like(nearest))
        onehot = self._onehot(labels, distances.dtype)
        counts = onehot.sum(0)
        per_class = (onehot * nearest.unsqueeze(1)).sum(0) / counts.clamp(min=1)
        weights = self._get_class_weight(counts)
        present = (counts > 0).to(distances.dtype)
        return (weights * per_class).sum() / present.sum().clamp(min=1)

    def compute_separation_loss(
        self,
        distances: torch.Tensor,
        labels: torch.Tensor,
        proto_indices: Any = None,
        valid_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean over present classes of ``relu(margin - d)`` to the nearest other-class valid prototype."""
        valid = self._valid(proto_indices, valid_mask, distances.device)
        onehot = self._onehot(labels, distances.dtype)
        other = valid.unsqueeze(0) & ~onehot.bool().unsqueeze(-1)  # (B, C, M)
        has_other = other.flatten(1).any(-1)
        nearest = distances.masked_fill(~other, float("inf")).flatten(1).amin(-1)
        hinge = torch.where(has_other, F.relu(self.margin - nearest), torch.zeros_like(nearest))
        counts = onehot.sum(0)
        per_class = (onehot * hinge.unsqueeze(1)).sum(0) / counts.clamp(min=1)
        rows = valid.sum(-1)
        counted = ((counts > 0) & (rows.sum() - rows > 0)).to(distances.dtype)
        return (per_class * counted).sum() / counted.sum().clamp(min=1)

    def compute_diversity_loss(
        self, prototypes: torch.Tensor, proto_indices: Any = None, valid_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean over classes with >= 2 valid prototypes of ``relu(cos - 0.5)`` over same-class pairs."""
        valid = self._valid(proto_indices, valid_mask, prototypes.device)
        grid = F.normalize(prototypes, p=2, dim=-1).view(self.num_classes, self.max_prototypes, -1)
        gram = grid @ grid.transpose(1, 2)
        eye = torch.eye(self.max_prototypes, dtype=torch.bool, device=prototypes.device)
        pairs = valid.unsqueeze(-1) & valid.unsqueeze(-2) & ~eye
        pair_count = pairs.sum((1, 2)).to(prototypes.dtype)
        per_class = (F.relu(gram - 0.5) * pairs).sum((1, 2)) / pair_count.clamp(min=1)
        several = (valid.sum(-1) > 1).to(prototypes.dtype)
        return (per_class * several).sum() / several.sum().clamp(min=1)

    def compute_contrastive_loss(
        self, prototypes: torch.Tensor, valid_mask: torch.Tensor | None = None, proto_indices: Any = None
    ) -> torch.Tensor:
        """Mean cosine over pairs of valid prototypes of different classes; 0 when there are none."""
        valid = self._valid(proto_indices, valid_mask, prototypes.device).reshape(-1)
        unit = F.normalize(prototypes, p=2, dim=-1)
        owner = torch.arange(unit.size(0), device=prototypes.device) // self.max_prototypes
        pairs = valid.unsqueeze(0) & valid.unsqueeze(1) & (owner.unsqueeze(0) != owner.unsqueeze(1))
        return ((unit @ unit.t()) * pairs).sum() / pairs.sum().to(prototypes.dtype).clamp(min=1)

    def forward(
        self,
        similarities: torch.Tensor,
        labels: torch.Tensor,
        prototypes: torch.Tensor,
        proto_indices: Any = None,
        valid_mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        distances = 1 - similarities
        valid = self._valid(proto_indices, valid_mask, distances.device)
        terms = {
            "cluster_loss": self.clst_scale * self.compute_cluster_loss(distances, labels, valid_mask=valid),
            "sep_loss": self.sep_scale * self.compute_separation_loss(distances, labels, valid_mask=valid),
            "div_loss": self.div_scale * self.compute_diversity_loss(prototypes, valid_mask=valid),
            "contrastive_loss": self.contrastive_scale * self.compute_contrastive_loss(prototypes, valid),
        }
        terms["proto_loss"] = terms["cluster_loss"] + terms["sep_loss"] + terms["div_loss"] + terms["contrastive_loss"]
        return terms


class HeadOptimal(nn.Module):
    """The corrected multi-prototype head; returns a loss breakdown as a third value."""

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
        var_threshold: float = 0.5,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.emb_dim = emb_dim
        self.img_feat_dim = img_feat_dim
        self.max_prototypes = max_prototypes
        self.proj = nn.Sequential(nn.Linear(img_feat_dim, emb_dim), nn.LayerNorm(emb_dim), nn.Dropout(dropout_rate))
        self.proto_manager = DynamicPrototypeManagerOptimal(
            num_classes, emb_dim, num_prototypes, max_prototypes, momentum, var_threshold
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

    def _check_inputs(
        self, pool_img_features: torch.Tensor, img_features: torch.Tensor, labels: torch.Tensor | None
    ) -> None:
        """Shape errors are raised here; value errors (NaN, label range) by ``torch._assert_async``.

        The value checks read nothing on the host: on CPU they raise ``RuntimeError`` with
        the message at once; on CUDA they are device-side asserts, which stop the process
        (as ``cross_entropy`` does for an out-of-range label) instead of training on NaN.
        """
        if pool_img_features.dim() != 3:
            raise ValueError(f"pool_img_features must be (B, N, D), got shape {tuple(pool_img_features.shape)}")
        if pool_img_features.shape[-1] != self.img_feat_dim:
            raise ValueError(
                f"pool_img_features must have feature size {self.img_feat_dim}, got shape "
                f"{tuple(pool_img_features.shape)}"
            )
        if img_features.dim() not in (2, 3) or img_features.shape[-1] != self.img_feat_dim:
            raise ValueError(
                f"img_features must be (B, {self.img_feat_dim}) or (B, T, {self.img_feat_dim}), got shape "
                f"{tuple(img_features.shape)}"
            )
        if img_features.shape[0] != pool_img_features.shape[0]:
            raise ValueError(
                f"img_features has batch size {img_features.shape[0]}, pool_img_features has "
                f"{pool_img_features.shape[0]}"
            )
        torch._assert_async(torch.isfinite(img_features).all(), "img_features contain NaN or infinite values")
        torch._assert_async(torch.isfinite(pool_img_features).all(), "pool_img_features contain NaN or infinite values")
        if labels is not None:
            if labels.dim() != 1 or labels.shape[0] != pool_img_features.shape[0]:
                raise ValueError(
                    f"labels must be (B,) with B = {pool_img_features.shape[0]}, got shape {tuple(labels.shape)}"
                )
            in_range = ((labels >= 0) & (labels < self.num_classes)).all()
            torch._assert_async(in_range, f"labels must lie in [0, {self.num_classes})")

    def compute_similarities(self, img_proj: torch.Tensor, class_emb: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of each sample with its ``P`` class embeddings, ``(B, C, M)``."""
        sims = F.cosine_similarity(img_proj.unsqueeze(1), class_emb, dim=-1)
        return sims.view(sims.size(0), self.num_classes, self.max_prototypes)

    def forward_features(
        self, pool_img_features: torch.Tensor, img_features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        batch = pool_img_features.shape[0]
        if img_features.dim() == 3:
            img_features = img_features.mean(dim=1)
        img_proj = self.proj(img_features)
        pool_proj = self.proj(pool_img_features)  # (B, N, E): one key sequence per sample
        protos = self.proto_manager.get_prototypes().to(pool_proj.dtype)
        queries = protos.unsqueeze(0).expand(batch, -1, -1)  # (B, P, E)
        updated, attn_weights = self.mixed_attn(queries, pool_proj)
        class_emb = self.ffn_norm(updated + self.ffn(updated))
        similarities = self.compute_similarities(img_proj, class_emb)
        return similarities, class_emb, attn_weights, img_proj

    def aggregate_similarities(self, similarities: torch.Tensor) -> torch.Tensor:
        """Max similarity over each class's valid prototypes, ``(B, C)``, in the input's dtype."""
        valid = self.proto_manager.valid_mask.view(1, self.num_classes, self.max_prototypes)
        return similarities.masked_fill(~valid, float("-inf")).amax(-1)

    def forward(
        self,
        pool_img_features: torch.Tensor,
        img_features: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        self._check_inputs(pool_img_features, img_features, labels)
        similarities, _, _, _ = self.forward_features(pool_img_features, img_features)
        logits = self.aggregate_similarities(similarities) * self.temperature
        if self.training and labels is not None:
            ce = F.cross_entropy(logits, labels)
            manager = self.proto_manager
            loss_dict = self.proto_loss_fn(similarities, labels, manager.prototypes, None, manager.valid_mask)
            proto_loss = loss_dict["proto_loss"]
            total = (
                torch.exp(-self.log_sigma_ce) * ce
                + self.log_sigma_ce
                + torch.exp(-self.log_sigma_proto) * proto_loss
                + self.log_sigma_proto
            )
            return logits, total, {"ce_loss": ce, **loss_dict, "total_loss": total}
        return logits, logits.new_zeros(()), {}


class Head(HeadOptimal):
    """Compatibility head: head.py's constructor keywords and two-value ``forward``.

    ``max_prototypes`` defaults to ``2 * num_prototypes`` (head_optimal.py's choice) and may
    be given; ``var_threshold`` is accepted and kept on the manager.
    """

    def __init__(
        self,
        num_classes: int,
        emb_dim: int,
        num_heads: int,
        img_feat_dim: int,
        num_prototypes: int = 5,
        max_prototypes: int | None = None,
        dropout_rate: float = 0.1,
        var_threshold: float = 0.5,
        **kwargs: Any,
    ) -> None:
        _check_count("num_prototypes", num_prototypes, 1)
        super().__init__(
            num_classes,
            emb_dim,
            num_heads,
            img_feat_dim,
            num_prototypes=num_prototypes,
            max_prototypes=2 * num_prototypes if max_prototypes is None else max_prototypes,
            dropout_rate=dropout_rate,
            var_threshold=var_threshold,
            **kwargs,
        )

    def forward(  # type: ignore[override]
        self,
        pool_img_features: torch.Tensor,
        img_features: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits, loss, _ = super().forward(pool_img_features, img_features, labels)
        return logits, loss


def has_multi_prototype_head(model: nn.Module) -> bool:
    """True when ``model.head`` is one of these heads or has a ``proto_manager``."""
    head = getattr(model, "head", None)
    return isinstance(head, (HeadOptimal, Head)) or hasattr(head, "proto_manager")


# --- loading a head.py checkpoint ------------------------------------------------------------

#: Prefix renames from head.py's state dict to this file's.
HEAD_PY_KEY_MAP: dict[str, str] = {"mixed_attn.local_self_attn.": "mixed_attn.light_attn."}
#: head.py buffers with no counterpart (the EMA applies at once here, nothing is cached).
_HEAD_PY_DROPPED = ("proto_manager.momentum_cache", "proto_manager.cache_count")
#: head.py's sigmoid gate (Linear, LayerNorm) computes another function than the softmax
#: gate (Linear, GELU, Linear): its weights cannot be mapped and the gate keeps its init.
_HEAD_PY_UNMAPPABLE = "mixed_attn.gate."


@dataclass(frozen=True)
class CheckpointMapping:
    """What :func:`load_head_py_state_dict` did with each key of the head.py checkpoint."""

    renamed: tuple[tuple[str, str], ...] = ()
    dropped: tuple[str, ...] = ()
    unmapped: tuple[str, ...] = ()  # head.py keys that could not be loaded (the old gate)
    not_loaded: tuple[str, ...] = field(default=())  # this head's keys left at their init


def load_head_py_state_dict(head: HeadOptimal, state_dict: dict[str, torch.Tensor]) -> CheckpointMapping:
    """Load a head.py ``Head`` state dict into ``head`` and report what could not map.

    Mapping: ``mixed_attn.local_self_attn.*`` -> ``mixed_attn.light_attn.*``;
    ``proto_manager.momentum_cache`` and ``proto_manager.cache_count`` are dropped (no
    counterpart); every ``mixed_attn.gate.*`` key of head.py is unmapped (the sigmoid
    gate is another function) and this head's gate keeps its initial weights. Every
    other key must match by name and shape. A ``UserWarning`` names the unmapped keys.
    Prototype rows are renormalised after loading (head.py's rows are not unit-norm).
    """
    mine = head.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    renamed: list[tuple[str, str]] = []
    dropped: list[str] = []
    unmapped: list[str] = []
    for key, value in state_dict.items():
        if key in _HEAD_PY_DROPPED:
            dropped.append(key)
            continue
        if key.startswith(_HEAD_PY_UNMAPPABLE):
            unmapped.append(key)
            continue
        new = key
        for old_prefix, new_prefix in HEAD_PY_KEY_MAP.items():
            if key.startswith(old_prefix):
                new = new_prefix + key[len(old_prefix) :]
                renamed.append((key, new))
        if new not in mine or mine[new].shape != value.shape:
            unmapped.append(key)
            continue
        mapped[new] = value
    missing, _unexpected = head.load_state_dict(mapped, strict=False)
    with torch.no_grad():
        rows = head.proto_manager.prototypes
        rows.copy_(F.normalize(rows, p=2, dim=-1))
    if unmapped:
        warnings.warn(
            f"head.py checkpoint keys not loaded (no counterpart in this head): {', '.join(unmapped)}",
            UserWarning,
            stacklevel=2,
        )
    return CheckpointMapping(tuple(renamed), tuple(dropped), tuple(unmapped), tuple(missing))
