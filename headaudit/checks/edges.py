"""Edge cases of the loss and the configuration (claim 2.4, and its caveats).

- ``edges.cluster-empty`` (claim 2.4): with no class present (an empty label batch) the
  cluster term is 0, finite, with a finite gradient;
- ``edges.small-batches``: a batch of one, one class in the batch, one prototype per class,
  and a single prototype in all (every other class empty) give finite losses and
  gradients. The first three go through the training forward; the last through
  ``forward_features`` and the loss (the forward's aggregation over a class without
  prototypes is ``edges.zero-prototypes``' business);
- ``edges.zero-prototypes``: ``num_prototypes=0`` is rejected with a clear message.

These checks are about how the subject behaves on edge inputs, so a raise of the subject
at the call under test IS the measurement: its type and message are recorded (and whether
it names what is wrong), never turned into ``error``. A finite gradient is vacuous for a
term that has none, so the terms they read are also probed to train
(:mod:`headaudit.checks._trains`): on the empty batch the cluster term must be at rest, and
in a one-sample control batch it must train. About 0.5 s per subject.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from headaudit.adapters import LOSS_CALL_NEEDS, Head, loss_terms, set_counts
from headaudit.checks._common import computed_in, dtype_name, tolerance
from headaudit.checks._trains import (
    PARAMETER_NEEDS,
    TermTraining,
    TrainingLog,
    probe_head,
    probe_loss,
    subject_key,
    untrained,
    with_case,
)
from headaudit.context import Context
from headaudit.messages import Msg
from headaudit.model import Finding
from headaudit.registry import Check
from headaudit.sandbox import SubjectRaised, call_subject

__all__ = ["CHECKS", "ORDER"]

_CLASSES, _EMB, _PATCHES = 3, 8, 4
_PROTOS = "proto_manager.prototypes"
_CLUSTER = "proto_loss_fn[cluster_loss]"


def _finite_grad(value: torch.Tensor, wrt: list[torch.Tensor]) -> bool:
    if not value.requires_grad:
        return True
    grads = torch.autograd.grad(value.sum(), wrt, allow_unused=True, retain_graph=True)
    return all(g is None or bool(torch.isfinite(g).all()) for g in grads)


# --- edges.cluster-empty --------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterEmptyMeasurement:
    value: float | None
    tolerance: float | None
    finite_gradient: bool | None
    raised: str | None
    dtype: str | None
    # whether the term trains: inactive on the empty batch (nothing to train), and active in a
    # control batch of one sample (so "a finite gradient" on the empty batch is not vacuous)
    training: tuple[TermTraining, ...] = ()


def _measure_cluster_empty(ctx: Context) -> ClusterEmptyMeasurement:
    torch.manual_seed(ctx.seed)
    head = ctx.build(num_classes=_CLASSES, emb_dim=_EMB)
    protos = ctx.get(head, _PROTOS)
    try:
        terms = loss_terms(ctx, head, protos)  # no labels: an empty batch, no class present
    except SubjectRaised as exc:  # the loss's reaction to an empty batch is what is measured
        return ClusterEmptyMeasurement(None, None, None, exc.detail, None)
    value = torch.as_tensor(ctx.key(terms, _CLUSTER))
    precision = computed_in(value, sources=(protos,))
    key = subject_key(ctx, _CLUSTER)
    empty = probe_loss(ctx, head, protos, None, None, [key], 1, along=("prototypes",))
    per_class = int(ctx.get(head, "proto_manager.max_prototypes"))
    sims = torch.rand(1, _CLASSES, per_class, generator=ctx.generator(5)) * 2 - 1
    active = {f"proto_loss_fn[{key}]": True}  # one sample with valid own prototypes: its distance counts
    control = probe_loss(ctx, head, protos, sims, [0], [key], 2, along=("similarities",), active=active)
    return ClusterEmptyMeasurement(
        value=float(value.detach().sum()),
        tolerance=tolerance(precision, 0.0),
        finite_gradient=_finite_grad(value, [protos]),
        raised=None,
        dtype=dtype_name(precision),
        training=with_case(empty, "empty batch") + with_case(control, "one sample"),
    )


def _judge_cluster_empty(m: ClusterEmptyMeasurement) -> Finding:
    if m.raised is not None:
        return Finding("fail", Msg("edges.cluster-empty.raised", {"detail": m.raised}))
    assert m.value is not None
    assert m.tolerance is not None
    if not (math.isfinite(m.value) and abs(m.value) <= m.tolerance):
        return Finding("fail", Msg("edges.cluster-empty.value", {"value": m.value}))
    if not m.finite_gradient:
        return Finding("fail", Msg("edges.cluster-empty.gradient", {}))
    untrainable = untrained(m.training)
    if untrainable is not None:
        return untrainable
    return Finding("pass", Msg("edges.cluster-empty.pass", {"value": m.value, "dtype": m.dtype or "?"}))


# --- edges.small-batches --------------------------------------------------------------------


@dataclass(frozen=True)
class SmallCase:
    name: str  # batch-of-one | one-class | one-prototype-per-class | one-prototype-in-all
    batch: int
    counts: tuple[int, ...]
    path: str  # "forward" (training forward) or "loss" (forward_features + the loss)
    raised: str | None = None
    loss: float | None = None
    finite_loss: bool | None = None
    finite_gradient: bool | None = None

    @property
    def ok(self) -> bool:
        return self.raised is None and bool(self.finite_loss) and bool(self.finite_gradient)


@dataclass(frozen=True)
class SmallBatchesMeasurement:
    cases: tuple[SmallCase, ...]
    training: tuple[TermTraining, ...] = ()  # whether each loss term these cases read trains


def _forward_terms(out: Any) -> dict[str, object]:
    """The loss a training forward returns, and its loss dict's terms where it returns one."""
    terms: dict[str, object] = {}
    if isinstance(out, (tuple, list)) and len(out) > 1:
        terms["forward[loss]"] = out[1]
        if len(out) > 2 and isinstance(out[2], Mapping):
            terms.update({f"forward[{k}]": v for k, v in out[2].items()})
    return terms


