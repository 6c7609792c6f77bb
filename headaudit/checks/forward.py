"""Component contracts of the head's forward path (CHECKS.md 3b).

``forward.similarity``: ``forward_features``' similarities are the cosines of the
projected sample (``proj`` of the global feature, averaged over its tokens when it is
3-D) and each class embedding it returns, laid out ``(B, num_classes, max_prototypes)``;
``compute_similarities`` ignores positive scalings of either input; the prototype rows
are used by direction only.

``forward.aggregation``: a class logit is ``temperature`` times the largest similarity
over the class's valid slots, both on the similarities ``forward_features`` computes and
on planted ones (invalid slots set to the largest possible cosine), which reach the
forward through the head's own ``forward_features`` name.

``forward.contract``: what ``forward`` returns in train and eval (arity, types, shapes,
finiteness; a zero loss and an empty dict in eval even with labels; the total as the
uncertainty weighting of the head's own reported ``ce_loss`` and ``proto_loss``; the loss
dict as the breakdown of the total; the reported ``ce_loss`` against the plain
cross-entropy of the returned logits, where a difference is explained by measurement,
class weights or label smoothing, and named (:class:`CeExplanation`), or fails); that the
total's gradient is its derivative for every parameter (a refactor that
detaches part of the graph returns the same values and trains less); that the parts
BEHAVIOR.md makes trainable are parameters and the log sigmas start at 0; and the head's
interface, recorded as evidence for a regression guard (:func:`interface`).

Oracles are numpy (:mod:`headaudit.checks._oracles`), fed with the subject's tensors.
Cost (2-core CPU, one thread): about 0.1-0.35 s per subject for each of the first two
checks, 0.5 s for ``forward.contract`` (its central differences: a few hundred small
forwards).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np
import torch
from hypothesis import strategies as st
from torch import nn

from headaudit.adapters import LAYOUT_NEEDS, LOSS_CALL_NEEDS, Head, loss_terms, term_value
from headaudit.build import accepts_keyword
from headaudit.checks._common import Layout, computed_in, dtype_name, tolerance
from headaudit.checks._contracts import build_contract_head, contract_layouts, features, logits_of
from headaudit.checks._oracles import arr, cross_entropy, perturb, unit
from headaudit.checks._trains import PARAMETER_NEEDS, TermTraining, TrainingLog, parameter_groups, probe, untrained
from headaudit.context import Context, NameMissing, Refuted
from headaudit.messages import Msg
from headaudit.model import Finding
from headaudit.names import split_key
from headaudit.registry import Check
from headaudit.sandbox import SubjectRaised, call_subject

__all__ = ["CHECKS", "ORDER", "interface"]

_ULPS = 256.0  # a cosine or logit recomputed in float64 from float32 tensors: a few hundred ulps


def _forward_features(ctx: Context, head: Head, pool: torch.Tensor, img: torch.Tensor) -> Any:
    with torch.no_grad():
        return call_subject("forward_features", ctx.get(head, "forward_features"), pool, img)


# --- forward.similarity --------------------------------------------------------------


@dataclass(frozen=True)
class SimilarityViolation:
    kind: str  # returns, shape, class-embeddings, oracle, range, scale-features, scale-embeddings, prototype-scale
    layout: Layout
    batch: int
    global_tokens: int
    difference: float | None = None
    tolerance: float | None = None
    precision: str = ""  # the dtype the compared similarities were computed in (the tolerance's)
    at: tuple[int, ...] = ()
    measured: float | None = None
    oracle: float | None = None
    shape: tuple[int, ...] = ()


@dataclass(frozen=True)
class SimilarityMeasurement:
    counterexample: SimilarityViolation | None
    cases: int
    compared: int
    largest_difference: float
    largest_scaling_change: float
    largest_prototype_scaling_change: float
    tolerance: float
    dtype: str


_SCALES = (0.25, 3.0, 40.0)


def _measure_similarity(ctx: Context) -> SimilarityMeasurement:
    worst = {"diff": 0.0, "scale": 0.0, "proto": 0.0, "tol": 0.0, "compared": 0}
    dtypes: set[str] = set()
    cases = [0]

    def prop(case: tuple[Layout, int, int, int, int]) -> None:
        asked, batch, patches, tokens, salt = case
        head, layout = build_contract_head(ctx, asked, salt, img_feat_dim=12)
        cases[0] += 1
        pool, img = features(ctx, salt, batch, patches, 12, tokens)
        where: dict[str, Any] = {"layout": layout, "batch": batch, "global_tokens": tokens}
        out = _forward_features(ctx, head, pool, img)
        if not isinstance(out, (tuple, list)) or len(out) < 2:
            raise Refuted(SimilarityViolation("returns", **where))
        sims, class_emb = out[0], out[1]
        rows = layout.rows
        if tuple(sims.shape) != (batch, layout.num_classes, layout.max_prototypes):
            raise Refuted(SimilarityViolation("shape", shape=tuple(sims.shape), **where))
        with torch.no_grad():
            proj = ctx.get(head, "proj")
            weight = next((w for w in proj.parameters() if w.is_floating_point()), None)
            sample = img if img.dim() == 2 else img.mean(dim=1)
            if weight is not None:  # a head kept in another dtype casts its inputs: do as it does
                sample = sample.to(weight.dtype)
            projected = call_subject("proj", proj, sample)
        emb = arr(class_emb)
        fits = emb.ndim == 3 and emb.shape[0] in (1, batch) and emb.shape[1:] == (rows, projected.shape[-1])
        if not fits:
            raise Refuted(SimilarityViolation("class-embeddings", shape=tuple(class_emb.shape), **where))
        emb = np.broadcast_to(emb, (batch, *emb.shape[1:]))
        p = unit(arr(projected))
        oracle = np.einsum("be,bpe->bp", p, unit(emb)).reshape(batch, layout.num_classes, layout.max_prototypes)
        measured = arr(sims)
        # what forward_features computed after the projection and embeddings the oracle reads
        # (the checker's float32 features included: their rounding bounds any head's)
        precision = computed_in(sims, sources=(projected, class_emb))
        dtypes.add(dtype_name(precision))
        where["precision"] = dtype_name(precision)
        tol = tolerance(precision, 1.0, _ULPS)
        worst["tol"] = max(worst["tol"], tol)
        diff = np.abs(measured - oracle)
        worst["compared"] += diff.size
        worst["diff"] = max(worst["diff"], float(diff.max()))
        if not float(diff.max()) <= tol:
            at = np.unravel_index(int(diff.argmax()), diff.shape)
            low = float(measured.min()) < -1 - tol or float(measured.max()) > 1 + tol
            raise Refuted(
                SimilarityViolation(
                    "range" if low else "oracle",
                    difference=float(diff.max()),
                    tolerance=tol,
                    at=tuple(int(i) for i in at),
                    measured=float(measured[at]),
                    oracle=float(oracle[at]),
                    **where,
                )
            )
        # compute_similarities ignores positive scalings of the features or the embeddings it receives.
        gen = ctx.generator(70_000 + salt)
        pick = torch.randint(0, len(_SCALES), (batch, 1), generator=gen)
        a = torch.tensor(_SCALES, dtype=projected.dtype)[pick]
        b = torch.tensor(_SCALES, dtype=class_emb.dtype)[torch.randint(0, 3, (*class_emb.shape[:2], 1), generator=gen)]
        compute = ctx.get(head, "compute_similarities")
        with torch.no_grad():
            plain = arr(call_subject("compute_similarities", compute, projected, class_emb))
            for kind, args in (
                ("scale-features", (projected * a, class_emb)),
                ("scale-embeddings", (projected, class_emb * b)),
            ):
                scaled = arr(call_subject("compute_similarities", compute, *args))
                change = float(np.abs(scaled - plain).max()) if scaled.shape == plain.shape else math.inf
                worst["scale"] = max(worst["scale"], change)
                if not change <= tol:
                    raise Refuted(SimilarityViolation(kind, difference=change, tolerance=tol, **where))
        # The prototype rows are used by direction only.
        with torch.no_grad():
            protos = ctx.get(head, "proto_manager.prototypes")
            factors = 0.2 + 4.8 * torch.rand(protos.size(0), 1, generator=gen, dtype=torch.float64)
            protos.mul_(factors.to(protos.dtype))
        again = arr(logits_of(_forward_features(ctx, head, pool, img)))
        change = float(np.abs(again - measured).max()) if again.shape == measured.shape else math.inf
        worst["proto"] = max(worst["proto"], change)
        if not change <= tol:
            raise Refuted(SimilarityViolation("prototype-scale", difference=change, tolerance=tol, **where))

    strategy = st.tuples(
        contract_layouts(min_count=0), st.integers(1, 6), st.integers(1, 4), st.integers(0, 3), st.integers(0, 99)
    )
    explicit = [
        (Layout(2, 2, (2, 1)), 2, 3, 0, 0),
        (Layout(3, 3, (1, 3, 0)), 3, 2, 3, 1),
    ]
    found = ctx.search(strategy, prop, ci_examples=10, explicit=explicit)
    return SimilarityMeasurement(
        counterexample=found.error.detail if found else None,
        cases=cases[0],
        compared=int(worst["compared"]),
        largest_difference=worst["diff"],
        largest_scaling_change=worst["scale"],
        largest_prototype_scaling_change=worst["proto"],
        tolerance=worst["tol"],
        dtype=", ".join(sorted(dtypes)),
    )


def _judge_similarity(m: SimilarityMeasurement) -> Finding:
    bad = m.counterexample
    if bad is not None:
        params: dict[str, Any] = {
            "layout": bad.layout.describe(),
            "batch": bad.batch,
            "tokens": bad.global_tokens or "-",
            "difference": bad.difference if bad.difference is not None else math.nan,
            "tolerance": bad.tolerance if bad.tolerance is not None else math.nan,
            "at": list(bad.at) or "-",
            "measured": bad.measured if bad.measured is not None else math.nan,
            "oracle": bad.oracle if bad.oracle is not None else math.nan,
            "shape": list(bad.shape) or "-",
        }
        return Finding("fail", Msg(f"forward.similarity.{bad.kind}", params))
    if m.compared == 0:
        return Finding("error", Msg("forward.similarity.none", {}))
    return Finding(
        "pass",
        Msg(
            "forward.similarity.pass",
            {
                "compared": m.compared,
                "cases": m.cases,
                "difference": m.largest_difference,
                "scaling": max(m.largest_scaling_change, m.largest_prototype_scaling_change),
                "tolerance": m.tolerance,
            },
        ),
    )


# --- forward.aggregation -------------------------------------------------------------


@dataclass(frozen=True)
class AggregationViolation:
    kind: str  # "natural", "planted", "shape"
    layout: Layout
    batch: int
    temperature: float
    sample: int = 0
    class_idx: int = 0
    measured: float | None = None
    oracle: float | None = None
    max_valid: float | None = None
    tolerance: float | None = None
    precision: str = ""  # the dtype the compared logits were computed in (the tolerance's)
    planted: str = ""  # where the largest valid similarity was planted: first, last, middle
    shape: tuple[int, ...] = ()


@dataclass(frozen=True)
class AggregationMeasurement:
    counterexample: AggregationViolation | None
    cases: int
    planted_cases: int
    not_through_forward_features: int
    temperatures: tuple[float, ...]
    largest_difference: float
    tolerance: float


_TEMPERATURES = (10.0, 3.5, 0.5, 27.0)


def _plant(sims: torch.Tensor, layout: Layout, gen: torch.Generator, where: str) -> torch.Tensor:
    """Valid slots in [-0.9, 0.9] with each class's largest one at ``where``; invalid slots at 1.0."""
    planted = (torch.rand(sims.shape, generator=gen, dtype=torch.float64) * 1.6 - 0.8).to(sims.dtype)
    for c, k in enumerate(layout.counts):
        slot = {"first": 0, "last": k - 1, "middle": k // 2}[where]
        planted[:, c, slot] = 0.9
        planted[:, c, k:] = 1.0
    return planted


def _measure_aggregation(ctx: Context) -> AggregationMeasurement:
    seen: dict[str, Any] = {"cases": 0, "planted": 0, "bypassed": 0, "diff": 0.0, "tol": 0.0}
    temperatures: set[float] = set()
    takes_temperature = accepts_keyword(ctx.subject.head_cls, "temperature") is not False

    def check(kind: str, logits: Any, sims: torch.Tensor, layout: Layout, t: float, planted: str = "") -> None:
        where: dict[str, Any] = {"layout": layout, "batch": sims.shape[0], "temperature": t, "planted": planted}
        if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (sims.shape[0], layout.num_classes):
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else ()
            raise Refuted(AggregationViolation("shape", shape=shape, **where))
        s = arr(sims)
        best = np.stack([s[:, c, :k].max(axis=-1) for c, k in enumerate(layout.counts)], axis=1)
        oracle = t * best
        measured = arr(logits)
        precision = computed_in(logits, sources=(sims,))  # what forward computed after the similarities
        tol = tolerance(precision, abs(t), _ULPS)
        where["precision"] = dtype_name(precision)
        diff = np.abs(measured - oracle)
        seen["diff"], seen["tol"] = max(seen["diff"], float(diff.max())), max(seen["tol"], tol)
        if not float(diff.max()) <= tol:
            b, c = (int(i) for i in np.unravel_index(int(diff.argmax()), diff.shape))
            raise Refuted(
                AggregationViolation(
                    kind,
                    sample=b,
                    class_idx=c,
                    measured=float(measured[b, c]),
                    oracle=float(oracle[b, c]),
                    max_valid=float(best[b, c]),
                    tolerance=tol,
                    **where,
                )
            )

    def prop(case: tuple[Layout, int, int, int, str]) -> None:
        asked, batch, t_index, salt, where = case
        settings: dict[str, Any] = {"temperature": _TEMPERATURES[t_index]} if takes_temperature else {}
        head, layout = build_contract_head(ctx, asked, salt, **settings)
        seen["cases"] += 1
        t = float(ctx.get(head, "temperature"))
        temperatures.add(round(t, 6))
        pool, img = features(ctx, salt, batch, 3, 8)
        sims = _forward_features(ctx, head, pool, img)[0]
        with torch.no_grad():
            logits = logits_of(call_subject("forward", head, pool, img))
        check("natural", logits, sims, layout, t)
        # Planted similarities reach the forward through the head's own forward_features.
        planted = _plant(sims, layout, ctx.generator(60_000 + salt), where)
        original = ctx.get(head, "forward_features")
        name = ctx.subject.names.apply("forward_features")
        used = [0]

        def planting(*args: Any, **kwargs: Any) -> Any:
            used[0] += 1
            out = original(*args, **kwargs)
            return (planted, *out[1:]) if isinstance(out, tuple) else planted

        if "." not in name:  # a method of the head itself: the forward reaches it through the instance
            setattr(head, name, planting)
            try:
                with torch.no_grad():
                    logits = logits_of(call_subject("forward", head, pool, img))
            finally:
                delattr(head, name)
        if not used[0]:
            seen["bypassed"] += 1
            return
        seen["planted"] += 1
        check("planted", logits, planted, layout, t, where)

    strategy = st.tuples(
        contract_layouts(),
        st.integers(1, 6),
        st.integers(0, len(_TEMPERATURES) - 1),
        st.integers(0, 99),
        st.sampled_from(["first", "last", "middle"]),
    )
    explicit = [
        (Layout(3, 3, (3, 1, 2)), 2, 1, 0, "last"),
        (Layout(2, 4, (2, 4)), 3, 2, 1, "first"),
    ]
    found = ctx.search(strategy, prop, ci_examples=10, explicit=explicit)
    return AggregationMeasurement(
        counterexample=found.error.detail if found else None,
        cases=seen["cases"],
        planted_cases=seen["planted"],
        not_through_forward_features=seen["bypassed"],
        temperatures=(min(temperatures), max(temperatures)) if temperatures else (),
        largest_difference=seen["diff"],
        tolerance=seen["tol"],
    )


def _judge_aggregation(m: AggregationMeasurement) -> Finding:
    bad = m.counterexample
    if bad is not None:
        params: dict[str, Any] = {
            "layout": bad.layout.describe(),
            "sample": bad.sample,
            "class_idx": bad.class_idx,
            "measured": bad.measured if bad.measured is not None else math.nan,
            "oracle": bad.oracle if bad.oracle is not None else math.nan,
            "max_valid": bad.max_valid if bad.max_valid is not None else math.nan,
            "temperature": bad.temperature,
            "tolerance": bad.tolerance if bad.tolerance is not None else math.nan,
            "planted": Msg(f"forward.aggregation.slot.{bad.planted}") if bad.planted else "-",
            "shape": list(bad.shape) or "-",
        }
        return Finding("fail", Msg(f"forward.aggregation.{bad.kind}", params))
    if m.planted_cases == 0:
        return Finding("error", Msg("forward.aggregation.bypassed", {"cases": m.cases}))
    return Finding(
        "pass",
        Msg(
            "forward.aggregation.pass",
            {
                "cases": m.cases,
                "planted": m.planted_cases,
                "low": m.temperatures[0] if m.temperatures else math.nan,
                "high": m.temperatures[-1] if m.temperatures else math.nan,
                "difference": m.largest_difference,
                "tolerance": m.tolerance,
            },
        ),
    )


# --- forward.contract ----------------------------------------------------------------


def _default(value: Any) -> Any:
    if value is inspect.Parameter.empty:
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _structure(value: Any) -> Any:
    """A value's type, shape and dtype as plain data (no values, no addresses)."""
    if isinstance(value, torch.Tensor):
        return {"tensor": list(value.shape), "dtype": dtype_name(value.dtype)}
    if isinstance(value, Mapping):
        return {"dict": {str(k): _structure(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}}
    if isinstance(value, (tuple, list)):
        return {type(value).__name__: [_structure(v) for v in value]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": type(value).__name__}
    return {"object": type(value).__name__}


_IFACE: dict[str, Any] = {"num_classes": 3, "emb_dim": 8, "img_feat_dim": 8, "num_prototypes": 2, "max_prototypes": 3}
_IFACE_BATCH, _IFACE_PATCHES = 4, 5


#: The forward's labels parameter (``labels`` in BEHAVIOR.md; ``--map forward.labels=targets``).
_LABELS = "forward.labels"


def interface(ctx: Context) -> dict[str, Any]:
    """The head's interface in a stable, JSON-friendly form, at a fixed small configuration.

    Constructor signature with defaults, forward's return structure in eval and train
    (with and without labels), ``forward_features``' return structure, the loss-dict keys,
    and every parameter and buffer with its shape (buffers also with their dtype).
    """
    try:
        signature = [
            {"name": p.name, "kind": p.kind.name.lower(), "default": _default(p.default)}
            for p in inspect.signature(ctx.subject.head_cls).parameters.values()
        ]
    except (TypeError, ValueError):
        signature = []
    torch.manual_seed(ctx.seed)
    built = ctx.build_full(**_IFACE)
    head = built.head
    gen = torch.Generator().manual_seed(ctx.seed)
    pool = torch.randn(_IFACE_BATCH, _IFACE_PATCHES, _IFACE["img_feat_dim"], generator=gen)
    img = torch.randn(_IFACE_BATCH, _IFACE["img_feat_dim"], generator=gen)
    labels = torch.arange(_IFACE_BATCH) % _IFACE["num_classes"]
    labelled = {ctx.parameter(_LABELS): labels}
    returns: dict[str, Any] = {}
    raw: Any = None
    for mode, train, kwargs in (
        ("eval", False, {}),
        ("eval_labels", False, labelled),
        ("train", True, {}),
        ("train_labels", True, labelled),
    ):
        head.train(train)
        try:
            raw = call_subject("forward", head, pool, img, **kwargs)
        except SubjectRaised as exc:  # how forward answers in each mode is the interface being recorded
            raw, returns[mode] = None, {"raised": exc.detail}
            continue
        returns[mode] = _structure(raw)
    head.eval()
    try:
        features_structure = _structure(_forward_features(ctx, head, pool, img))
    except SubjectRaised as exc:
        features_structure = {"raised": exc.detail}
    config = {k: built.settings.get(k, v) for k, v in _IFACE.items() if k != "img_feat_dim"}
    config.update(num_heads=built.sizes[2], img_feat_dim=built.sizes[3], batch=_IFACE_BATCH, patches=_IFACE_PATCHES)
    return {
        "constructor": signature,
        "config": dict(sorted(config.items())),
        "forward": returns,
        "forward_features": features_structure,
        "loss_keys": sorted(map(str, raw[2]))
        if isinstance(raw, tuple) and len(raw) > 2 and isinstance(raw[2], Mapping)
        else None,
        "parameters": {n: list(p.shape) for n, p in sorted(head.named_parameters(), key=lambda kv: kv[0])},
        "buffers": {
            n: {"shape": list(b.shape), "dtype": dtype_name(b.dtype)}
            for n, b in sorted(head.named_buffers(), key=lambda kv: kv[0])
        },
    }


@dataclass(frozen=True)
class ContractViolation:
    kind: str
    mode: str  # eval, eval_labels, train, train_labels
    num_classes: int
    batch: int
    log_sigmas: tuple[float, float]
    detail: str = ""
    measured: float | None = None
    expected: float | None = None
    tolerance: float | None = None
    precision: str = ""  # the dtype the compared value was computed in (the tolerance's)
    ce: float | None = None
    proto_loss: float | None = None


@dataclass(frozen=True)
class ContractMeasurement:
    counterexample: ContractViolation | None
    cases: int
    arity: int | None
    loss_dict: bool
    largest_total_difference: float
    largest_ce_difference: float
    gradient: GradientRecord | None = None
    interface: dict[str, Any] = field(default_factory=dict)
    # Where a ce_loss is not the plain cross-entropy of the returned logits but explained
    # (None where every one is plain): the first such configuration's explanation, how many
    # configurations were explained and by which kinds.
    ce_explained: CeExplanation | None = None
    ce_explained_cases: int | None = None
    ce_explained_kinds: tuple[str, ...] | None = None


_SIGMAS = ((0.3, -0.4), (-0.7, 0.5), (0.9, 0.1), (-0.2, -1.1))
_CE, _TOTAL, _PROTO = "forward[ce_loss]", "forward[total_loss]", "proto_loss_fn[proto_loss]"
_WEIGHT_FN = "proto_loss_fn._get_class_weight"


# --- forward.contract: a ce_loss that is not the plain cross-entropy ------------------


@dataclass(frozen=True)
class CeExplanation:
    """What makes a head's cross-entropy differ from the plain one of its returned logits.

    Found by measurement on batches with the same labels and other features (the head's
    weights depend on the labels, never on the features): class weights read from the
    loss's ``_get_class_weight`` of the batch's class counts (``source="method"``) or
    solved for from the batches (``"fitted"``), label smoothing solved for from the plain
    cross-entropy and the uniform term (``"solved"``), or both from the method's weights.
    Whatever was found is confirmed: it reproduces the head's value on every batch within
    that value's tolerance.
    """

    kind: str  # "weights", "smoothing", "weights-smoothing"
    source: str  # "method", "fitted", "solved"
    labels: tuple[int, ...]
    weights: tuple[float | None, ...]  # per class; None for a class the batch lacks (it has no effect)
    smoothing: float | None
    reported: float  # the head's cross-entropy on the first batch
    plain: float  # the plain cross-entropy of its returned logits
    batches: int
    largest_difference: float  # largest |explained - head's| over the batches
    tolerance: float  # the tolerance of the value where that difference was largest
    # "weighted-mean": divided by the weights' sum, as weight= does; "mean": per-sample
    # weights averaged over the batch (cross_entropy(reduction="none") * w[labels], mean)
    reduction: str = "weighted-mean"


@dataclass(frozen=True)
class _CeProbe:
    """One batch: the returned logits (float64), the head's cross-entropy and its tolerance."""

    logits: np.ndarray
    reported: float
    tolerance: float


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    top = logits.max(axis=-1, keepdims=True)
    shifted = logits - top
    out: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return out


def _cross_entropy(
    logits: np.ndarray, labels: np.ndarray, weights: np.ndarray, smoothing: float, reduction: str = "weighted-mean"
) -> float:
    """``torch.nn.functional.cross_entropy`` with ``weight`` and ``label_smoothing``, mean reduction.

    ``((1 - e) * sum_i w[y_i] * nll_i + e / C * sum_i sum_c w_c * (-log p_ic)) / sum_i w[y_i]``,
    as torch computes it (the smoothing term normalised by the same weights). With
    ``reduction="mean"`` the sum is divided by the batch size instead: per-sample weights
    averaged over the batch, as ``(cross_entropy(..., reduction="none") * w[labels]).mean()``.
    """
    logp = _log_softmax(logits)
    rows = np.arange(len(labels))
    nll = -logp[rows, labels]
    uniform = -(logp * weights).sum(axis=-1) / logits.shape[-1]
    picked = weights[labels]
    total = (1.0 - smoothing) * (picked * nll).sum() + smoothing * uniform.sum()
    return float(total / (picked.sum() if reduction == "weighted-mean" else len(labels)))


def _confirm(
    probes: Sequence[_CeProbe], labels: np.ndarray, weights: np.ndarray, smoothing: float, reduction: str
) -> tuple[float, float] | None:
    """(largest difference, its tolerance) when the model reproduces every batch, else None."""
    worst: tuple[float, float] = (-1.0, 0.0)
    ratio = -1.0
    for p in probes:
        diff = abs(_cross_entropy(p.logits, labels, weights, smoothing, reduction) - p.reported)
        if not diff <= p.tolerance:
            return None
        if diff / p.tolerance > ratio:
            ratio, worst = diff / p.tolerance, (diff, p.tolerance)
    return worst


def _solve_smoothing(probes: Sequence[_CeProbe], labels: np.ndarray, weights: np.ndarray) -> float | None:
    """The label smoothing that best reproduces the batches with these weights (least squares).

    The head's value is linear in the smoothing ``e``: ``a + e * (b - a)``, with ``a`` the
    weighted cross-entropy and ``b`` its uniform term. None unless ``0 < e < 1``.
    """
    a = np.array([_cross_entropy(p.logits, labels, weights, 0.0) for p in probes])
    b = np.array([_cross_entropy(p.logits, labels, weights, 1.0) for p in probes])
    r = np.array([p.reported for p in probes])
    d = b - a
    if not float((d * d).sum()) > 0.0:
        return None
    eps = float((d * (r - a)).sum() / (d * d).sum())
    return eps if 0.0 < eps < 1.0 else None


def _fit_weights(probes: Sequence[_CeProbe], labels: np.ndarray, num_classes: int) -> np.ndarray | None:
    """Per-class weights that make the weighted cross-entropy every batch's value, or None.

    With ``A_kc`` the summed negative log-likelihood of class ``c``'s samples in batch ``k``,
    ``n_c`` its count and ``r_k`` the head's value, weights ``w`` satisfy
    ``sum_c w_c (A_kc - r_k n_c) = 0`` in every batch: ``w`` spans the null space of that
    matrix (its last right singular vector), up to scale. Weights must be positive; only
    the classes present are determined (the others have no effect). Normalised to mean 1.
    """
    present = sorted({int(y) for y in labels})
    if len(present) < 2 or len(probes) < len(present) + 1:
        return None
    counts = np.array([float((labels == c).sum()) for c in present])
    rows = []
    for p in probes:
        nll = -_log_softmax(p.logits)[np.arange(len(labels)), labels]
        sums = np.array([nll[labels == c].sum() for c in present])
        rows.append((sums - p.reported * counts) / len(labels))
    _, _, vt = np.linalg.svd(np.array(rows))
    w = vt[-1] * (1.0 if vt[-1].sum() >= 0 else -1.0)
    if not bool((w > 0).all()):
        return None
    full = np.ones(num_classes)
    full[present] = w / w.mean()
    return full


def _fit_sample_weights(probes: Sequence[_CeProbe], labels: np.ndarray, num_classes: int) -> np.ndarray | None:
    """Per-class weights ``w`` with ``mean_i w[y_i] * nll_i`` every batch's value, or None.

    Linear in ``w`` and not invariant to its scale: ``sum_c w_c A_kc / B = r_k``, solved by
    least squares over the batches (more batches than classes present). Weights must be
    positive; the classes the batch lacks are not determined (left at 1). Equal weights
    are a scaled cross-entropy, not a class weighting: where one factor on the plain
    cross-entropy reproduces every batch, None (the data cannot tell the two apart).
    """
    present = sorted({int(y) for y in labels})
    if len(present) < 2 or len(probes) < len(present) + 1:
        return None
    rows, values = [], []
    for p in probes:
        nll = -_log_softmax(p.logits)[np.arange(len(labels)), labels]
        rows.append([nll[labels == c].sum() / len(labels) for c in present])
        values.append(p.reported)
    a, r = np.array(rows), np.array(values)
    plain = a.sum(axis=1)
    scale = float((plain * r).sum() / (plain * plain).sum()) if float((plain * plain).sum()) > 0 else 0.0
    if _confirm(probes, labels, np.full(num_classes, scale), 0.0, "mean") is not None:
        return None
    w, *_ = np.linalg.lstsq(a, r, rcond=None)
    if not bool(np.isfinite(w).all()) or not bool((w > 0).all()):
        return None
    full = np.ones(num_classes)
    full[present] = w
    return full


def _explain_ce(
    probes: Sequence[_CeProbe], labels: Sequence[int], num_classes: int, method: np.ndarray | None
) -> CeExplanation | None:
    """The simplest of label smoothing, the method's class weights (with or without smoothing)
    and fitted class weights (averaged as ``weight=`` does, or per sample over the batch)
    that reproduces every batch; None when none does."""
    y = np.asarray(labels, dtype=np.int64)
    present = {int(c) for c in y}
    first = probes[0]
    plain = _cross_entropy(first.logits, y, np.ones(num_classes), 0.0)
    uniform = np.ones(num_classes)
    mean, weighted = "mean", "weighted-mean"
    candidates: list[tuple[str, str, np.ndarray, float, str]] = []
    eps = _solve_smoothing(probes, y, uniform)
    if eps is not None:
        candidates.append(("smoothing", "solved", uniform, eps, weighted))
    if method is not None:
        candidates += [("weights", "method", method, 0.0, weighted), ("weights", "method", method, 0.0, mean)]
        eps = _solve_smoothing(probes, y, method)
        if eps is not None:
            candidates.append(("weights-smoothing", "method", method, eps, weighted))
    fitted = _fit_weights(probes, y, num_classes)
    if fitted is not None:
        candidates.append(("weights", "fitted", fitted, 0.0, weighted))
    fitted = _fit_sample_weights(probes, y, num_classes)
    if fitted is not None:
        candidates.append(("weights", "fitted", fitted, 0.0, mean))
    for kind, source, weights, smoothing, reduction in candidates:
        confirmed = _confirm(probes, y, weights, smoothing, reduction)
        if confirmed is None:
            continue
        shown = tuple(float(w) if kind == "weights-smoothing" or c in present else None for c, w in enumerate(weights))
        return CeExplanation(
            kind=kind,
            source=source,
            labels=tuple(int(c) for c in y),
            weights=shown if kind != "smoothing" else (),
            smoothing=smoothing if kind != "weights" else None,
            reported=first.reported,
            plain=plain,
            batches=len(probes),
            largest_difference=confirmed[0],
            tolerance=confirmed[1],
            reduction=reduction,
        )
    return None


def _method_weights(ctx: Context, head: Head, labels: torch.Tensor, num_classes: int, dtype: torch.dtype) -> Any:
    """The loss's ``_get_class_weight`` of the batch's class counts (or of its labels), or None.

    A helper that does not exist, raises for both arguments, or returns anything but one
    finite weight per class, positive for every class present, gives None: the weights
    are then fitted instead.
    """
    if not ctx.has(_WEIGHT_FN):
        return None
    weigh = ctx.get(head, _WEIGHT_FN)
    counts = torch.bincount(labels, minlength=num_classes).to(dtype)
    for argument in (counts, labels):
        try:
            with torch.no_grad():
                raw = call_subject(_WEIGHT_FN, weigh, argument)
        except SubjectRaised:
            continue
        if not isinstance(raw, torch.Tensor) or raw.numel() != num_classes:
            continue
        values = arr(raw).reshape(-1)
        present = sorted(set(labels.tolist()))
        if bool(np.isfinite(values).all()) and bool((values[present] > 0).all()):
            return values
    return None


@dataclass(frozen=True)
class GradientRecord:
    """The training total's gradient against central differences of the total, per parameter.

    For each parameter tensor, a seeded direction ``v`` of random signs: autograd's
    ``<grad, v>`` against ``(L(p + h v) - L(p - h v)) / (2 h)`` at ``h`` and ``h / 2``.
    The two differences agree where the total is smooth; their gap is the noise of the
    measurement (rounding of a lower-precision stage, a kink crossed), and the tolerance
    is ``1e-3`` of the larger of the two derivatives and of ``sum |grad * v|`` (autograd's
    rounding scales with the terms it sums, and a derivative can be 0 by symmetry: a
    softmax's bias along equal signs), plus ten times that gap. Small steps cross fewer kinks (a hinge
    or a max at a tie), large ones see less rounding, and a kink can sit right at the
    point: a parameter is wrong only when it disagrees at every step of ``steps`` and at
    every one of ``points`` base points (the head re-perturbed). A cut graph disagrees
    everywhere. Measured with float64 as the default dtype unless
    the head cannot run so, then in its own dtype. A head whose total comes out in
    bfloat16 or float16 (its parameters are) is measured again cast to float64
    (``cast_from`` names its own dtype): central differences cannot resolve a derivative
    at bfloat16's rounding. Where it cannot run in float64 either, the gradient is not
    compared (``unmeasured``), and the check says so instead of blaming the graph.
    """

    dtype: str
    parameters: int
    points: int
    steps: tuple[float, ...]
    largest_error_ratio: float  # largest |autograd - differences| / tolerance among the parameters that agreed
    wrong: tuple[str, ...]  # parameters whose gradient is not the derivative of the total
    examples: dict[str, tuple[float, float]]  # first wrong ones: name -> (autograd, differences)
    fresh_log_sigmas: tuple[float, float]  # as constructed: BEHAVIOR.md has both start at 0
    not_learnable: tuple[str, ...] = ()  # of the parts BEHAVIOR.md makes trainable parameters
    float64_refused: str | None = None
    cast_from: str | None = None
    unmeasured: bool = False
    fixed_temperature: str | None = None  # "buffer", "frozen-parameter", "number": kept fixed by choice
    # each loss term on its own (a detached small term hides in the total's tolerance): its
    # gradient along the prototypes, mixed_attn and proj against its central differences
    terms: tuple[TermTraining, ...] = ()


_GRAD_LAYOUT = Layout(3, 3, (2, 3, 1))
_GRAD_LABELS = (0, 1, 2, 0, 1)
_GRAD_STEPS = (1e-4, 1e-3, 1e-2)
_GRAD_POINTS = 3
#: Parts BEHAVIOR.md makes trainable: a refactor that turns one into a buffer or a constant stops training it.
_LEARNABLE = ("temperature", "log_sigma_ce", "log_sigma_proto", "proto_manager.prototypes")


def _gradient_in(ctx: Context, dtype: torch.dtype, cast: bool = False) -> GradientRecord:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        head, _ = build_contract_head(ctx, _GRAD_LAYOUT, 777, perturbed=False, train=True)
        if cast:
            call_subject("to(float64)", head.to, dtype)
        fresh = (
            float(ctx.get(head, "log_sigma_ce").detach().flatten()[0]),
            float(ctx.get(head, "log_sigma_proto").detach().flatten()[0]),
        )
        frozen = tuple(
            name
            for name in _LEARNABLE
            if not (isinstance(ctx.get(head, name), nn.Parameter) and ctx.get(head, name).requires_grad)
        )
        fixed = _fixed_kind(head, ctx.get(head, "temperature")) if "temperature" in frozen else None
        frozen = tuple(n for n in frozen if n != "temperature" or fixed is None)
        perturb(head, ctx.generator(777))
        with torch.no_grad():
            ctx.get(head, "log_sigma_ce").fill_(0.3)
            ctx.get(head, "log_sigma_proto").fill_(-0.4)
        pool, img = features(ctx, 777, len(_GRAD_LABELS), 3, 8)
        pool, img = pool.to(dtype), img.to(dtype)
        labels = torch.tensor(_GRAD_LABELS)

        def total() -> torch.Tensor:
            out = call_subject("forward", head, pool, img, **{ctx.parameter(_LABELS): labels})
            value = out[1] if isinstance(out, (tuple, list)) and len(out) > 1 else out
            if not isinstance(value, torch.Tensor):
                raise SubjectRaised("forward", TypeError(f"returned {type(value).__name__} as its total"))
            return value.sum()

        def differences(p: torch.Tensor, v: torch.Tensor, h: float) -> float:
            with torch.no_grad():
                saved = p.detach().clone()
                p.add_(h * v)
                plus = float(total())
                p.copy_(saved - h * v)
                minus = float(total())
                p.copy_(saved)
            return (plus - minus) / (2 * h)

        # the parameters training changes (a frozen one has no gradient to compare)
        params = sorted(((n, p) for n, p in head.named_parameters() if p.requires_grad), key=lambda kv: kv[0])
        gen = ctx.generator(778)
        directions = [(torch.randint(0, 2, p.shape, generator=gen) * 2 - 1).to(p.dtype) for _, p in params]
        suspects = list(range(len(params)))
        last: dict[int, tuple[float, float, float]] = {}  # index -> (ratio, autograd, differences) at its last point
        for point in range(_GRAD_POINTS):
            if point:  # another base point: kinks move away, a cut graph stays cut
                perturb(head, ctx.generator(779 + point), scale=0.05)
            base = total()
            wanted = [params[i][1] for i in suspects]
            grads = torch.autograd.grad(base, wanted, allow_unused=True) if base.requires_grad else [None] * len(wanted)
            autograd, mass = {}, {}
            for i, g in zip(suspects, grads, strict=True):
                terms = g.double() * directions[i].double() if g is not None else torch.zeros(1, dtype=torch.float64)
                autograd[i], mass[i] = float(terms.sum()), float(terms.abs().sum())
            for step in _GRAD_STEPS:  # small steps cross fewer kinks, large ones see less rounding
                for index in suspects:
                    p, v = params[index][1], directions[index]
                    coarse, fine = differences(p, v, step), differences(p, v, step / 2)
                    # rounding in a sum of terms scales with their absolute sum (a derivative can be 0 by symmetry)
                    scale = max(abs(fine), abs(autograd[index]), mass[index])
                    tol = 1e-3 * scale + 10 * abs(coarse - fine) + 1e-12
                    last[index] = (abs(autograd[index] - fine) / tol, autograd[index], fine)
                suspects = [i for i in suspects if last[i][0] > 1]
                if not suspects:
                    break
            if not suspects:
                break
        wrong = tuple(params[i][0] for i in suspects)
        examples = {params[i][0]: last[i][1:] for i in suspects[:3]}

        def loss_terms_now() -> dict[str, object]:
            out = call_subject("forward_features", ctx.get(head, "forward_features"), pool, img)
            sims = out[0] if isinstance(out, (tuple, list)) else out
            found = loss_terms(ctx, head, ctx.get(head, "proto_manager.prototypes"), sims, labels)
            return {f"proto_loss_fn[{k}]": v for k, v in found.items()}

        groups = parameter_groups(ctx, head)
        trained = probe(loss_terms_now, groups, ctx.generator(780))
        if any(r.outcome == "inactive" for r in trained):  # a hinge at rest here: rows drawn together per class wake it
            log = TrainingLog()
            log.add(trained)
            with torch.no_grad():
                rows = ctx.get(head, "proto_manager.prototypes")
                per_class = int(ctx.get(head, "proto_manager.max_prototypes"))
                firsts = rows[::per_class].repeat_interleave(per_class, dim=0)
                rows.copy_(firsts + 0.3 * rows)  # within-class cosines near 1: the diversity hinge is active
            log.add(probe(loss_terms_now, groups, ctx.generator(781)))
            trained = log.records()
        largest = max((r for i, (r, _, _) in last.items() if i not in suspects), default=0.0)
        return GradientRecord(
            dtype_name(base.dtype),
            len(params),
            _GRAD_POINTS,
            _GRAD_STEPS,
            largest,
            wrong,
            examples,
            fresh,
            frozen,
            fixed_temperature=fixed,
            terms=trained,
        )
    finally:
        torch.set_default_dtype(previous)


def _fixed_kind(head: Head, value: Any) -> str | None:
    """How a temperature that training does not change is kept, when that is a choice.

    A registered buffer, a parameter with ``requires_grad=False`` or a plain number is a
    fixed temperature: a design choice, not a cut graph (that is a parameter whose
    gradient is not its derivative, measured below). Anything else is None.
    """
    if isinstance(value, nn.Parameter):
        return "frozen-parameter" if not value.requires_grad else None
    if isinstance(value, torch.Tensor):
        buffers = {id(b) for b in head.buffers()} if isinstance(head, nn.Module) else set()
        return "buffer" if id(value) in buffers else None
    if isinstance(value, (int, float)):
        return "number"
    return None


def _coarse(dtype: str) -> bool:
    return dtype in ("bfloat16", "float16")


def _gradient(ctx: Context) -> GradientRecord:
    try:
        record = _gradient_in(ctx, torch.float64)
    except SubjectRaised as exc:  # a head that cannot run in float64 is measured in its own dtype
        record = _gradient_in(ctx, torch.get_default_dtype())
        record = dataclasses.replace(record, float64_refused=exc.detail)
    if not _coarse(record.dtype):
        return record
    try:
        cast = _gradient_in(ctx, torch.float64, cast=True)
    except SubjectRaised:
        cast = None
    if cast is not None and not _coarse(cast.dtype):
        return dataclasses.replace(cast, cast_from=record.dtype)
    # no gradient at all does not depend on the precision: keep those; agreement needs a finer dtype
    kept = tuple(t for t in record.terms if t.outcome == "no-gradient")
    return dataclasses.replace(record, wrong=(), examples={}, largest_error_ratio=0.0, unmeasured=True, terms=kept)


def _dict_key(ctx: Context, name: str) -> str:
    """The subject's key for a declared ``forward[key]`` name (n/a when a loss dict lacks it)."""
    if not ctx.has(name):
        raise NameMissing(name, ctx.subject.names.apply(name), None)
    key = split_key(ctx.subject.names.apply(name))
    assert key is not None
    return key[1]


def _measure_contract(ctx: Context) -> ContractMeasurement:
    seen: dict[str, Any] = {"cases": 0, "arity": None, "dict": False, "total": 0.0, "ce": 0.0, "explained": []}

    def prop(case: tuple[Layout, Sequence[int], int, int]) -> None:
        asked, label_codes, sigma_index, salt = case
        head, layout = build_contract_head(ctx, asked, salt)
        seen["cases"] += 1
        s_ce, s_p = _SIGMAS[sigma_index]
        with torch.no_grad():
            ctx.get(head, "log_sigma_ce").fill_(s_ce)
            ctx.get(head, "log_sigma_proto").fill_(s_p)
        batch = len(label_codes)
        labels = torch.tensor([c % layout.num_classes for c in label_codes], dtype=torch.long)
        pool, img = features(ctx, salt, batch, 3, 8)
        base: dict[str, Any] = {"num_classes": layout.num_classes, "batch": batch, "log_sigmas": (s_ce, s_p)}

        def fail(kind: str, mode: str, **extra: Any) -> NoReturn:
            raise Refuted(ContractViolation(kind, mode, **base, **extra))

        outs: dict[str, Any] = {}
        labelled = {ctx.parameter(_LABELS): labels}
        for mode, train, kwargs in (
            ("eval", False, {}),
            ("eval_labels", False, labelled),
            ("train_labels", True, labelled),
            ("train", True, {}),
        ):
            head.train(train)
            outs[mode] = call_subject("forward", head, pool, img, **kwargs)
        arities = {m: len(o) if isinstance(o, (tuple, list)) else 0 for m, o in outs.items()}
        for mode, n in arities.items():
            if n < 2:
                fail("arity", mode, detail=type(outs[mode]).__name__, measured=n)
        if len(set(arities.values())) > 1:
            fail("arity-differs", "train_labels", detail=", ".join(f"{m}: {n}" for m, n in arities.items()))
        seen["arity"] = arities["eval"]
        logits = outs["eval"][0]
        for mode, out in outs.items():
            lg = out[0]
            if not isinstance(lg, torch.Tensor) or tuple(lg.shape) != (batch, layout.num_classes):
                fail("logits-shape", mode, detail=repr(list(lg.shape)) if isinstance(lg, torch.Tensor) else "-")
            if not lg.is_floating_point() or not bool(torch.isfinite(lg).all()):
                fail("logits-finite", mode, detail=dtype_name(lg.dtype))
            change = float((lg.detach().double() - logits.detach().double()).abs().max())
            precision = computed_in((lg, logits))  # two runs of the whole forward
            tol = tolerance(precision, float(logits.detach().abs().max()), _ULPS)
            if not change <= tol:
                fail("logits-differ", mode, measured=change, tolerance=tol, precision=dtype_name(precision))
        for mode in ("eval", "eval_labels", "train"):
            loss = outs[mode][1]
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                fail(
                    "loss-type",
                    mode,
                    detail=type(loss).__name__ if not isinstance(loss, torch.Tensor) else repr(list(loss.shape)),
                )
            if float(loss.detach()) != 0.0:
                fail("nonzero-loss", mode, measured=float(loss.detach()))
            if arities[mode] >= 3 and (not isinstance(outs[mode][2], Mapping) or len(outs[mode][2]) != 0):
                third = outs[mode][2]
                detail = ", ".join(map(str, third)) if isinstance(third, Mapping) else type(third).__name__
                fail("nonempty-dict", mode, detail=detail)
        # Training with labels: the uncertainty-weighted total of the head's own terms, the
        # loss dict, and its cross-entropy against the plain one of the returned logits.
        out = outs["train_labels"]
        total = out[1]
        if not isinstance(total, torch.Tensor) or total.numel() != 1 or not bool(torch.isfinite(total).all()):
            fail("total-type", "train_labels", detail=type(total).__name__)
        if not total.requires_grad:
            fail("total-detached", "train_labels")
        train_logits = arr(out[0])
        ce = cross_entropy(train_logits, labels.tolist())
        head.train(True)
        sims = _forward_features(ctx, head, pool, img)[0]
        terms = loss_terms(ctx, head, ctx.get(head, "proto_manager.prototypes"), sims, labels)
        proto = float(ctx.key(terms, _PROTO))
        measured = float(total.detach())
        # the expected total is computed from the returned logits and the terms of the loss
        # function: only what forward computed after them counts (its own dtype included)
        read = (out[0], *terms.values())
        precision = computed_in(total, sources=read)
        weigh_ce, weigh_p = math.exp(-s_ce), math.exp(-s_p)
        if arities["train_labels"] >= 3:
            seen["dict"] = True
            breakdown = out[2]
            if not isinstance(breakdown, Mapping):
                fail("dict-type", "train_labels", detail=type(breakdown).__name__)
            ce_key, total_key = _dict_key(ctx, _CE), _dict_key(ctx, _TOTAL)
            missing = [k for k in (ce_key, total_key, *terms) if k not in breakdown]
            if missing:
                fail("dict-keys", "train_labels", detail=", ".join(missing))
            # The total against the head's own reported terms: a mismatch here is the total's.
            own_ce, own_proto = term_value(breakdown[ce_key]), term_value(ctx.key(breakdown, _PROTO))
            for key, value in ((ce_key, own_ce), (_dict_key(ctx, _PROTO), own_proto)):
                if not math.isfinite(value):  # not a finite number: the dict is wrong, not the total
                    fail(
                        "dict-value",
                        "train_labels",
                        detail=key,
                        measured=value,
                        expected=ce if key == ce_key else proto,
                    )
            expected = weigh_ce * own_ce + s_ce + weigh_p * own_proto + s_p
            # only what forward computed after its own reported terms counts
            own = computed_in(total, sources=(breakdown[ce_key], ctx.key(breakdown, _PROTO)), default=total.dtype)
            tol = tolerance(own, max(abs(expected), float(np.abs(train_logits).max())), _ULPS)
            seen["total"] = max(seen["total"], abs(measured - expected))
            if not abs(measured - expected) <= tol:
                fail(
                    "total-own",
                    "train_labels",
                    measured=measured,
                    expected=expected,
                    tolerance=tol,
                    precision=dtype_name(own),
                    ce=own_ce,
                    proto_loss=own_proto,
                )
            checks = [(total_key, measured)] + [(k, float(v)) for k, v in terms.items()]
            for key, value in checks:
                got = term_value(breakdown[key])  # a plain 0.0 is a value, as in the originals
                # the reported total against the returned one; the others against the oracle's reads
                against = (total,) if key == total_key else read
                precision = computed_in(breakdown[key], sources=against, default=total.dtype)
                tol = tolerance(precision, max(abs(value), float(np.abs(train_logits).max())), _ULPS)
                if not abs(got - value) <= tol:
                    fail(
                        "dict-value",
                        "train_labels",
                        detail=key,
                        measured=got,
                        expected=value,
                        tolerance=tol,
                        precision=dtype_name(precision),
                    )
            reported = own_ce
            # the reported ce_loss against the cross-entropy of the returned logits: only what
            # forward computed after the logits counts
            precision = computed_in(breakdown[ce_key], sources=(out[0],), default=total.dtype)
            ce_tol = tolerance(precision, max(abs(ce), float(np.abs(train_logits).max())), _ULPS)
        else:
            # No breakdown: the cross-entropy the total implies, given proto_loss_fn's proto_loss.
            expected = weigh_ce * ce + s_ce + weigh_p * proto + s_p
            tol = tolerance(precision, max(abs(expected), float(np.abs(train_logits).max())), _ULPS)
            if abs(measured - expected) <= tol:
                seen["total"] = max(seen["total"], abs(measured - expected))
            reported = (measured - s_ce - weigh_p * proto - s_p) / weigh_ce
            ce_tol = tol / weigh_ce
        if abs(reported - ce) <= ce_tol:
            seen["ce"] = max(seen["ce"], abs(reported - ce))
            return

        def probe(k: int) -> _CeProbe:
            """Batch ``k`` of the explanation: the same labels, other features (0: this one)."""
            if k == 0:
                return _CeProbe(train_logits, reported, ce_tol)
            pool_k, img_k = features(ctx, salt + 1_000 * k, batch, 3, 8)
            head.train(True)
            got = call_subject("forward", head, pool_k, img_k, **labelled)
            if not isinstance(got, (tuple, list)) or len(got) != arities["train_labels"]:
                return _CeProbe(train_logits, math.nan, ce_tol)  # explains nothing
            logits_k = arr(got[0])
            magnitude = float(np.abs(logits_k).max())
            if arities["train_labels"] >= 3:
                dict_k = got[2]
                value = term_value(dict_k.get(_dict_key(ctx, _CE))) if isinstance(dict_k, Mapping) else math.nan
                return _CeProbe(logits_k, value, tolerance(precision, max(abs(value), magnitude), _ULPS))
            sims_k = _forward_features(ctx, head, pool_k, img_k)[0]
            terms_k = loss_terms(ctx, head, ctx.get(head, "proto_manager.prototypes"), sims_k, labels)
            proto_k = float(ctx.key(terms_k, _PROTO))
            total_k = term_value(got[1])
            value = (total_k - s_ce - weigh_p * proto_k - s_p) / weigh_ce
            scale = max(abs(total_k), magnitude)
            return _CeProbe(logits_k, value, tolerance(precision, scale, _ULPS) / weigh_ce)

        present = len(set(labels.tolist()))
        probes = [probe(k) for k in range(present + 3)]
        method = _method_weights(ctx, head, labels, layout.num_classes, out[0].dtype)
        found = _explain_ce(probes, labels.tolist(), layout.num_classes, method)
        if found is None:
            if arities["train_labels"] >= 3:
                fail(
                    "ce",
                    "train_labels",
                    measured=reported,
                    expected=ce,
                    tolerance=ce_tol,
                    precision=dtype_name(precision),
                )
            fail(
                "total",
                "train_labels",
                measured=measured,
                expected=expected,
                tolerance=tol,
                precision=dtype_name(precision),
                ce=ce,
                proto_loss=proto,
            )
        seen["explained"].append(found)

    strategy = st.tuples(
        contract_layouts(max_classes=4, max_per_class=3),
        st.lists(st.integers(0, 7), min_size=1, max_size=8),
        st.integers(0, len(_SIGMAS) - 1),
        st.integers(0, 99),
    )
    explicit = [(Layout(3, 3, (2, 3, 1)), (0, 1, 2, 0), 0, 0), (Layout(2, 2, (1, 2)), (1, 1, 0), 1, 1)]
    found = ctx.search(strategy, prop, ci_examples=6, explicit=explicit)
    explained: list[CeExplanation] = [] if found else seen["explained"]
    return ContractMeasurement(
        counterexample=found.error.detail if found else None,
        cases=seen["cases"],
        arity=seen["arity"],
        loss_dict=seen["dict"],
        largest_total_difference=seen["total"],
        largest_ce_difference=seen["ce"],
        gradient=None if found else _gradient(ctx),
        interface=interface(ctx),
        ce_explained=explained[0] if explained else None,
        ce_explained_cases=len(explained) if explained else None,
        ce_explained_kinds=tuple(sorted({e.kind for e in explained})) if explained else None,
    )


def _judge_contract(m: ContractMeasurement) -> Finding:
    bad = m.counterexample
    if bad is not None:
        params: dict[str, Any] = {
            "mode": Msg(f"forward.contract.mode.{bad.mode}"),
            "detail": bad.detail or "-",
            "measured": bad.measured if bad.measured is not None else math.nan,
            "expected": bad.expected if bad.expected is not None else math.nan,
            "tolerance": bad.tolerance if bad.tolerance is not None else math.nan,
            "s_ce": bad.log_sigmas[0],
            "s_proto": bad.log_sigmas[1],
            "classes": bad.num_classes,
            "batch": bad.batch,
            "ce": bad.ce if bad.ce is not None else math.nan,
            "proto": bad.proto_loss if bad.proto_loss is not None else math.nan,
        }
        return Finding("fail", Msg(f"forward.contract.{bad.kind}", params))
    if m.cases == 0 or m.gradient is None:
        return Finding("error", Msg("forward.contract.none", {}))
    g = m.gradient
    if g.not_learnable:
        return Finding("fail", Msg("forward.contract.not-learnable", {"names": list(g.not_learnable)}))
    if g.fresh_log_sigmas != (0.0, 0.0):
        params = {"s_ce": g.fresh_log_sigmas[0], "s_proto": g.fresh_log_sigmas[1]}
        return Finding("fail", Msg("forward.contract.fresh-sigmas", params))
    untrainable = untrained(g.terms)  # a term that cannot train, named (the total's gradient is then wrong too)
    if untrainable is not None:
        return untrainable
    if g.wrong:
        name, (autograd, numeric) = next(iter(g.examples.items()), (g.wrong[0], (math.nan, math.nan)))
        params = {
            "count": len(g.wrong),
            "total": g.parameters,
            "names": list(g.wrong[:8]),
            "name": name,
            "autograd": autograd,
            "numeric": numeric,
            "dtype": g.dtype,
        }
        return Finding("fail", Msg("forward.contract.gradient", params))
    e = m.ce_explained
    if e is not None:  # the total is right; its cross-entropy is weighted or smoothed, by choice
        params = {
            "terms": Msg(f"forward.contract.ce-of.{'dict' if m.loss_dict else 'total'}"),
            "weights": [w if w is not None else "-" for w in e.weights],
            "source": Msg(f"forward.contract.ce-source.{e.source}"),
            "reduction": Msg(f"forward.contract.ce-reduction.{e.reduction}"),
            "smoothing": e.smoothing if e.smoothing is not None else math.nan,
            "labels": list(e.labels),
            "reported": e.reported,
            "plain": e.plain,
            "batches": e.batches,
            "explained": m.ce_explained_cases or 0,
            "cases": m.cases,
            "difference": e.largest_difference,
            "tolerance": e.tolerance,
        }
        return Finding("warn", Msg(f"forward.contract.ce-{e.kind}", params))
    key = "pass_dict" if m.loss_dict else "pass"
    if g.fixed_temperature is not None:
        params = {"kind": Msg(f"forward.contract.fixed.{g.fixed_temperature}"), "parameters": g.parameters}
        return Finding("warn", Msg("forward.contract.fixed-temperature", params))
    if g.unmeasured:
        params = {"arity": m.arity, "cases": m.cases, "difference": m.largest_total_difference, "dtype": g.dtype}
        return Finding("warn", Msg(f"forward.contract.{key}_no_gradient", params))
    params = {
        "arity": m.arity,
        "cases": m.cases,
        "difference": m.largest_total_difference,
        "parameters": g.parameters,
        "error": g.largest_error_ratio,
        "dtype": g.dtype,
    }
    return Finding("pass", Msg(f"forward.contract.{key}", params))


ORDER = 340

CHECKS: tuple[Check[Any], ...] = (
    Check(
        id="forward.similarity",
        catalogue=3,
        measure=_measure_similarity,
        judge=_judge_similarity,
        needs=("proj", "forward_features", "compute_similarities", "proto_manager.prototypes", *LAYOUT_NEEDS),
        severity="high",
        search=True,
        group="contracts",
    ),
    Check(
        id="forward.aggregation",
        catalogue=3,
        measure=_measure_aggregation,
        judge=_judge_aggregation,
        needs=("forward_features", "temperature", *LAYOUT_NEEDS),
        settings=("?temperature",),
        severity="high",
        search=True,
        group="contracts",
    ),
    Check(
        id="forward.contract",
        catalogue=3,
        measure=_measure_contract,
        judge=_judge_contract,
        needs=(
            "forward_features",
            _LABELS,
            "temperature",
            "log_sigma_ce",
            "log_sigma_proto",
            "proto_manager.prototypes",
            *LOSS_CALL_NEEDS,
            "proto_loss_fn[proto_loss]",
            f"?{_CE}",
            f"?{_TOTAL}",
            f"?{_WEIGHT_FN}",
            *PARAMETER_NEEDS,
        ),
        settings=("dropout_rate",),
        severity="high",
        search=True,
        group="contracts",
    ),
)
