"""Interaction of the four prototype loss terms (claim 1.4), measured as gradient cosines.

Two terms conflict in a state when the cosine between their gradients on
``proto_manager.prototypes`` is negative (the PCGrad definition: a step on one
term undoes progress on the other). The states are seeded and built so that every
term is active: prototypes clustered per class with a controlled within-class
similarity (so the diversity hinge at 0.5 is active), samples drawn around per-class
centres, and the separation margin raised to 2 so its hinge is active for every
sample (where active, its gradient is that of the distance, whatever the margin).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from headaudit.adapters import Head, build_head, call_subject, loss_terms, unit_rows
from headaudit.checks._common import fmt
from headaudit.context import Context
from headaudit.model import Outcome, Text
from headaudit.registry import Check

__all__ = ["CHECKS", "TERMS"]

TERMS = ("cluster_loss", "sep_loss", "div_loss", "contrastive_loss")
_SHORT = {
    "cluster_loss": "cluster",
    "sep_loss": "separation",
    "div_loss": "diversity",
    "contrastive_loss": "contrastive",
}
_CONFLICT_SHARE = 0.25
_CLASSES, _PER_CLASS, _EMB, _BATCH, _PATCHES = 4, 3, 16, 16, 4


@dataclass(frozen=True)
class _PairStats:
    """Gradient cosines of one pair of terms over the states where both were active."""

    pair: str
    states: int
    mean_cos: float
    conflict_share: float

    @classmethod
    def of(cls, pair: str, cosines: list[float]) -> _PairStats:
        n = len(cosines)
        if not n:
            return cls(pair, 0, math.nan, math.nan)
        return cls(pair, n, sum(cosines) / n, sum(c < 0 for c in cosines) / n)

    def as_evidence(self) -> dict[str, object]:
        return {
            "pair": self.pair,
            "states": self.states,
            "mean_cos": self.mean_cos,
            "conflict_share": self.conflict_share,
        }


def _state(ctx: Context, index: int) -> tuple[Head, torch.Tensor, torch.Tensor, torch.Tensor, float]:
    torch.manual_seed(ctx.seed * 104_729 + index)
    head = build_head(
        ctx.subject,
        num_classes=_CLASSES,
        emb_dim=_EMB,
        num_heads=2,
        num_prototypes=_PER_CLASS,
        max_prototypes=_PER_CLASS,
        train=True,
        margin=2.0,
    )
    gen = ctx.generator(10_000 + index)
    centres = unit_rows(torch.randn(_CLASSES, _EMB, generator=gen))
    spread = 0.3 + 0.4 * float(torch.rand(1, generator=gen))  # within-class cosine about 0.75-0.95
    rows = centres.repeat_interleave(int(head.proto_manager.max_prototypes), dim=0)
    protos = head.proto_manager.prototypes
    with torch.no_grad():
        protos.copy_(unit_rows(rows + spread * torch.randn(rows.shape, generator=gen) / _EMB**0.5))
    labels = torch.arange(_BATCH) % _CLASSES
    noise = 0.3 * torch.randn(_BATCH, _PATCHES + 1, _EMB, generator=gen)
    feats = centres[labels].unsqueeze(1) + noise
    return head, feats[:, 1:], feats[:, 0], labels, spread


def _gradients(head: Head, pool: torch.Tensor, img: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    protos = head.proto_manager.prototypes
    similarities = call_subject("forward_features", head.forward_features, pool, img)[0]
    terms = loss_terms(head, protos, similarities, labels)
    grads = {}
    for name in TERMS:
        value = terms[name]
        if not value.requires_grad:
            grads[name] = torch.zeros_like(protos)
            continue
        (g,) = torch.autograd.grad(value, protos, retain_graph=True, allow_unused=True)
        grads[name] = torch.zeros_like(protos) if g is None else g.detach()
    return grads


def _run_conflicts(ctx: Context) -> Outcome:
    states = ctx.budget(32, minimum=32)
    cosines: dict[tuple[str, str], list[float]] = {p: [] for p in itertools.combinations(TERMS, 2)}
    margins: set[float] = set()
    for index in range(states):
        head, pool, img, labels, _ = _state(ctx, index)
        margins.add(float(getattr(head.proto_loss_fn, "margin", math.nan)))
        grads = _gradients(head, pool, img, labels)
        for a, b in cosines:
            ga, gb = grads[a].flatten().double(), grads[b].flatten().double()
            if ga.norm() > 1e-12 and gb.norm() > 1e-12:
                cosines[(a, b)].append(float(ga @ gb / (ga.norm() * gb.norm())))
    table = [_PairStats.of(f"{_SHORT[a]} / {_SHORT[b]}", values) for (a, b), values in cosines.items()]
    evidence: dict[str, object] = {
        "states": states,
        "separation_margin": margins.pop() if len(margins) == 1 else sorted(margins),
        "table": [row.as_evidence() for row in table],
    }
    inactive = [row.pair for row in table if row.states < 32]
    if inactive:
        return Outcome(
            "error",
            Text(
                f"fewer than 32 states had both terms active for {', '.join(inactive)}",
                f"{', '.join(inactive)} 两项同时有效的状态少于 32 个",
            ),
            evidence,
        )
    div_con = next(row for row in table if row.pair == "diversity / contrastive")
    dc = Text(
        f"diversity / contrastive: mean cos {fmt(div_con.mean_cos, 3)}, "
        f"conflicts in {fmt(100 * div_con.conflict_share, 3)} % of states",
        f"多样性 / 对比：平均余弦 {fmt(div_con.mean_cos, 3)}，{fmt(100 * div_con.conflict_share, 3)} % 的状态冲突",
    )
    if ctx.subject.role == "baseline":
        # The original report's premise: the baseline's contrastive term conflicted with diversity.
        if div_con.conflict_share >= _CONFLICT_SHARE:
            return Outcome("pass", Text(f"the premise holds: {dc.en}", f"前提成立：{dc.zh}"), evidence)
        aligned = div_con.mean_cos > 0
        return Outcome(
            "fail",
            Text(
                f"the premise is refuted: {dc.en}"
                + ("; the two terms are aligned (redundant on same-class pairs), not in conflict" if aligned else ""),
                f"前提被否定：{dc.zh}" + ("；两项方向一致（在同类原型对上重复），并不冲突" if aligned else ""),
            ),
            evidence,
        )
    conflicting = [row for row in table if row.conflict_share >= _CONFLICT_SHARE]
    if conflicting:
        listing = ", ".join(f"{row.pair} ({fmt(100 * row.conflict_share, 3)} %)" for row in conflicting)
        return Outcome(
            "warn",
            Text(
                f"pairs conflicting in >= 25 % of states: {listing}; {dc.en}",
                f"在 >= 25 % 的状态中冲突的损失对：{listing}；{dc.zh}",
            ),
            evidence,
        )
    return Outcome(
        "pass",
        Text(f"no pair conflicts in 25 % of states or more; {dc.en}", f"没有损失对在 25 % 以上的状态中冲突；{dc.zh}"),
        evidence,
    )


CHECKS: tuple[Check, ...] = (
    Check(
        id="losses.conflicts",
        catalogue=1,
        title=Text(
            "The four prototype losses do not conflict; the original contrastive conflicted with diversity",
            "四种原型损失互不冲突；原对比损失与多样性损失冲突",
        ),
        method=Text(
            "Over at least 32 seeded states in which both terms of a pair are active, the cosine between the "
            "two terms' gradients on proto_manager.prototypes; a pair conflicts where cos < 0 (PCGrad). "
            "Baseline: the premise holds if diversity/contrastive conflict in >= 25 % of states. "
            "Candidate: warn where any pair conflicts in >= 25 % of states.",
            "在至少 32 个两项均有效的种子状态上，计算两项损失对 proto_manager.prototypes 梯度的余弦；"
            "cos < 0 即为冲突（PCGrad 定义）。基线：多样性/对比在 >= 25 % 状态中冲突则前提成立。"
            "候选：任一损失对在 >= 25 % 状态中冲突则给出警告。",
        ),
        run=_run_conflicts,
        needs=("proto_manager.prototypes", "proto_loss_fn", "forward_features"),
        severity="medium",
    ),
)
