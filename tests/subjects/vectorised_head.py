"""A user's rewrite of head_optimal.py: the same behaviour, none of the same code.

Every loss term and the aggregation are vectorised (no Python loop over classes, masks
instead of slices), the loss is a new class, the aggregation keeps the similarities'
dtype, and the constructor takes one more keyword (``prototype_init``). All component
contracts must pass: they pin behaviour, not code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from headaudit.reference.head_optimal import HeadOptimal as _Base


def _slots(proto_indices: list[tuple[int, int]], per_class: int, device: torch.device) -> torch.Tensor:
    """(C, M) bool: slot j of class c is valid."""
    counts = torch.tensor([end - start for start, end in proto_indices], device=device)
    return torch.arange(per_class, device=device)[None, :] < counts[:, None]


class VectorisedLoss(nn.Module):
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
        self.num_classes, self.max_prototypes, self.margin = num_classes, max_prototypes, margin
        self.clst_scale, self.sep_scale, self.div_scale = clst_scale, sep_scale, div_scale
        self.contrastive_scale, self.use_class_balanced, self.cb_beta = contrastive_scale, use_class_balanced, cb_beta

    def forward(self, similarities, labels, prototypes, proto_indices, valid_mask):  # type: ignore[no-untyped-def]
        dist = 1 - similarities
        slots = _slots(proto_indices, self.max_prototypes, dist.device)
        rows = torch.arange(labels.numel(), device=dist.device)
        counts = torch.bincount(labels, minlength=self.num_classes).to(dist.dtype)
        present = counts > 0
        # cluster: nearest valid own prototype, per-class means, weighted, over present classes
        own = dist[rows, labels].masked_fill(~slots[labels], math.inf).amin(dim=-1)
        means = torch.zeros(self.num_classes, dtype=dist.dtype, device=dist.device).index_add(0, labels, own)
        means = means / counts.clamp(min=1)
        if self.use_class_balanced:
            w = (1.0 - self.cb_beta) / (1.0 - torch.pow(self.cb_beta, counts) + 1e-6)
        else:
            w = (counts + 1e-6).rsqrt()
        w = w / w.sum() * self.num_classes
        n_present = int(present.sum())
        cluster = (w * means)[present].sum() / n_present if n_present else dist.new_zeros(())
        # separation: nearest valid prototype of any other class
        other = slots[None, :, :] & (
            torch.arange(self.num_classes, device=dist.device)[None, :, None] != labels[:, None, None]
        )
        nearest = dist.masked_fill(~other, math.inf).flatten(1).amin(dim=-1)
        has_other = torch.isfinite(nearest)
        hinge = F.relu(self.margin - nearest.masked_fill(~has_other, 0.0)) * has_other
        per = torch.zeros(self.num_classes, dtype=dist.dtype, device=dist.device).index_add(0, labels, hinge)
        n_other = torch.zeros(self.num_classes, device=dist.device).index_add(0, labels, has_other.to(torch.float32))
        counted = n_other > 0
        sep = (per[counted] / n_other[counted].to(dist.dtype)).mean() if bool(counted.any()) else dist.new_zeros(())
        # diversity: off-diagonal same-class pairs of normalised valid rows
        unit = F.normalize(prototypes, p=2, dim=-1).view(self.num_classes, self.max_prototypes, -1)
        gram = unit @ unit.transpose(1, 2)
        pairs = (
            slots[:, :, None]
            & slots[:, None, :]
            & ~torch.eye(self.max_prototypes, dtype=torch.bool, device=dist.device)
        )
        k = slots.sum(dim=1)
        div_per = (F.relu(gram - 0.5) * pairs).sum(dim=(1, 2)) / (k * (k - 1)).clamp(min=1)
        div = div_per[k > 1].mean() if bool((k > 1).any()) else prototypes.new_zeros(())
        # contrastive: different-class pairs of valid rows
        owner = torch.arange(self.num_classes, device=dist.device).repeat_interleave(self.max_prototypes)
        valid_unit = F.normalize(prototypes[valid_mask], p=2, dim=-1)
        owners = owner[valid_mask]
        different = owners[:, None] != owners[None, :]
        sims = valid_unit @ valid_unit.t()
        con = sims[different].mean() if bool(different.any()) else prototypes.new_zeros(())
        terms = {
            "cluster_loss": self.clst_scale * cluster,
            "sep_loss": self.sep_scale * sep,
            "div_loss": self.div_scale * div,
            "contrastive_loss": self.contrastive_scale * con,
        }
        terms["proto_loss"] = terms["cluster_loss"] + terms["sep_loss"] + terms["div_loss"] + terms["contrastive_loss"]
        return terms


class HeadOptimal(_Base):
    def __init__(
        self,
        num_classes: int,
        emb_dim: int,
        num_heads: int,
        img_feat_dim: int,
        *,
        prototype_init: str = "xavier",
        **kwargs: object,
    ) -> None:
        if prototype_init != "xavier":
            raise ValueError(f"prototype_init {prototype_init!r} is not supported; use 'xavier'")
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        old = self.proto_loss_fn
        self.proto_loss_fn = VectorisedLoss(  # type: ignore[assignment]
            num_classes,
            self.max_prototypes,
            margin=old.margin,
            clst_scale=old.clst_scale,
            sep_scale=old.sep_scale,
            div_scale=old.div_scale,
            contrastive_scale=old.contrastive_scale,
            use_class_balanced=old.use_class_balanced,
            cb_beta=old.cb_beta,
        )

    def aggregate_similarities(self, similarities: torch.Tensor) -> torch.Tensor:
        slots = _slots(self.proto_manager.get_prototype_indices(), self.max_prototypes, similarities.device)
        return similarities.masked_fill(~slots[None], -math.inf).amax(dim=-1)
