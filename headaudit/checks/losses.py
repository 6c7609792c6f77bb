"""Interaction of the four prototype loss terms (claim 1.4), measured as gradient cosines.

Two terms conflict (the PCGrad definition) when a step on one undoes progress on the
other: the cosine between their gradients on ``proto_manager.prototypes`` is negative.
Sign noise near zero must not decide it, so per pair of terms the check takes the mean
cosine over seeded states in which both terms are active, with a bootstrap 95 %
interval, and calls the pair

- ``conflict`` when the interval lies below zero and the mean is below -0.05,
- ``aligned`` when the interval lies above zero and the mean is above 0.05,
- ``decoupled`` otherwise, and ``inactive`` when fewer than 32 states had both active.

The states are built so that every term can be active: prototypes clustered per class
with a controlled within-class similarity (so the diversity hinge at 0.5 is active) and
samples drawn around per-class centres. The pairs are measured twice: at the subject's
own separation margin, and at a margin raised to 2, where separation is active for every
sample. The verdict is the same whichever slot the file sits in; what a pair's relation
means for claim 1.4 is decided by the claim record. A loss without some of the four terms
(a head that dropped or replaced them) is measured on the pairs of those it has, saying
which are absent; with fewer than two there is no pair, and the check is n/a.

A term without a gradient would sit in every pair as "inactive", so each term is first
probed to train (:mod:`headaudit.checks._trains`) in the first states of each table; one
that cannot train is ``fail`` naming it. Pairs measured in too few states are named
whatever else the check finds, beside the conflicts.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from headaudit.adapters import LOSS_CALL_NEEDS, Head, loss_terms, unit_rows
from headaudit.build import SettingNotApplied
from headaudit.checks._trains import PARAMETER_NEEDS, TermTraining, TrainingLog, probe_head, untrained
from headaudit.context import Context
from headaudit.messages import Msg
from headaudit.model import Finding
from headaudit.registry import Check
from headaudit.sandbox import call_subject

__all__ = ["CHECKS", "ORDER", "TERMS", "relation"]

TERMS = ("cluster", "separation", "diversity", "contrastive")
_KEYS = {
    "cluster": "proto_loss_fn[cluster_loss]",
    "separation": "proto_loss_fn[sep_loss]",
    "diversity": "proto_loss_fn[div_loss]",
    "contrastive": "proto_loss_fn[contrastive_loss]",
}
_MIN_STATES = 32
_EFFECT = 0.05
_RAISED_MARGIN = 2.0
_BOOTSTRAP = 2000
_PROBE_STATES = 3  # states per table in which a term not yet decided is probed to train
_CLASSES, _PER_CLASS, _EMB, _BATCH, _PATCHES = 4, 3, 16, 16, 4


@dataclass(frozen=True)
class PairStats:
    """Gradient cosines of one pair of terms over the states where both were active."""

    pair: str
    states: int
    mean_cos: float
    ci_low: float
    ci_high: float
    negative_share: float
    relation: str


@dataclass(frozen=True)
class Table:
    label: str  # "own" or "raised"
    margin: float | None  # as read back from the built heads
    states: int
    pairs: tuple[PairStats, ...]


@dataclass(frozen=True)
class ConflictMeasurement:
    tables: tuple[Table, ...]
    effect: float
    min_states: int
    raised_margin_unavailable: str | None = None
    absent_terms: tuple[str, ...] = ()  # of the four, the terms the loss does not return (their pairs are absent)
    untrainable: bool = False  # the prototypes do not require grad: there are no gradients to compare
    training: tuple[TermTraining, ...] = ()  # whether each term trains (a term that cannot is no pair's partner)


def relation(mean: float, low: float, high: float, states: int) -> str:
    """The pair's relation from its mean cosine and 95 % interval (see module docstring)."""
    if states < _MIN_STATES:
        return "inactive"
    if high < 0 and mean < -_EFFECT:
        return "conflict"
    if low > 0 and mean > _EFFECT:
        return "aligned"
    return "decoupled"


def _stats(pair: str, cosines: list[float], rng: np.random.Generator) -> PairStats:
    n = len(cosines)
    if n == 0:
        return PairStats(pair, 0, math.nan, math.nan, math.nan, math.nan, "inactive")
    values = np.asarray(cosines, dtype=np.float64)
    means = values[rng.integers(0, n, size=(_BOOTSTRAP, n))].mean(axis=1)
    low, high = (float(q) for q in np.quantile(means, [0.025, 0.975]))
    mean = float(values.mean())
    return PairStats(pair, n, mean, low, high, float((values < 0).mean()), relation(mean, low, high, n))


