"""Component contracts of the prototype loss (CHECKS.md 3b).

Every term is read from the dict ``proto_loss_fn`` returns, called directly with
generated similarities, labels and prototypes (the adapter passes them by the names its
signature uses), on a head whose valid rows are set through the public buffers. The
similarities are the loss's input, so the oracles (numpy, :mod:`headaudit.checks._oracles`)
see exactly what the subject saw; a term is isolated by building the head with its
scale at 1 (a setting, read back) or by the moves that leave every other term alone.

- ``loss.terms-sum``: doubling one scale doubles its term and nothing else;
  ``proto_loss`` is the sum of the terms.
- ``loss.cluster-nearest``: per sample, the cluster term sees only the distance to its
  nearest valid own-class prototype, linearly.
- ``loss.cluster-scale``: in balanced batches the weighted cluster term is the plain mean
  of the per-class terms (warn, with the factor, when it is that mean scaled by a factor
  of the batch size); in unbalanced ones the classes are weighted as documented; where
  the loss exposes ``_get_class_weight``, batches with absent classes apply exactly the
  weights it gives for the batch's counts, averaged over the classes present.
- ``loss.separation-value``: separation against its numpy oracle, own-class moves never
  matter, a class without other-class prototypes contributes nothing.
- ``loss.diversity-value``: diversity against its numpy oracle.

Each also probes the terms it reads to train (:mod:`headaudit.checks._trains`), in one of
the states it builds: a term with the right values and no gradient is ``fail`` naming it,
and a term that does not move where the check's oracle says it is active (a masked minimum
that is 0 whatever the distances) is ``fail`` too.

Cost (2-core CPU, one thread): about 0.6-0.7 s per subject for the five checks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st

from headaudit.adapters import LOSS_CALL_NEEDS, Head, loss_terms
from headaudit.build import accepts_keyword
from headaudit.checks._common import Layout, dtype_name, tolerance
from headaudit.checks._contracts import build_contract_head, contract_layouts
from headaudit.checks._oracles import arr, cluster_terms, diversity, separation, unit
from headaudit.checks._trains import TermTraining, TrainingLog, untrained
from headaudit.checks._trains import probe_loss as _probe
from headaudit.context import Context, Refuted
from headaudit.messages import Msg
from headaudit.model import Finding
from headaudit.names import split_key
from headaudit.precision import computed_in, is_reduced
from headaudit.registry import Check
from headaudit.sandbox import SubjectRaised, call_subject

__all__ = ["CHECKS", "ORDER"]

_ULPS = 256.0
_PROTO = "proto_loss_fn[proto_loss]"
_CLUSTER = "proto_loss_fn[cluster_loss]"
_SEP = "proto_loss_fn[sep_loss]"
_DIV = "proto_loss_fn[div_loss]"
_WEIGHT_FN = "proto_loss_fn._get_class_weight"
#: A term's key and the constructor setting that scales it (BEHAVIOR.md 2).
_SCALED = {
    "proto_loss_fn[cluster_loss]": "clst_scale",
    "proto_loss_fn[sep_loss]": "sep_scale",
    "proto_loss_fn[div_loss]": "div_scale",
    "proto_loss_fn[contrastive_loss]": "contrastive_scale",
}


def _accepted(ctx: Context, setting: str) -> bool:
    return accepts_keyword(ctx.subject.head_cls, setting) is not False


def _terms(
    ctx: Context, head: Head, prototypes: torch.Tensor, sims: torch.Tensor | None, labels: Sequence[int] | None
) -> dict[str, torch.Tensor]:
    label_tensor = None if labels is None else torch.tensor(list(labels), dtype=torch.long)
    with torch.no_grad():
        return loss_terms(ctx, head, prototypes, sims, label_tensor)


def _key(ctx: Context, name: str) -> str:
    """The subject's own key for a declared ``proto_loss_fn[key]`` name (after the user's maps)."""
    key = split_key(ctx.subject.names.apply(name))
    assert key is not None
    return key[1]


def _value(ctx: Context, terms: dict[str, torch.Tensor], name: str) -> float:
    value = ctx.key(terms, name)
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


def _record(ctx: Context, name: str) -> str:
    """How a probe names a declared term: ``proto_loss_fn[<the subject's key>]``."""
    return f"proto_loss_fn[{_key(ctx, name)}]"


def _similarities(
    gen: torch.Generator, batch: int, layout: Layout, low: float = -1.0, high: float = 1.0
) -> torch.Tensor:
    shape = (batch, layout.num_classes, layout.max_prototypes)
    return (low + (high - low) * torch.rand(shape, generator=gen, dtype=torch.float64)).float()


def _clustered(gen: torch.Generator, layout: Layout, dim: int, spread: float) -> torch.Tensor:
    """Rows near one direction per class (within-class cosines spread around 0.5), norms 0.3-3,
    invalid rows large and random."""
    centres = unit(torch.randn(layout.num_classes, dim, generator=gen, dtype=torch.float64).numpy())
    rows = np.repeat(centres, layout.max_prototypes, axis=0)
    rows = rows + spread * torch.randn(layout.rows, dim, generator=gen, dtype=torch.float64).numpy()
    rows = rows * (0.3 + 2.7 * torch.rand(layout.rows, 1, generator=gen, dtype=torch.float64).numpy())
    out = torch.from_numpy(rows)
    valid = set(layout.valid_rows)
    for r in range(layout.rows):
        if r not in valid:
            out[r] = 7.0 * torch.randn(dim, generator=gen, dtype=torch.float64)
    return out.float()


def _labels(gen: torch.Generator, layout: Layout, batch: int, every: bool = True) -> list[int]:
    """A batch from the classes that own a valid row (the cluster term needs one).

    With ``every``, each such class appears at least once (then ``batch`` more samples are
    drawn): how absent classes weigh the present ones is ``weights.absent-classes``'
    question, and a class absent from the batch can shrink the others' terms a
    thousandfold, which would hide the moves these contracts make.
    """
    owners = [c for c, k in enumerate(layout.counts) if k > 0]
    picks = torch.randint(0, len(owners), (batch,), generator=gen).tolist()
    return (owners if every else []) + [owners[i] for i in picks]


# --- loss.terms-sum --------------------------------------------------------------------

_MAX_EXTRAS = 6  # keys beyond the documented terms tried in every combination (64 at most)


def _subsets(extras: Sequence[str]) -> list[tuple[str, ...]]:
    """Which of the extra keys may be in the sum: every combination, all of them first (or
    only all of them, past ``_MAX_EXTRAS``)."""
    if len(extras) > _MAX_EXTRAS:
        return [tuple(extras)]
    combos = [tuple(k for i, k in enumerate(extras) if mask >> i & 1) for mask in range(2 ** len(extras))]
    return sorted(combos, key=lambda c: -len(c))


@dataclass(frozen=True)
class TermsViolation:
    kind: str  # "scaled", "others-moved", "sum"
    layout: Layout
    term: str
    setting: str
    measured: float
    expected: float
    tolerance: float
    base_scales: dict[str, float]


@dataclass(frozen=True)
class TermsMeasurement:
    counterexample: TermsViolation | None
    cases: int
    terms: tuple[str, ...]  # the keys proto_loss is the sum of
    left_out: tuple[str, ...]  # other keys of the dict, not in the sum (diagnostics)
    scaled_terms: tuple[str, ...]  # terms whose scale setting was doubled and measured active
    unscaled_terms: tuple[str, ...]  # keys without a known scale setting (only the sum applies)
    largest_sum_difference: float
    tolerance: float
    training: tuple[TermTraining, ...] = ()  # whether each summed term (and the sum) trains


_BASE_SCALES = (
    {"clst_scale": 0.8, "sep_scale": 0.08, "div_scale": 0.01, "contrastive_scale": 0.05},
    {"clst_scale": 0.5, "sep_scale": 0.3, "div_scale": 0.2, "contrastive_scale": 0.7},
    {"clst_scale": 1.3, "sep_scale": 0.05, "div_scale": 0.4, "contrastive_scale": 0.1},
)


def _measure_terms(ctx: Context) -> TermsMeasurement:
    scales = {name: setting for name, setting in _SCALED.items() if ctx.has(name) and _accepted(ctx, setting)}
    seen: dict[str, Any] = {"cases": 0, "sum": 0.0, "tol": 0.0, "active": set(), "keys": set(), "subsets": None}
    documented_keys = {_key(ctx, name) for name in _SCALED if ctx.has(name)}
    log = TrainingLog()

    def prop(case: tuple[Layout, int, int]) -> None:
        asked, which, salt = case
        base: dict[str, Any] = {s: v for s, v in _BASE_SCALES[which].items() if s in scales.values()}
        head, layout = build_contract_head(ctx, asked, salt, perturbed=False, **base)
        seen["cases"] += 1
        gen = ctx.generator(20_000 + salt)
        labels = _labels(gen, layout, 2 * layout.num_classes)
        sims = _similarities(gen, len(labels), layout, -0.2, 1.0)  # some other-class similarity above 1 - margin
        protos = _clustered(gen, layout, 8, 0.25)  # within-class cosines about 0.7: the diversity hinge is active
        terms = _terms(ctx, head, protos, sims, labels)
        values = {k: float(v.detach()) for k, v in terms.items()}
        proto_key = _key(ctx, _PROTO)
        parts = {k: v for k, v in values.items() if k != proto_key}
        seen["keys"].update(parts)
        dtype = computed_in(terms, sources=(protos, sims))  # what the loss computed from its inputs
        total = _value(ctx, terms, _PROTO)
        tol = tolerance(dtype, max([abs(v) for v in values.values()] + [1.0]), _ULPS)
        seen["tol"] = max(seen["tol"], tol)
        # The documented terms must all be in the sum; of the other keys (a new term, or a
        # diagnostic such as a share of active hinges), the same subset in every case.
        documented = [k for k in parts if k in documented_keys]
        extras = sorted(k for k in parts if k not in documented_keys)
        core = sum(parts[k] for k in documented)
        options = seen["subsets"] if seen["subsets"] is not None else _subsets(extras)
        fitting = [
            o for o in options if all(k in parts for k in o) and abs(total - core - sum(parts[k] for k in o)) <= tol
        ]
        if not fitting:
            expected = core + sum(parts[k] for k in extras)
            raise Refuted(TermsViolation("sum", layout, proto_key, "-", total, expected, tol, base))
        seen["subsets"] = fitting
        summed = [*documented, *fitting[0], proto_key]
        if log.wants(f"proto_loss_fn[{k}]" for k in summed):
            log.add(_probe(ctx, head, protos, sims, labels, summed, salt))
        seen["sum"] = max(seen["sum"], abs(total - core - sum(parts[k] for k in fitting[0])))
        for name, setting in scales.items():
            key = _key(ctx, name)
            doubled = {**base, setting: 2 * base[setting]}
            other, _ = build_contract_head(ctx, asked, salt, perturbed=False, **doubled)
            after = {k: float(v.detach()) for k, v in _terms(ctx, other, protos, sims, labels).items()}
            if abs(values[key]) > 8 * tol:
                seen["active"].add(key)
                if not abs(after[key] - 2 * values[key]) <= 2 * tol:
                    raise Refuted(
                        TermsViolation("scaled", layout, key, setting, after[key], 2 * values[key], 2 * tol, base)
                    )
            for k, v in values.items():
                if k not in (key, proto_key) and not abs(after.get(k, math.nan) - v) <= tol:
                    raise Refuted(
                        TermsViolation("others-moved", layout, k, setting, after.get(k, math.nan), v, tol, base)
                    )

    strategy = st.tuples(contract_layouts(min_count=1, max_per_class=3), st.integers(0, 2), st.integers(0, 99))
    explicit = [(Layout(3, 3, (2, 3, 1)), 1, 0), (Layout(2, 2, (2, 2)), 2, 1)]
    found = ctx.search(strategy, prop, ci_examples=6, explicit=explicit)
    keyed = {_key(ctx, n) for n in scales}
    summed = set(seen["keys"]) & documented_keys | set(seen["subsets"][0] if seen["subsets"] else ())
    return TermsMeasurement(
        counterexample=found.error.detail if found else None,
        cases=seen["cases"],
        terms=tuple(sorted(summed)),
        left_out=tuple(sorted(set(seen["keys"]) - summed)),
        scaled_terms=tuple(sorted(seen["active"])),
        unscaled_terms=tuple(sorted(set(seen["keys"]) - keyed)),
        largest_sum_difference=seen["sum"],
        tolerance=seen["tol"],
        training=log.records(),
    )


def _judge_terms(m: TermsMeasurement) -> Finding:
    bad = m.counterexample
    if bad is not None:
        params = {
            "term": bad.term,
            "setting": bad.setting,
            "measured": bad.measured,
            "expected": bad.expected,
            "tolerance": bad.tolerance,
            "layout": bad.layout.describe(),
        }
        return Finding("fail", Msg(f"loss.terms-sum.{bad.kind}", params))
    untrainable = untrained(m.training)
    if untrainable is not None:
        return untrainable
    if not m.terms:
        return Finding("error", Msg("loss.terms-sum.none", {}))
    params = {
        "terms": list(m.terms),
        "scaled": list(m.scaled_terms) or "-",
        "unscaled": list(m.unscaled_terms) or "-",
        "cases": m.cases,
        "difference": m.largest_sum_difference,
    }
    if m.left_out:
        return Finding("pass", Msg("loss.terms-sum.pass_left_out", {**params, "left_out": list(m.left_out)}))
    return Finding("pass", Msg("loss.terms-sum.pass", params))


# --- loss.cluster-nearest --------------------------------------------------------------


@dataclass(frozen=True)
class NearestViolation:
    kind: str  # "non-nearest", "not-lower", "nonlinear", "other-class", "invalid-slot"
    layout: Layout
    labels: tuple[int, ...]
    sample: int
    class_idx: int
    slot: int
    change: float
    expected: float
    tolerance: float


@dataclass(frozen=True)
class NearestMeasurement:
    counterexample: NearestViolation | None
    cases: int
    moves: int
    largest_unchanged: float
    tolerance: float
    unresolved: int = 0  # cases whose move of the nearest was below the rounding of `reduced`
    reduced: str = ""
    training: tuple[TermTraining, ...] = ()  # whether the cluster term trains along the similarities


def _measure_nearest(ctx: Context) -> NearestMeasurement:
    seen: dict[str, Any] = {"cases": 0, "moves": 0, "still": 0.0, "tol": 0.0, "unresolved": 0, "dtype": ""}
    log = TrainingLog()

    def prop(case: tuple[Layout, int, int, str]) -> None:
        asked, batch, salt, where = case
        head, layout = build_contract_head(ctx, asked, salt, perturbed=False)
        seen["cases"] += 1
        gen = ctx.generator(30_000 + salt)
        labels = _labels(gen, layout, batch)
        sims = _similarities(gen, len(labels), layout, -0.9, 0.8)
        protos = _clustered(gen, layout, 8, 0.6)
        b = int(torch.randint(0, len(labels), (1,), generator=gen))
        y = labels[b]
        k = layout.counts[y]
        nearest = {"first": 0, "last": k - 1, "middle": k // 2}[where]
        sims[b, y, nearest] = 0.85

        def loss(s: torch.Tensor) -> tuple[float, torch.dtype]:
            terms = _terms(ctx, head, protos, s, labels)
            return _value(ctx, terms, _CLUSTER), computed_in(ctx.key(terms, _CLUSTER), sources=(protos, s))

        base, dtype = loss(sims)
        tol = tolerance(dtype, max(1.0, abs(base)), _ULPS)
        seen["tol"] = max(seen["tol"], tol)
        if log.wants():  # every sample has a valid own prototype: the term depends on its distance
            cluster = _key(ctx, _CLUSTER)
            active = {_record(ctx, _CLUSTER): True}
            log.add(_probe(ctx, head, protos, sims, labels, [cluster], salt, along=("similarities",), active=active))
        where_: dict[str, Any] = {"layout": layout, "labels": tuple(labels), "sample": b, "class_idx": y}

        def unchanged(kind: str, moved: torch.Tensor, slot: int) -> None:
            value, _ = loss(moved)
            seen["moves"] += 1
            seen["still"] = max(seen["still"], abs(value - base))
            if not abs(value - base) <= tol:
                raise Refuted(
                    NearestViolation(kind, slot=slot, change=value - base, expected=0.0, tolerance=tol, **where_)
                )

        for j in range(k):
            if j != nearest:
                moved = sims.clone()
                moved[b, y, j] = -0.95 if float(sims[b, y, j]) > 0 else 0.8
                unchanged("non-nearest", moved, j)
        if k < layout.max_prototypes:
            moved = sims.clone()
            moved[b, y, k:] = 1.0
            unchanged("invalid-slot", moved, k)
        for c in range(layout.num_classes):
            if c != y:
                moved = sims.clone()
                moved[b, c, :] = torch.rand(layout.max_prototypes, generator=gen).float() * 2 - 1
                unchanged("other-class", moved, -1)
        steps = []
        for delta in (0.05, 0.1):
            moved = sims.clone()
            moved[b, y, nearest] += delta
            value, _ = loss(moved)
            steps.append(value - base)
            seen["moves"] += 1
        if not steps[0] < -tol and abs(steps[0]) <= tol and is_reduced(dtype):
            # the fall is below the rounding of the precision the head computed in: no evidence either way
            seen["unresolved"] += 1
            seen["dtype"] = dtype_name(dtype)
            return
        if not steps[0] < -tol:
            raise Refuted(
                NearestViolation("not-lower", slot=nearest, change=steps[0], expected=-0.05, tolerance=tol, **where_)
            )
        if not abs(steps[1] - 2 * steps[0]) <= 4 * tol:
            raise Refuted(
                NearestViolation(
                    "nonlinear", slot=nearest, change=steps[1], expected=2 * steps[0], tolerance=4 * tol, **where_
                )
            )

    strategy = st.tuples(
        contract_layouts(max_per_class=4),
        st.integers(0, 4),
        st.integers(0, 99),
        st.sampled_from(["first", "last", "middle"]),
    )
    explicit = [(Layout(2, 3, (3, 2)), 2, 0, "last"), (Layout(3, 4, (4, 2, 1)), 3, 1, "first")]
    found = ctx.search(strategy, prop, ci_examples=12, explicit=explicit)
    return NearestMeasurement(
        counterexample=found.error.detail if found else None,
        cases=seen["cases"],
        moves=seen["moves"],
        largest_unchanged=seen["still"],
        tolerance=seen["tol"],
        unresolved=seen["unresolved"],
        reduced=seen["dtype"],
        training=log.records(),
    )


def _judge_nearest(m: NearestMeasurement) -> Finding:
    bad = m.counterexample
    if bad is not None:
        params = {
            "sample": bad.sample,
            "class_idx": bad.class_idx,
            "slot": bad.slot,
            "change": bad.change,
            "expected": bad.expected,
            "tolerance": bad.tolerance,
            "layout": bad.layout.describe(),
            "labels": list(bad.labels),
        }
        return Finding("fail", Msg(f"loss.cluster-nearest.{bad.kind}", params))
    untrainable = untrained(m.training)
    if untrainable is not None:
        return untrainable
    if m.moves == 0:
        return Finding("error", Msg("loss.cluster-nearest.none", {}))
    params = {"cases": m.cases, "moves": m.moves, "largest": m.largest_unchanged, "tolerance": m.tolerance}
    if m.unresolved:
        params = {**params, "unresolved": m.unresolved, "dtype": m.reduced}
        if m.unresolved >= m.cases:
            return Finding("warn", Msg("loss.cluster-nearest.warn_unresolved", params))
        return Finding("pass", Msg("loss.cluster-nearest.pass_unresolved", params))
    return Finding("pass", Msg("loss.cluster-nearest.pass", params))


# --- loss.cluster-scale ----------------------------------------------------------------


@dataclass(frozen=True)
class ScaleViolation:
    kind: str  # "unequal", "value", "ratios", "absent", "weight-length"
    weighting: str  # "balanced", "plain" (1/sqrt(n)), "class-balanced"
    num_classes: int
    samples_per_class: tuple[int, ...]
    coefficients: tuple[float, ...]  # d cluster / d (class c's mean nearest distance)
    expected: tuple[float, ...]
    measured: float | None = None
    oracle: float | None = None
    tolerance: float | None = None
    absent: tuple[int, ...] = ()


@dataclass(frozen=True)
class ScaleMeasurement:
    counterexample: ScaleViolation | None
    cases: int
    factors: dict[str, float]  # samples per class -> weighted term / plain mean (balanced batches)
    # tolerance: on those factors (4 x 256 ulps of the term's dtype per coefficient, times the classes)
    exponent: float  # fitted d log(factor) / d log(samples per class)
    weightings: tuple[str, ...]  # unbalanced weightings compared
    tolerance: float
    absent_batches: int = 0  # batches with absent classes compared with _get_class_weight (0: not exposed)
    weight_error: str = ""  # what _get_class_weight raised when called with a batch's counts
    training: tuple[TermTraining, ...] = ()  # whether the cluster term trains (balanced batches)


_PER_CLASS = (1, 2, 4)
_DELTA = 1.0  # every own valid slot moves together, so the nearest stays nearest: exact at any step
_CB_BETA = 0.9


def _documented(weighting: str, n: int) -> float:
    if weighting == "class-balanced":
        return (1 - _CB_BETA) / (1 - _CB_BETA**n + 1e-6)
    return 1 / math.sqrt(n + 1e-6)  # "plain"


def _coefficients(
    ctx: Context, head: Head, protos: torch.Tensor, sims: torch.Tensor, labels: list[int], layout: Layout
) -> tuple[float, list[float], float]:
    """The cluster term, and its derivative in each class's mean nearest distance (finite differences).

    Lowering every valid own-class similarity of class ``c``'s samples by ``delta`` raises each
    of their nearest distances, hence the class's mean, by exactly ``delta``.
    """
    terms = _terms(ctx, head, protos, sims, labels)
    base = _value(ctx, terms, _CLUSTER)
    dtype = computed_in(ctx.key(terms, _CLUSTER), sources=(protos, sims))
    coefficients = []
    for c in range(layout.num_classes):
        moved = sims.clone()
        rows = [b for b, y in enumerate(labels) if y == c]
        moved[rows, c, : layout.counts[c]] -= _DELTA
        value = _value(ctx, _terms(ctx, head, protos, moved, labels), _CLUSTER)
        coefficients.append((value - base) / _DELTA)
    return base, coefficients, tolerance(dtype, max(1.0, abs(base)), _ULPS)


class _WeightCallRaised(Exception):
    """``_get_class_weight`` raised when called with a batch's counts (its message in ``detail``)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _absent_batch(
    ctx: Context,
    head: Head,
    weigh: Any,
    weighting: str,
    protos: torch.Tensor,
    layout: Layout,
    pattern: Sequence[int],
) -> None:
    """With classes absent, each present class's coefficient is its ``_get_class_weight`` weight
    for the batch's counts (every class, zeros included) divided by the number of classes present.

    The weights are the head's own, so this holds for any weighting the head documents through
    that method (absent classes weighed or not): it pins that the cluster term applies those
    weights to the right classes and averages over the classes present, never over
    ``num_classes``. The last class and the classes the pattern marks are absent; class 0 stays.
    """
    classes = layout.num_classes
    absent = {classes - 1} | {c for c in range(1, classes) if pattern[c % len(pattern)] == 0}
    present = [c for c in range(classes) if c not in absent and layout.counts[c] > 0]
    if not present or classes < 2:
        return
    counts = [0] * classes
    for c in present:
        counts[c] = 1 + (pattern[c % len(pattern)] + c) % 3
    labels = [c for c in present for _ in range(counts[c])]
    gen = ctx.generator(41_000 + sum(counts) + 7 * classes)
    sims = _similarities(gen, len(labels), layout, -0.9, 0.9)
    base, coeff, floored = _coefficients(ctx, head, protos, sims, labels, layout)
    count_tensor = torch.tensor(counts, dtype=torch.float32)
    try:
        with torch.no_grad():
            weights = call_subject("proto_loss_fn._get_class_weight", weigh, count_tensor)
    except SubjectRaised as exc:
        raise _WeightCallRaised(exc.detail) from exc
    values = [float(w) for w in torch.as_tensor(weights).detach().double().reshape(-1)]
    if len(values) != classes:
        raise Refuted(ScaleViolation("weight-length", weighting, classes, tuple(counts), (), tuple(values)))
    expected = [values[c] / len(present) if c in present else 0.0 for c in range(classes)]
    measured = [coeff[c] if c in present else 0.0 for c in range(classes)]
    # Relative to the term itself (no floor at 1): a collapsed weighting makes every value small.
    magnitude = max(abs(base), max(abs(e) for e in expected) * 3.0, 1e-30)
    tol = 4 * floored / max(1.0, abs(base)) * magnitude / _DELTA
    if max(abs(measured[c] - expected[c]) for c in present) > tol:
        raise Refuted(
            ScaleViolation(
                "absent",
                weighting,
                classes,
                tuple(counts),
                tuple(measured),
                tuple(expected),
                tolerance=tol,
                absent=tuple(sorted(absent)),
            )
        )


def _measure_scale(ctx: Context) -> ScaleMeasurement:
    seen: dict[str, Any] = {
        "cases": 0,
        "tol": 0.0,
        "factors": {n: [] for n in _PER_CLASS},
        "weightings": set(),
        "absent": 0,
        "weight_error": "",
    }
    cb = _accepted(ctx, "use_class_balanced") and _accepted(ctx, "cb_beta")
    log = TrainingLog()
    weigh = (lambda h: ctx.get(h, _WEIGHT_FN)) if ctx.has(_WEIGHT_FN) else None

    def prop(case: tuple[Layout, Sequence[int], int]) -> None:
        asked, unbalanced, salt = case
        head, layout = build_contract_head(ctx, asked, salt, perturbed=False, clst_scale=1.0)
        seen["cases"] += 1
        gen = ctx.generator(40_000 + salt)
        protos = _clustered(gen, layout, 8, 0.6)
        classes = layout.num_classes
        for n in _PER_CLASS:
            labels = [c for c in range(classes) for _ in range(n)]
            sims = _similarities(gen, len(labels), layout, -0.9, 0.9)
            value, coeff, tol = _coefficients(ctx, head, protos, sims, labels, layout)
            ctol = 4 * tol / _DELTA
            seen["tol"] = max(seen["tol"], classes * ctol)
            if max(coeff) - min(coeff) > ctol:
                raise Refuted(ScaleViolation("unequal", "balanced", classes, (n,) * classes, tuple(coeff), ()))
            factor = classes * float(np.mean(coeff))
            plain = float(np.mean(list(cluster_terms(arr(sims), labels, layout.counts).values())))
            if log.wants():  # the oracle's per-class terms are positive: the weighted term must move with them
                active = {_record(ctx, _CLUSTER): plain > tol}
                cluster = [_key(ctx, _CLUSTER)]
                log.add(_probe(ctx, head, protos, sims, labels, cluster, salt, along=("similarities",), active=active))
            vtol = 4 * tol + classes * ctol * abs(plain)  # the factor itself was measured to ctol per class
            if not abs(value - factor * plain) <= vtol:
                raise Refuted(
                    ScaleViolation(
                        "value", "balanced", classes, (n,) * classes, tuple(coeff), (), value, factor * plain, vtol
                    )
                )
            seen["factors"][n].append(factor)
        # Unbalanced: each present class's weight relative to another's follows the documented weighting.
        counts = [1 + (unbalanced[c % len(unbalanced)] + c) % 4 for c in range(classes)]
        labels = [c for c in range(classes) for _ in range(counts[c])]
        sims = _similarities(gen, len(labels), layout, -0.9, 0.9)
        runs = [("plain", head)]
        if cb:
            cb_head, _ = build_contract_head(
                ctx, asked, salt, perturbed=False, clst_scale=1.0, use_class_balanced=True, cb_beta=_CB_BETA
            )
            runs.append(("class-balanced", cb_head))
        for weighting, h in runs:
            seen["weightings"].add(weighting)
            _, coeff, tol = _coefficients(ctx, h, protos, sims, labels, layout)
            documented = [_documented(weighting, counts[c]) for c in range(classes)]
            scale = sum(coeff) / sum(documented)
            expected = [scale * w for w in documented]
            if max(abs(a - e) for a, e in zip(coeff, expected, strict=True)) > 4 * tol / _DELTA:
                raise Refuted(
                    ScaleViolation("ratios", weighting, classes, tuple(counts), tuple(coeff), tuple(expected))
                )
            if weigh is not None and not seen["weight_error"]:
                try:
                    _absent_batch(ctx, h, weigh(h), weighting, protos, layout, unbalanced)
                    seen["absent"] += 1
                except _WeightCallRaised as exc:  # an optional part the subject cannot serve: say so
                    seen["weight_error"] = exc.detail

    strategy = st.tuples(
        contract_layouts(max_per_class=3), st.lists(st.integers(0, 3), min_size=1, max_size=5), st.integers(0, 99)
    )
    explicit = [(Layout(3, 2, (2, 1, 2)), (0, 1, 3), 0), (Layout(2, 3, (3, 3)), (2,), 1)]
    found = ctx.search(strategy, prop, ci_examples=5, explicit=explicit)
    factors = {str(n): float(np.mean(v)) for n, v in seen["factors"].items() if v}
    exponent = math.nan
    if factors.get("1", 0) > 0 and factors.get("4", 0) > 0:
        exponent = math.log(factors["4"] / factors["1"]) / math.log(4)
    return ScaleMeasurement(
        counterexample=found.error.detail if found else None,
        cases=seen["cases"],
        factors=factors,
        exponent=exponent,
        weightings=tuple(sorted(seen["weightings"])),
        tolerance=seen["tol"],
        absent_batches=seen["absent"],
        weight_error=seen["weight_error"],
        training=log.records(),
    )


def _judge_scale(m: ScaleMeasurement) -> Finding:
    bad = m.counterexample
    if bad is not None:
        params: dict[str, Any] = {
            "weighting": Msg(f"loss.cluster-scale.weighting.{bad.weighting}"),
            "classes": bad.num_classes,
            "counts": list(bad.samples_per_class),
            "coefficients": [float(f"{c:.4g}") for c in bad.coefficients],
            "expected": [float(f"{c:.4g}") for c in bad.expected] or "-",
            "measured": bad.measured if bad.measured is not None else math.nan,
            "oracle": bad.oracle if bad.oracle is not None else math.nan,
            "tolerance": bad.tolerance if bad.tolerance is not None else math.nan,
            "absent": list(bad.absent) or "-",
        }
        return Finding("fail", Msg(f"loss.cluster-scale.{bad.kind}", params))
    untrainable = untrained(m.training)
    if untrainable is not None:
        return untrainable
    if not m.factors:
        return Finding("error", Msg("loss.cluster-scale.none", {}))
    factors = [f"{n}: {f:.4g}" for n, f in m.factors.items()]
    weightings = [Msg(f"loss.cluster-scale.weighting.{w}") for w in m.weightings]
    if m.weight_error:
        absent = Msg("loss.cluster-scale.absent-raised", {"detail": m.weight_error})
    elif m.absent_batches:
        absent = Msg("loss.cluster-scale.absent-measured", {"batches": m.absent_batches})
    else:
        absent = Msg("loss.cluster-scale.absent-unmeasured", {})
    params = {
        "factors": factors,
        "exponent": m.exponent,
        "weightings": weightings,
        "cases": m.cases,
        "absent": absent,
    }
    if max(abs(f - 1) for f in m.factors.values()) > m.tolerance:
        return Finding("warn", Msg("loss.cluster-scale.warn", params))
    return Finding("pass", Msg("loss.cluster-scale.pass", params))


# --- loss.separation-value -------------------------------------------------------------


@dataclass(frozen=True)
class SeparationViolation:
    kind: str  # "value", "own-class", "no-others"
    layout: Layout
    labels: tuple[int, ...]
    margin: float
    measured: float
    oracle: float
    tolerance: float


@dataclass(frozen=True)
class SeparationMeasurement:
    counterexample: SeparationViolation | None
    cases: int
    margins: tuple[float, ...]
    largest_difference: float
    tolerance: float
    edge_cases: dict[str, str]  # edge case -> "0" or what the subject raised
    training: tuple[TermTraining, ...] = ()  # whether the term trains where its oracle has an active hinge


_MARGINS = (0.3, 0.8, 1.5)
_EDGES = (
    ("one-class", Layout(3, 2, (2, 0, 0)), (0, 0, 0)),  # only class 0 has prototypes
    ("empty-between", Layout(3, 2, (2, 0, 1)), (0, 2, 2)),  # an empty class between two
)


def _measure_separation(ctx: Context) -> SeparationMeasurement:
    seen: dict[str, Any] = {"cases": 0, "diff": 0.0, "tol": 0.0, "margins": set()}
    log = TrainingLog()

    def compare(
        head: Head, layout: Layout, protos: torch.Tensor, sims: torch.Tensor, labels: list[int], kind: str
    ) -> float:
        terms = _terms(ctx, head, protos, sims, labels)
        value = _value(ctx, terms, _SEP)
        margin = float(ctx.get(head, "proto_loss_fn.margin"))
        seen["margins"].add(round(margin, 6))
        oracle = separation(arr(sims), labels, layout.counts, margin)
        tol = tolerance(ctx.key(terms, _SEP), max(1.0, margin), _ULPS, sources=(protos, sims))
        seen["tol"] = max(seen["tol"], tol)
        seen["diff"] = max(seen["diff"], abs(value - oracle))
        if not abs(value - oracle) <= tol:
            raise Refuted(SeparationViolation(kind, layout, tuple(labels), margin, value, oracle, tol))
        return value

    edges: dict[str, str] = {}
    for index, (name, layout, labels) in enumerate(_EDGES):
        head, layout = build_contract_head(ctx, layout, index, perturbed=False, margin=0.8, sep_scale=1.0)
        gen = ctx.generator(45_000 + index)
        sims = _similarities(gen, len(labels), layout, 0.0, 1.0)
        try:
            compare(
                head,
                layout,
                _clustered(gen, layout, 8, 0.6),
                sims,
                list(labels),
                "no-others" if index == 0 else "value",
            )
            edges[name] = "0" if index == 0 else "oracle"
        except SubjectRaised as exc:  # the behaviour where separation is undefined is what is measured here
            if index != 0:
                raise
            edges[name] = exc.detail
        except Refuted as exc:
            ctx.count_explicit(index + 1, found=True)
            return SeparationMeasurement(exc.detail, 0, (0.8,), seen["diff"], seen["tol"], edges)
    ctx.count_explicit(len(_EDGES), found=False)

    def prop(case: tuple[Layout, int, int, int]) -> None:
        asked, batch, margin_index, salt = case
        head, layout = build_contract_head(
            ctx, asked, salt, perturbed=False, margin=_MARGINS[margin_index], sep_scale=1.0
        )
        seen["cases"] += 1
        gen = ctx.generator(46_000 + salt)
        labels = _labels(gen, layout, batch, every=False)  # "present classes": some may be absent
        sims = _similarities(gen, batch, layout)
        for c, k in enumerate(layout.counts):
            sims[:, c, k:] = 1.0  # invalid slots at distance 0: they must not count
        protos = _clustered(gen, layout, 8, 0.6)
        base = compare(head, layout, protos, sims, labels, "value")
        if log.wants():  # active where the oracle has a hinge above 0; inactive (and said so) otherwise
            oracle = separation(arr(sims), labels, layout.counts, float(ctx.get(head, "proto_loss_fn.margin")))
            active = {_record(ctx, _SEP): oracle > seen["tol"]}
            sep = [_key(ctx, _SEP)]
            log.add(_probe(ctx, head, protos, sims, labels, sep, salt, along=("similarities",), active=active))
        moved = sims.clone()
        for b, y in enumerate(labels):
            moved[b, y, :] = torch.rand(layout.max_prototypes, generator=gen).float() * 2 - 1
        after = _value(ctx, _terms(ctx, head, protos, moved, labels), _SEP)
        if not abs(after - base) <= seen["tol"]:
            margin = float(ctx.get(head, "proto_loss_fn.margin"))
            raise Refuted(SeparationViolation("own-class", layout, tuple(labels), margin, after, base, seen["tol"]))

    @st.composite
    def layouts_with_others(draw: st.DrawFn) -> Layout:
        layout = draw(contract_layouts(min_count=0, max_per_class=3))
        counts = list(layout.counts)
        counts[0], counts[1] = max(counts[0], 1), max(counts[1], 1)  # every present class has another's row
        return Layout(layout.num_classes, layout.max_prototypes, tuple(counts))

    strategy = st.tuples(
        layouts_with_others(), st.integers(1, 8), st.integers(0, len(_MARGINS) - 1), st.integers(0, 99)
    )
    explicit = [(Layout(4, 3, (2, 3, 0, 1)), 5, 1, 0), (Layout(3, 2, (1, 2, 2)), 3, 2, 1)]
    found = ctx.search(strategy, prop, ci_examples=12, explicit=explicit)
    return SeparationMeasurement(
        counterexample=found.error.detail if found else None,
        cases=seen["cases"],
        margins=tuple(sorted(seen["margins"])),
        largest_difference=seen["diff"],
        tolerance=seen["tol"],
        edge_cases=edges,
        training=log.records(),
    )


def _judge_separation(m: SeparationMeasurement) -> Finding:
    bad = m.counterexample
    if bad is not None:
        params = {
            "measured": bad.measured,
            "oracle": bad.oracle,
            "margin": bad.margin,
            "tolerance": bad.tolerance,
            "layout": bad.layout.describe(),
            "labels": list(bad.labels),
        }
        return Finding("fail", Msg(f"loss.separation-value.{bad.kind}", params))
    untrainable = untrained(m.training)
    if untrainable is not None:
        return untrainable
    if m.cases == 0:
        return Finding("error", Msg("loss.separation-value.none", {}))
    summary: dict[str, Any] = {
        "cases": m.cases,
        "margins": list(m.margins),
        "difference": m.largest_difference,
        "tolerance": m.tolerance,
    }
    raised = {k: v for k, v in m.edge_cases.items() if v not in ("0", "oracle")}
    if raised:
        case, detail = next(iter(raised.items()))
        edge = Msg(f"loss.separation-value.edge.{case}")
        return Finding(
            "pass", Msg("loss.separation-value.pass_where_defined", {**summary, "case": edge, "detail": detail})
        )
    return Finding("pass", Msg("loss.separation-value.pass", summary))


# --- loss.diversity-value --------------------------------------------------------------


@dataclass(frozen=True)
class DiversityViolation:
    layout: Layout
    spread: float
    measured: float
    oracle: float
    tolerance: float
    invalid_rows_moved: bool


@dataclass(frozen=True)
class DiversityMeasurement:
    counterexample: DiversityViolation | None
    cases: int
    active: int  # cases with a non-zero oracle
    largest_difference: float
    tolerance: float
    dtype: str
    training: tuple[TermTraining, ...] = ()  # whether the term trains where its oracle is above 0


_SPREADS = (0.2, 0.5, 0.9)


def _measure_diversity(ctx: Context) -> DiversityMeasurement:
    seen: dict[str, Any] = {"cases": 0, "active": 0, "diff": 0.0, "tol": 0.0, "dtypes": set()}
    log = TrainingLog()

    def check(head: Head, layout: Layout, protos: torch.Tensor, spread: float, moved: bool) -> None:
        terms = _terms(ctx, head, protos, None, None)
        value = _value(ctx, terms, _DIV)
        dtype = computed_in(ctx.key(terms, _DIV), sources=(protos,))
        seen["dtypes"].add(dtype_name(dtype))
        oracle = diversity(arr(protos), layout.counts, layout.max_prototypes)
        tol = tolerance(dtype, 1.0, _ULPS)
        seen["tol"] = max(seen["tol"], tol)
        seen["diff"] = max(seen["diff"], abs(value - oracle))
        if not abs(value - oracle) <= tol:
            raise Refuted(DiversityViolation(layout, spread, value, oracle, tol, moved))
        seen["active"] += oracle > 0 and not moved
        if not moved and log.wants():
            active = {_record(ctx, _DIV): oracle > tol}
            div = [_key(ctx, _DIV)]
            log.add(_probe(ctx, head, protos, None, None, div, len(protos), along=("prototypes",), active=active))

    def prop(case: tuple[Layout, int, int]) -> None:
        asked, spread_index, salt = case
        head, layout = build_contract_head(ctx, asked, salt, perturbed=False, div_scale=1.0)
        seen["cases"] += 1
        gen = ctx.generator(50_000 + salt)
        spread = _SPREADS[spread_index]
        protos = _clustered(gen, layout, 8, spread)
        check(head, layout, protos, spread, False)
        invalid = [r for r in range(layout.rows) if r not in set(layout.valid_rows)]
        if invalid:
            moved = protos.clone()
            moved[invalid] = -moved[invalid].flip(-1) + 3.0
            check(head, layout, moved, spread, True)

    strategy = st.tuples(contract_layouts(min_count=0), st.integers(0, len(_SPREADS) - 1), st.integers(0, 99))
    explicit = [(Layout(3, 4, (3, 1, 0)), 1, 0), (Layout(2, 3, (2, 3)), 0, 1)]
    found = ctx.search(strategy, prop, ci_examples=12, explicit=explicit)
    return DiversityMeasurement(
        counterexample=found.error.detail if found else None,
        cases=seen["cases"],
        active=seen["active"],
        largest_difference=seen["diff"],
        tolerance=seen["tol"],
        dtype=", ".join(sorted(seen["dtypes"])),
        training=log.records(),
    )


def _judge_diversity(m: DiversityMeasurement) -> Finding:
    bad = m.counterexample
    if bad is not None:
        key = "invalid_rows" if bad.invalid_rows_moved else "value"
        params = {
            "measured": bad.measured,
            "oracle": bad.oracle,
            "tolerance": bad.tolerance,
            "layout": bad.layout.describe(),
        }
        return Finding("fail", Msg(f"loss.diversity-value.{key}", params))
    untrainable = untrained(m.training)
    if untrainable is not None:
        return untrainable
    if m.active == 0:
        return Finding("error", Msg("loss.diversity-value.inactive", {"cases": m.cases}))
    params = {"cases": m.cases, "active": m.active, "difference": m.largest_difference, "tolerance": m.tolerance}
    return Finding("pass", Msg("loss.diversity-value.pass", params))


ORDER = 350

CHECKS: tuple[Check[Any], ...] = (
    Check(
        id="loss.terms-sum",
        catalogue=3,
        measure=_measure_terms,
        judge=_judge_terms,
        needs=(*LOSS_CALL_NEEDS, _PROTO, *(f"?{k}" for k in _SCALED)),
        settings=tuple(f"?{s}" for s in _SCALED.values()),
        severity="high",
        search=True,
        group="contracts",
    ),
    Check(
        id="loss.cluster-nearest",
        catalogue=3,
        measure=_measure_nearest,
        judge=_judge_nearest,
        needs=(*LOSS_CALL_NEEDS, _CLUSTER),
        severity="high",
        search=True,
        group="contracts",
    ),
    Check(
        id="loss.cluster-scale",
        catalogue=3,
        measure=_measure_scale,
        judge=_judge_scale,
        needs=(*LOSS_CALL_NEEDS, _CLUSTER, f"?{_WEIGHT_FN}"),
        settings=("clst_scale", "?use_class_balanced", "?cb_beta"),
        severity="medium",
        search=True,
        group="contracts",
    ),
    Check(
        id="loss.separation-value",
        catalogue=3,
        measure=_measure_separation,
        judge=_judge_separation,
        needs=(*LOSS_CALL_NEEDS, _SEP, "proto_loss_fn.margin"),
        settings=("margin", "sep_scale"),
        severity="high",
        search=True,
        group="contracts",
    ),
    Check(
        id="loss.diversity-value",
        catalogue=3,
        measure=_measure_diversity,
        judge=_judge_diversity,
        needs=(*LOSS_CALL_NEEDS, _DIV),
        settings=("div_scale",),
        severity="medium",
        search=True,
        group="contracts",
    ),
)
