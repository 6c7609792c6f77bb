"""head_optimal.py with its per-class work done by tensor operations (for the perf.* checks).

``HeadOptimal`` keeps head_optimal.py's architecture and its four prototype terms,
computed with masks over the ``(classes, max_prototypes)`` layout: no Python loop over
classes and no host read, so its operator count per training step does not depend on
``num_classes`` (``perf.op-count`` passes) and a CUDA step never waits for the device
(``perf.host-syncs`` passes on CUDA). ``PerClassLoop`` puts back the reference's
per-class aggregation loop (a host read and a few operators per class): its count grows
linearly, still a pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from headaudit.reference.head_optimal import HeadOptimal as _Base

__all__ = ["HeadOptimal", "PerClassLoop"]


def _mean_over(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` holds; 0 where it holds nowhere (no host read)."""
    weights = mask.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp(min=1.0)


class HeadOptimal(_Base):
    def _valid(self) -> torch.Tensor:
        return self.proto_manager.valid_mask.view(self.num_classes, self.max_prototypes)

    def aggregate_similarities(self, similarities: torch.Tensor) -> torch.Tensor:
        return similarities.masked_fill(~self._valid(), float("-inf")).amax(dim=-1)

    def _per_class(self, values: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-class mean of per-sample ``values`` and the per-class sample counts."""
        counts = torch.zeros(self.num_classes, device=values.device).index_add_(0, labels, torch.ones_like(values))
        sums = torch.zeros(self.num_classes, device=values.device).index_add_(0, labels, values)
        return sums / counts.clamp(min=1.0), counts

    def _proto_terms(self, similarities: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = self.proto_loss_fn
        valid = self._valid()  # (C, M)
        distances = 1 - similarities  # (B, C, M)
        own = torch.arange(self.num_classes, device=labels.device).unsqueeze(0) == labels.unsqueeze(1)  # (B, C)
        inf = torch.full((), float("inf"), device=distances.device)
        # cluster: distance to the nearest valid own-class prototype, mean per class, weighted
        nearest = torch.where(own.unsqueeze(-1) & valid, distances, inf).amin(dim=(1, 2))
        per_class, counts = self._per_class(torch.where(torch.isfinite(nearest), nearest, 0.0), labels)
        present = counts > 0
        cluster = _mean_over(loss._get_class_weight(counts) * per_class, present)
        # separation: relu(margin - distance to the nearest valid other-class prototype)
        nearest_other = torch.where((~own).unsqueeze(-1) & valid, distances, inf).amin(dim=(1, 2))
        has_other = torch.isfinite(nearest_other)
        hinge = torch.where(has_other, F.relu(loss.margin - nearest_other), 0.0)
        sep_per_class, _ = self._per_class(hinge, labels)
        with_other, _ = self._per_class(has_other.to(hinge.dtype), labels)
        separation = _mean_over(sep_per_class, present & (with_other > 0))
        # diversity: relu(cos - 0.5) over off-diagonal valid pairs within a class
        protos = self.proto_manager.prototypes.view(self.num_classes, self.max_prototypes, -1)
        normed = F.normalize(protos, p=2, dim=-1)
        gram = normed @ normed.transpose(1, 2)
        eye = torch.eye(self.max_prototypes, dtype=torch.bool, device=gram.device)
        pairs = valid.unsqueeze(-1) & valid.unsqueeze(1) & ~eye
        pair_count = pairs.sum(dim=(1, 2)).to(gram.dtype)
        per_class_div = (F.relu(gram - 0.5) * pairs).sum(dim=(1, 2)) / pair_count.clamp(min=1.0)
        diversity = _mean_over(per_class_div, pair_count > 0)
        # contrastive: mean similarity over valid pairs of different classes
        flat = normed.reshape(self.num_classes * self.max_prototypes, -1)
        owner = torch.arange(self.num_classes, device=flat.device).repeat_interleave(self.max_prototypes)
        flat_valid = valid.reshape(-1)
        different = (owner.unsqueeze(0) != owner.unsqueeze(1)) & flat_valid.unsqueeze(0) & flat_valid.unsqueeze(1)
        contrastive = _mean_over(flat @ flat.t(), different)
        terms = {
            "cluster_loss": loss.clst_scale * cluster,
            "sep_loss": loss.sep_scale * separation,
            "div_loss": loss.div_scale * diversity,
            "contrastive_loss": loss.contrastive_scale * contrastive,
        }
        terms["proto_loss"] = terms["cluster_loss"] + terms["sep_loss"] + terms["div_loss"] + terms["contrastive_loss"]
        return terms

    def forward(
        self,
        pool_img_features: torch.Tensor,
        img_features: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        similarities, _, _, _ = self.forward_features(pool_img_features, img_features)
        logits = self.aggregate_similarities(similarities) * self.temperature
        if not (self.training and labels is not None):
            return logits, torch.zeros((), device=logits.device), {}
        ce = F.cross_entropy(logits, labels)
        terms = self._proto_terms(similarities, labels)
        total = (
            torch.exp(-self.log_sigma_ce) * ce
            + self.log_sigma_ce
            + torch.exp(-self.log_sigma_proto) * terms["proto_loss"]
            + self.log_sigma_proto
        )
        return logits, total, {"ce_loss": ce, **terms, "total_loss": total}


class PerClassLoop(HeadOptimal):
    aggregate_similarities = _Base.aggregate_similarities