def _params(head: Head) -> list[torch.Tensor]:
    return [p for p in head.parameters() if p.requires_grad]


def _forward_case(ctx: Context, log: TrainingLog | None, name: str, labels: list[int], per_class: int) -> SmallCase:
    torch.manual_seed(ctx.seed)
    head = ctx.build(num_classes=_CLASSES, emb_dim=_EMB, train=True, num_prototypes=per_class)
    counts = tuple(int(k) for k in ctx.get(head, "proto_manager.protos_per_class").tolist())
    gen = ctx.generator(len(labels) * 10 + per_class)
    pool = torch.randn(len(labels), _PATCHES, _EMB, generator=gen)
    img = torch.randn(len(labels), _EMB, generator=gen)
    base: dict[str, Any] = {"name": name, "batch": len(labels), "counts": counts, "path": "forward"}
    labelled = {ctx.parameter("forward.labels"): torch.tensor(labels)}  # the head's own name
    try:
        out = call_subject("forward", head, pool, img, **labelled)
        loss = out[1] if isinstance(out, (tuple, list)) and len(out) > 1 else out
        loss = torch.as_tensor(loss)
        grad_ok = _finite_grad(loss, _params(head))
    except SubjectRaised as exc:  # an edge input's raise is the measurement here
        return SmallCase(**base, raised=exc.detail)
    value = float(loss.detach().sum())
    if log is not None and log.wants() and math.isfinite(value):

        def evaluate(h: Head, dtype: torch.dtype | None) -> dict[str, object]:
            x, y = (pool, img) if dtype is None else (pool.to(dtype), img.to(dtype))
            return _forward_terms(call_subject("forward", h, x, y, **labelled))

        log.add(with_case(probe_head(ctx, head, evaluate, len(labels) * 10 + per_class), name))
    return SmallCase(**base, loss=value, finite_loss=math.isfinite(value), finite_gradient=grad_ok)


def _loss_case(ctx: Context, log: TrainingLog, name: str, counts: tuple[int, ...]) -> SmallCase:
    torch.manual_seed(ctx.seed)
    head = ctx.build(num_classes=_CLASSES, emb_dim=_EMB, train=True, num_prototypes=1)
    set_counts(ctx, head, counts)
    gen = ctx.generator(99)
    pool, img = torch.randn(1, _PATCHES, _EMB, generator=gen), torch.randn(1, _EMB, generator=gen)
    labels = torch.tensor([next(c for c, k in enumerate(counts) if k)])
    protos = ctx.get(head, _PROTOS)
    base: dict[str, Any] = {"name": name, "batch": 1, "counts": counts, "path": "loss"}
    try:
        features = call_subject("forward_features", ctx.get(head, "forward_features"), pool, img)
        similarities = features[0] if isinstance(features, (tuple, list)) else features
        terms = loss_terms(ctx, head, protos, similarities, labels)
        values = [torch.as_tensor(v) for v in terms.values()]
        total = torch.stack([v.sum() for v in values]).sum() if values else torch.zeros(())
        # the prototypes' gradient; where they are not trained by gradient (a buffer), the parameters'
        grad_ok = _finite_grad(total, [protos] if protos.requires_grad else _params(head))
    except SubjectRaised as exc:
        return SmallCase(**base, raised=exc.detail)
    finite = all(bool(torch.isfinite(v).all()) for v in values)
    if log.wants() and finite:

        def evaluate(h: Head, dtype: torch.dtype | None) -> dict[str, object]:
            x, y = (pool, img) if dtype is None else (pool.to(dtype), img.to(dtype))
            out = call_subject("forward_features", ctx.get(h, "forward_features"), x, y)
            sims = out[0] if isinstance(out, (tuple, list)) else out
            found = loss_terms(ctx, h, ctx.get(h, _PROTOS), sims, labels)
            return {f"proto_loss_fn[{k}]": v for k, v in found.items()}

        log.add(with_case(probe_head(ctx, head, evaluate, 99), name))
    return SmallCase(**base, loss=float(total.detach()), finite_loss=finite, finite_gradient=grad_ok)