def _state(ctx: Context, index: int, margin: float | None) -> tuple[Head, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(ctx.seed * 104_729 + index)
    settings = {} if margin is None else {"margin": margin}
    head = ctx.build(
        num_classes=_CLASSES,
        emb_dim=_EMB,
        num_prototypes=_PER_CLASS,
        max_prototypes=_PER_CLASS,
        train=True,
        **settings,
    )
    gen = ctx.generator(10_000 + index)
    centres = unit_rows(torch.randn(_CLASSES, _EMB, generator=gen))
    spread = 0.3 + 0.4 * float(torch.rand(1, generator=gen))  # within-class cosine about 0.75-0.95
    per_class = int(ctx.get(head, "proto_manager.max_prototypes"))
    rows = centres.repeat_interleave(per_class, dim=0)
    protos = ctx.get(head, "proto_manager.prototypes")
    with torch.no_grad():
        protos.copy_(unit_rows(rows + spread * torch.randn(rows.shape, generator=gen) / _EMB**0.5))
    labels = torch.arange(_BATCH) % _CLASSES
    feats = centres[labels].unsqueeze(1) + 0.3 * torch.randn(_BATCH, _PATCHES + 1, _EMB, generator=gen)
    return head, feats[:, 1:], feats[:, 0], labels


def _gradients(ctx: Context, head: Head, pool: torch.Tensor, img: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    protos = ctx.get(head, "proto_manager.prototypes")
    features = call_subject("forward_features", ctx.get(head, "forward_features"), pool, img)
    similarities = features[0] if isinstance(features, tuple) else features
    terms = loss_terms(ctx, head, protos, similarities, labels)
    grads = {}
    for name in _present(ctx):
        value = ctx.key(terms, _KEYS[name])
        g = None
        if isinstance(value, torch.Tensor) and value.requires_grad:
            (g,) = torch.autograd.grad(value.sum(), protos, retain_graph=True, allow_unused=True)
        grads[name] = torch.zeros_like(protos) if g is None else g.detach()
    return grads


def _probe(
    ctx: Context, head: Head, pool: torch.Tensor, img: torch.Tensor, labels: torch.Tensor, salt: int, raised: bool
) -> tuple[TermTraining, ...]:
    """Whether each term trains along the prototypes and the parameters the class embeddings come from."""

    def evaluate(h: Head, dtype: torch.dtype | None) -> dict[str, object]:
        x, y = (pool, img) if dtype is None else (pool.to(dtype), img.to(dtype))
        features = call_subject("forward_features", ctx.get(h, "forward_features"), x, y)
        similarities = features[0] if isinstance(features, tuple) else features
        terms = loss_terms(ctx, h, ctx.get(h, "proto_manager.prototypes"), similarities, labels)
        return {ctx.subject.names.apply(_KEYS[t]): ctx.key(terms, _KEYS[t]) for t in _present(ctx)}

    # What these states make active whatever the head: a class's samples are present (cluster),
    # classes own prototypes (contrastive), and at the raised margin every sample is inside the
    # hinge (separation). Diversity depends on the head's own threshold: at rest is said, not refuted.
    certain = {"cluster": True, "contrastive": True, "separation": raised}
    active = {ctx.subject.names.apply(_KEYS[t]): certain.get(t, False) for t in _present(ctx)}
    return probe_head(ctx, head, evaluate, salt, active=active)


def _table(
    ctx: Context, label: str, margin: float | None, states: int, rng: np.random.Generator, log: TrainingLog
) -> Table:
    cosines: dict[tuple[str, str], list[float]] = {p: [] for p in itertools.combinations(_present(ctx), 2)}
    margins: set[float] = set()
    for index in range(states):
        head, pool, img, labels = _state(ctx, index, margin)
        if ctx.has("proto_loss_fn.margin"):
            margins.add(float(ctx.get(head, "proto_loss_fn.margin")))
        grads = _gradients(ctx, head, pool, img, labels)
        # until each term is decided: a hinge inactive here may be active in the next state (or at the raised margin)
        if index < _PROBE_STATES and log.wants():
            log.add(_probe(ctx, head, pool, img, labels, index + (0 if margin is None else 1000), margin is not None))
        for a, b in cosines:
            ga, gb = grads[a].flatten().double(), grads[b].flatten().double()
            na, nb = float(ga.norm()), float(gb.norm())
            if na > 0 and nb > 0:
                cosines[(a, b)].append(float(ga @ gb) / (na * nb))
    pairs = tuple(_stats(f"{a}/{b}", values, rng) for (a, b), values in cosines.items())
    return Table(label, margins.pop() if len(margins) == 1 else None, states, pairs)


def _present(ctx: Context) -> tuple[str, ...]:
    """The terms the subject's loss returns (a head may drop or replace some of the four)."""
    return tuple(t for t in TERMS if ctx.has(_KEYS[t]))


def _measure_conflicts(ctx: Context) -> ConflictMeasurement:
    present = _present(ctx)
    if len(present) < 2:  # no pair to measure: n/a naming the first absent term
        ctx.key({}, next(_KEYS[t] for t in TERMS if t not in present))
    states = ctx.budget(_MIN_STATES, minimum=_MIN_STATES)
    probe, *_ = _state(ctx, 0, None)
    if not ctx.get(
        probe, "proto_manager.prototypes"
    ).requires_grad:  # kept in a buffer: no term's gradient reaches them
        return ConflictMeasurement((), _EFFECT, _MIN_STATES, absent_terms=(), untrainable=True)
    rng = np.random.default_rng(ctx.seed)
    log = TrainingLog()
    tables = [_table(ctx, "own", None, states, rng, log)]
    unavailable = None
    try:
        tables.append(_table(ctx, "raised", _RAISED_MARGIN, states, rng, log))
    except SettingNotApplied as exc:
        unavailable = str(exc)
    absent = tuple(t for t in TERMS if t not in present)
    return ConflictMeasurement(tuple(tables), _EFFECT, _MIN_STATES, unavailable, absent, training=log.records())


def _pair_msg(p: PairStats, table: Table) -> Msg:
    return Msg(
        "losses.conflicts.pair",
        {"pair": p.pair, "mean": p.mean_cos, "low": p.ci_low, "high": p.ci_high, "margin": table.margin or "?"},
    )


def _shown(m: ConflictMeasurement) -> dict[str, tuple[PairStats, Table]]:
    """Each pair once: from the last table (the raised margin) where it was active, else the first."""
    shown: dict[str, tuple[PairStats, Table]] = {}
    for table in m.tables:
        for p in table.pairs:
            if p.pair not in shown or p.relation != "inactive":
                shown[p.pair] = (p, table)
    return shown


def _judge_conflicts(m: ConflictMeasurement) -> Finding:
    if m.untrainable:
        return Finding("n/a", Msg("losses.conflicts.untrainable", {}))
    untrainable = untrained(m.training)  # its gradient is no gradient: the pairs with it mean nothing
    if untrainable is not None:
        return untrainable
    shown = _shown(m)
    conflicting = {p.pair for t in m.tables for p in t.pairs if p.relation == "conflict"}
    for table in m.tables:  # a conflict seen at any margin is shown where it was seen
        for p in table.pairs:
            if p.relation == "conflict" and shown[p.pair][0].relation != "conflict":
                shown[p.pair] = (p, table)
    conflicts = [_pair_msg(p, t) for name, (p, t) in shown.items() if name in conflicting]
    names = set(shown)
    measured = {name for name, (p, _) in shown.items() if p.relation != "inactive"}
    aligned = [_pair_msg(p, t) for p, t in shown.values() if p.relation == "aligned"]
    # A verdict on fewer pairs says so, so that it is never read as one on all six.
    partial = "_partial" if m.absent_terms else ""
    absent: dict[str, Any] = {"absent": list(m.absent_terms)} if m.absent_terms else {}
    if conflicts:  # the pairs that could not be measured are said whatever else is found
        params: dict[str, Any] = {"conflicts": conflicts, "aligned": aligned or "-", **absent}
        inactive = sorted(names - measured)
        if inactive:
            params.update(inactive=inactive, min=m.min_states)
            return Finding("fail", Msg(f"losses.conflicts.fail{partial}_inactive", params))
        return Finding("fail", Msg(f"losses.conflicts.fail{partial}", params))
    if measured != names:
        return Finding(
            "error", Msg("losses.conflicts.inactive", {"pairs": sorted(names - measured), "min": m.min_states})
        )
    params = {"pairs": len(names), "aligned": aligned or "-", **absent}
    return Finding("pass", Msg(f"losses.conflicts.pass{partial}", params))


ORDER = 140

CHECKS: tuple[Check[Any], ...] = (
    Check(
        id="losses.conflicts",
        catalogue=1,
        measure=_measure_conflicts,
        judge=_judge_conflicts,
        needs=(
            *LOSS_CALL_NEEDS,
            "proto_manager.prototypes",
            "forward_features",
            *(f"?{key}" for key in _KEYS.values()),  # at least two of them (else n/a naming one)
            "?proto_loss_fn.margin",
            *PARAMETER_NEEDS,
        ),
        settings=("dropout_rate", "?margin"),
        severity="medium",
    ),
)
