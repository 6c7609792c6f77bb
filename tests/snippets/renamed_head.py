"""A rewritten copy of ``head_optimal.py`` for the static engine's tests (parsed, never run).

Classes, the manager attribute, its methods and buffers, and the loss helpers are renamed;
the loss terms are module-level functions and the separation's inner loop is its own
helper, so class loops, host syncs and their nesting must be found by data flow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PrototypeBank(nn.Module):
    def __init__(self, num_classes: int, dim: int, start: int = 5, capacity: int = 10, momentum: float = 0.9) -> None:
        super().__init__()
        self.n_cls = num_classes
        self.capacity = capacity
        self.momentum = momentum
        rows_total = num_classes * capacity
        self.rows = nn.Parameter(torch.empty(rows_total, dim))
        nn.init.xavier_uniform_(self.rows)
        self.register_buffer("counts", torch.full((num_classes,), start, dtype=torch.long))
        active = torch.zeros(rows_total, dtype=torch.bool)
        self.register_buffer("active", active)

    def unit_rows(self) -> torch.Tensor:
        return F.normalize(self.rows, p=2, dim=-1)

    def class_spans(self):  # no annotations on purpose
        spans = []
        for k in range(self.n_cls):
            first = k * self.capacity
            spans.append((first, first + int(self.counts[k].item())))
        return spans

    @torch.no_grad()
    def grow(self, k: int, vec: torch.Tensor) -> bool:
        used = int(self.counts[k].item())
        if used >= self.capacity:
            return False
        self.rows.data[k * self.capacity + used].copy_(F.normalize(vec, dim=-1))
        return True

    @torch.no_grad()
    def ema(self, row: int, vec: torch.Tensor) -> None:
        self.rows.data[row] = F.normalize(self.momentum * self.rows.data[row] + vec, dim=-1)


class TriBranchAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.cross = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.mix = nn.Sequential(nn.Linear(3 * dim, dim), nn.GELU(), nn.Linear(dim, 3))
        self.norm = nn.LayerNorm(dim)

    def forward(self, queries, keys):
        out, weights = self.cross(queries, keys, keys)
        out = self.norm(queries + out)
        gate = F.softmax(self.mix(torch.cat([out, out, out], dim=-1)), dim=-1)
        return gate[..., 0:1] * out, weights


def cluster_term(dist, targets, spans, weights):
    acc = torch.tensor(0.0)
    seen = 0
    for k, (lo, hi) in enumerate(spans):
        sel = targets == k
        if sel.sum() == 0:
            continue
        acc = acc + weights[k] * dist[sel, k, : hi - lo].min(dim=-1).values.mean()
        seen += 1
    return acc / seen if seen > 0 else acc


def _nearest_other(dist, sel, k, spans):
    parts = []
    for other, (lo, hi) in enumerate(spans):
        if other == k or hi - lo == 0:
            continue
        parts.append(dist[sel, other, : hi - lo])
    return parts


def separation_term(dist, targets, spans, margin, classes_total):
    acc = torch.tensor(0.0)
    seen = 0
    for k in range(classes_total):
        sel = targets == k
        if sel.sum() == 0:
            continue
        parts = _nearest_other(dist, sel, k, spans)
        if not parts:
            continue
        acc = acc + F.relu(margin - torch.cat(parts, dim=-1).min(dim=-1).values).mean()
        seen += 1
    return acc / seen if seen > 0 else acc


def diversity_term(rows, spans):
    unit = F.normalize(rows, dim=-1)
    acc = torch.tensor(0.0)
    for lo, hi in spans:
        size = hi - lo
        if size > 1:
            gram = unit[lo:hi] @ unit[lo:hi].t()
            acc = acc + F.relu(gram[~torch.eye(size, dtype=torch.bool)] - 0.5).mean()
    return acc


def contrastive_term(rows, active, spans):
    kept = rows[active]
    n = kept.size(0)
    if n <= 1:
        return torch.tensor(0.0)
    kept = F.normalize(kept, dim=-1)
    sim = kept @ kept.t()
    same = torch.zeros(n, n, dtype=torch.bool)
    pos = 0
    for lo, hi in spans:
        stop = min(pos + hi - lo, n)
        same[pos:stop, pos:stop] = True
        pos = stop
    other = ~same & ~torch.eye(n, dtype=torch.bool)
    if other.sum() == 0:
        return torch.tensor(0.0)
    return sim[other].mean()


class PrototypeObjective(nn.Module):
    def __init__(self, num_classes: int, capacity: int, margin: float = 0.3) -> None:
        super().__init__()
        self.n_cls = num_classes
        self.capacity = capacity
        self.margin = margin

    def _weights(self, class_count):
        weights = 1.0 / torch.sqrt(class_count + 1e-6)
        return weights / weights.sum() * self.n_cls

    def forward(self, sims, targets, rows, spans, active):
        dist = 1 - sims
        weights = self._weights(torch.bincount(targets, minlength=self.n_cls).float())
        terms = {
            "cluster_loss": cluster_term(dist, targets, spans, weights),
            "sep_loss": separation_term(dist, targets, spans, self.margin, self.n_cls),
            "div_loss": diversity_term(rows, spans),
            "contrastive_loss": contrastive_term(rows, active, spans),
        }
        terms["proto_loss"] = sum(terms.values())
        return terms


class ProtoHead(nn.Module):
    def __init__(self, num_classes: int, dim: int, heads: int, feat_dim: int, start: int = 5, capacity: int = 10):
        super().__init__()
        self.n_cls = num_classes
        self.capacity = capacity
        self.embed = nn.Sequential(nn.Linear(feat_dim, dim), nn.LayerNorm(dim))
        self.bank = PrototypeBank(num_classes, dim, start, capacity)
        self.attend = TriBranchAttention(dim, heads)
        self.scale = nn.Parameter(torch.tensor(10.0))
        self.objective = PrototypeObjective(num_classes, capacity)

    def _features(self, patches, pooled):
        b, n, _ = patches.shape
        if pooled.dim() == 3:
            pooled = pooled.mean(dim=1)
        query = self.embed(pooled)
        seq = self.embed(patches).reshape(1, b * n, -1)
        updated, _ = self.attend(self.bank.unit_rows().unsqueeze(0), seq)
        sims = F.cosine_similarity(query.unsqueeze(1), updated.expand(b, -1, -1), dim=-1)
        return sims.view(b, self.n_cls, self.capacity)

    def _pool(self, sims):
        out = torch.zeros(sims.size(0), self.n_cls)
        for k, (lo, hi) in enumerate(self.bank.class_spans()):
            out[:, k] = sims[:, k, : hi - lo].max(dim=-1).values
        return out

    def forward(self, patches, pooled, targets=None):
        sims = self._features(patches, pooled)
        logits = self._pool(sims) * self.scale
        if self.training and targets is not None:
            terms = self.objective(sims, targets, self.bank.rows, self.bank.class_spans(), self.bank.active)
            total = F.cross_entropy(logits, targets) + terms["proto_loss"]
            return logits, total, terms
        return logits, torch.tensor(0.0), {}


class CompatProtoHead(ProtoHead):
    def forward(self, patches, pooled, targets=None):
        if self.training:
            logits, loss, _ = super().forward(patches, pooled, targets)
            return logits, loss
        logits, _, _ = super().forward(patches, pooled)
        return logits, torch.tensor(0.0)