def _measure_small(ctx: Context) -> SmallBatchesMeasurement:
    # each term is probed in the first case of each path (forward, loss): the later forward
    # cases hold no term the first does not, and each probe costs a dozen training forwards
    log = TrainingLog()
    cases = (
        _forward_case(ctx, log, "batch-of-one", [0], 2),
        _forward_case(ctx, None, "one-class", [1, 1, 1, 1], 2),
        _forward_case(ctx, None, "one-prototype-per-class", [0, 1, 2, 0], 1),
        _loss_case(ctx, log, "one-prototype-in-all", (1,) + (0,) * (_CLASSES - 1)),
    )
    return SmallBatchesMeasurement(cases, log.records())


def _small_msg(c: SmallCase) -> Msg:
    params: dict[str, Any] = {"case": Msg(f"edges.small-batches.case.{c.name}"), "detail": c.raised or ""}
    if c.raised is not None:
        return Msg("edges.small-batches.case_raised", params)
    key = "case_loss" if not c.finite_loss else "case_gradient"
    return Msg(f"edges.small-batches.{key}", {**params, "loss": c.loss if c.loss is not None else math.nan})


def _judge_small(m: SmallBatchesMeasurement) -> Finding:
    if not m.cases:
        return Finding("error", Msg("edges.small-batches.none", {}))
    bad = [c for c in m.cases if not c.ok]
    if bad:
        params = {"bad": len(bad), "total": len(m.cases), "cases": [_small_msg(c) for c in bad]}
        return Finding("fail", Msg("edges.small-batches.fail", params))
    untrainable = untrained(m.training)
    if untrainable is not None:
        return untrainable
    names = [Msg(f"edges.small-batches.case.{c.name}") for c in m.cases]
    return Finding("pass", Msg("edges.small-batches.pass", {"cases": names}))


# --- edges.zero-prototypes ------------------------------------------------------------------


@dataclass(frozen=True)
class ZeroPrototypesMeasurement:
    stage: str  # constructor | forward | none (nothing raised)
    raised: str | None
    names_it: bool | None  # the message mentions num_prototypes or prototypes
    output_finite: bool | None = None
    output_shape: tuple[int, ...] | None = None


def _names_it(text: str) -> bool:
    return "prototype" in text.lower()


def _measure_zero(ctx: Context) -> ZeroPrototypesMeasurement:
    torch.manual_seed(ctx.seed)
    try:
        head = ctx.build(num_classes=_CLASSES, emb_dim=_EMB, num_prototypes=0)
    except SubjectRaised as exc:  # rejecting the configuration is the behaviour under test
        return ZeroPrototypesMeasurement("constructor", exc.detail, _names_it(str(exc.exc)))
    gen = ctx.generator(0)
    pool, img = torch.randn(2, _PATCHES, _EMB, generator=gen), torch.randn(2, _EMB, generator=gen)
    try:
        with torch.no_grad():
            out = call_subject("forward", head, pool, img)
    except SubjectRaised as exc:
        return ZeroPrototypesMeasurement("forward", exc.detail, _names_it(str(exc.exc)))
    logits = out[0] if isinstance(out, (tuple, list)) else out
    logits = torch.as_tensor(logits)
    return ZeroPrototypesMeasurement("none", None, None, bool(torch.isfinite(logits).all()), tuple(logits.shape))


def _judge_zero(m: ZeroPrototypesMeasurement) -> Finding:
    if m.raised is None:
        params = {"shape": list(m.output_shape or ()), "finite": bool(m.output_finite)}
        return Finding("fail", Msg("edges.zero-prototypes.accepted", params))
    params = {"stage": Msg(f"edges.zero-prototypes.stage.{m.stage}"), "detail": m.raised}
    if m.names_it and m.stage == "constructor":
        return Finding("pass", Msg("edges.zero-prototypes.pass", params))
    key = "late" if not m.names_it else "late_named"
    return Finding("warn", Msg(f"edges.zero-prototypes.{key}", params))


ORDER = 240

CHECKS: tuple[Check[Any], ...] = (
    Check(
        id="edges.cluster-empty",
        catalogue=2,
        measure=_measure_cluster_empty,
        judge=_judge_cluster_empty,
        needs=(*LOSS_CALL_NEEDS, _PROTOS, _CLUSTER),
        severity="medium",
    ),
    Check(
        id="edges.small-batches",
        catalogue=2,
        measure=_measure_small,
        judge=_judge_small,
        needs=(*LOSS_CALL_NEEDS, _PROTOS, "forward_features", "forward.labels", *PARAMETER_NEEDS),
        settings=("num_prototypes",),
        severity="medium",
    ),
    Check(
        id="edges.zero-prototypes",
        catalogue=2,
        measure=_measure_zero,
        judge=_judge_zero,
        settings=("num_prototypes",),
        severity="low",
    ),
)
