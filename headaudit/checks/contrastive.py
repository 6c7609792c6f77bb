"""The contrastive term: which pairs it pushes apart, its value, and its edge cases.

Claim 1.1 of the original report: the fixed contrastive loss pushes apart only
prototypes of different classes and equals their mean similarity. Claim 2.4: with
``n <= 1`` valid prototypes it is 0. The term is read through
``compute_contrastive_loss`` where it exists, else isolated from the loss forward with
an empty label batch (:func:`headaudit.adapters.contrastive_term`). Each check also probes
the term to train (:mod:`headaudit.checks._trains`): a term with the right values and no
gradient (a ``.detach()``, a ``torch.no_grad()`` block) is refuted, and ``contrastive.tiny``'s
"finite gradients" is backed by a control state with two classes where the term must train.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from hypothesis import strategies as st

from headaudit.adapters import CONTRASTIVE_NEEDS, Head, contrastive_term, loss_terms
from headaudit.checks._common import (
    Layout,
    coarsest,
    computed_in,
    dtype_name,
    head_for_layout,
    layouts,
    pairs,
    row_classes,
    tolerance,
)
from headaudit.checks._trains import TermTraining, TrainingLog, leaf, probe, untrained
from headaudit.context import Context, Refuted
from headaudit.messages import Msg
from headaudit.model import Finding
from headaudit.registry import Check
from headaudit.sandbox import SubjectRaised

__all__ = ["CHECKS", "ORDER", "different_class_mean"]

_EMB = 48  # >= 8 classes x 6 rows, so every valid row can be orthonormal
_STEPS = (0.5, 3.0)  # one-pair moves to cosine 0.447 and 0.949: a hinge above either still sees one

# Small layouts that hold every kind of pair: a same-class pair alone, one row in each of
# two classes, same- and different-class pairs together, and invalid rows in each.
_EXPLICIT_LAYOUTS = (
    Layout(2, 2, (2, 0)),
    Layout(2, 2, (1, 1)),
    Layout(2, 3, (2, 1)),
    Layout(3, 2, (2, 1, 0)),
)


def different_class_mean(prototypes: np.ndarray, layout: Layout) -> float:
    """The oracle: mean cosine similarity over ordered pairs of valid rows of different classes.

    0.0 when there is no such pair. Plain numpy, written independently of any subject.
    """
    owner = row_classes(layout)
    rows = sorted(owner)
    x = np.asarray(prototypes, dtype=np.float64)
    unit = x / np.linalg.norm(x, axis=-1, keepdims=True)
    values = [float(unit[i] @ unit[j]) for i in rows for j in rows if i != j and owner[i] != owner[j]]
    return float(np.mean(values)) if values else 0.0


def _term(ctx: Context, head: Head, x: torch.Tensor, *, unscaled: bool) -> tuple[float, torch.dtype]:
    """The term's value for prototype rows ``x``, and the precision it was computed in
    (from ``x``: a float32 Gram matrix cast back to float64 is float32)."""
    value = contrastive_term(ctx, head, x, unscaled=unscaled)
    return float(value.detach()), computed_in(value, sources=(x,))


def _term_name(ctx: Context) -> str:
    """The name the term is read through (the method where the loss has it, else the dict key)."""
    method = "proto_loss_fn.compute_contrastive_loss"
    return method if ctx.has(method) else "proto_loss_fn[contrastive_loss]"


def _probe(
    ctx: Context, head: Head, x: torch.Tensor, *, unscaled: bool, active: bool, salt: int, case: str = ""
) -> tuple[TermTraining, ...]:
    """Whether the term trains along the prototype rows at ``x`` (``active``: the oracle has
    different-class pairs there), in ``x``'s dtype (the state the check built)."""
    name = _term_name(ctx)
    rows = leaf(x, dtype=None)

    def evaluate() -> dict[str, object]:
        return {name: contrastive_term(ctx, head, rows, unscaled=unscaled)}

    groups = [("proto_manager.prototypes", [rows])]
    return probe(evaluate, groups, ctx.generator(60_000 + salt), active={name: active}, case=case)


# --- contrastive.pairs -------------------------------------------------------------


@dataclass(frozen=True)
class PairViolation:
    """A move that contradicts the claim: which rows, how far, and the loss change."""

    kind: str  # "same-class", "lowered", "invalid-rows"
    layout: Layout
    change: float
    tolerance: float
    rows: tuple[int, ...] = ()
    classes: tuple[int, ...] = ()
    step: float | None = None


@dataclass(frozen=True)
class PairsMeasurement:
    counterexample: PairViolation | None
    layouts: int
    moves: int
    same_class_moves: int
    cross_class_moves: int
    raises: int  # different-class moves that raised the loss beyond tolerance
    largest_same_class_change: float
    smallest_cross_class_change: float
    largest_cross_class_change: float
    largest_tolerance: float
    dtype: str
    training: tuple[TermTraining, ...] = ()  # whether the term trains (item 2), per term


def _orthonormal_state(ctx: Context, layout: Layout) -> torch.Tensor:
    """Valid rows orthonormal; invalid rows large and random (they must not matter)."""
    gen = ctx.generator(salt=layout.num_classes * 100 + layout.max_prototypes)
    basis, _ = torch.linalg.qr(torch.randn(_EMB, _EMB, generator=gen, dtype=torch.float64))
    x = 5.0 * torch.randn(layout.rows, _EMB, generator=gen, dtype=torch.float64)
    for n, row in enumerate(layout.valid_rows):
        x[row] = basis[n]
    return x


def _measure_pairs(ctx: Context) -> PairsMeasurement:
    seen = {"layouts": 0, "moves": 0, "same": 0, "cross": 0, "raises": 0}
    extremes = {"same": 0.0, "cross_min": math.inf, "cross_max": -math.inf, "tol": 0.0}
    dtypes: set[str] = set()
    log = TrainingLog()

    def prop(asked: Layout) -> None:
        head, layout = head_for_layout(ctx, asked, _EMB)
        seen["layouts"] += 1
        owner = row_classes(layout)
        x = _orthonormal_state(ctx, layout)
        base, dtype = _term(ctx, head, x, unscaled=False)
        if log.wants() and any(owner[i] != owner[j] for i, j in pairs(sorted(owner))):
            # no value oracle here (a hinge on the cosine is at rest at orthonormal rows): a term
            # that never moves is refuted by the moves below ("never raised"), not by the probe
            log.add(_probe(ctx, head, x, unscaled=False, active=False, salt=layout.rows))
        dtypes.add(dtype_name(dtype))

        def change_of(moved: torch.Tensor) -> tuple[float, float]:
            value, moved_dtype = _term(ctx, head, moved, unscaled=False)
            tol = tolerance(coarsest(dtype, moved_dtype), max(abs(base), abs(value)))
            extremes["tol"] = max(extremes["tol"], tol)
            return value - base, tol

        invalid = [r for r in range(layout.rows) if r not in owner]
        if invalid:
            shuffled = x.clone()
            shuffled[invalid] = -3.0 * x[invalid].flip(-1)
            change, tol = change_of(shuffled)
            if not abs(change) <= tol:
                raise Refuted(PairViolation("invalid-rows", layout, change, tol, rows=tuple(invalid)))
        for i, j in pairs(sorted(owner)):
            for step in _STEPS:
                moved = x.clone()
                moved[i] = x[i] + step * x[j]
                moved[i] = moved[i] / moved[i].norm()
                change, tol = change_of(moved)
                seen["moves"] += 1
                where = {"rows": (i, j), "classes": (owner[i], owner[j]), "step": step}
                if owner[i] == owner[j]:
                    seen["same"] += 1
                    extremes["same"] = max(extremes["same"], abs(change))
                    if not abs(change) <= tol:
                        raise Refuted(PairViolation("same-class", layout, change, tol, **where))  # type: ignore[arg-type]
                else:
                    seen["cross"] += 1
                    extremes["cross_min"] = min(extremes["cross_min"], change)
                    extremes["cross_max"] = max(extremes["cross_max"], change)
                    seen["raises"] += change > tol
                    if not change >= -tol:
                        raise Refuted(PairViolation("lowered", layout, change, tol, **where))  # type: ignore[arg-type]

    found = ctx.search(layouts(min_rows=2), prop, ci_examples=25, explicit=_EXPLICIT_LAYOUTS)
    return PairsMeasurement(
        counterexample=found.error.detail if found else None,
        layouts=seen["layouts"],
        moves=seen["moves"],
        same_class_moves=seen["same"],
        cross_class_moves=seen["cross"],
        raises=seen["raises"],
        largest_same_class_change=extremes["same"],
        smallest_cross_class_change=extremes["cross_min"] if seen["cross"] else math.nan,
        largest_cross_class_change=extremes["cross_max"] if seen["cross"] else math.nan,
        largest_tolerance=extremes["tol"],
        dtype=", ".join(sorted(dtypes)),
        training=log.records(),
    )


def _judge_pairs(m: PairsMeasurement) -> Finding:
    bad = m.counterexample
    if bad is not None:
        params = {
            "change": bad.change,
            "tolerance": bad.tolerance,
            "layout": bad.layout.describe(),
            "rows": list(bad.rows),
            "classes": list(bad.classes),
        }
        return Finding("fail", Msg(f"contrastive.pairs.{bad.kind}", params))
    untrainable = untrained(m.training)
    if untrainable is not None:
        return untrainable
    if m.cross_class_moves == 0:
        return Finding("error", Msg("contrastive.pairs.no_cross_moves", {"layouts": m.layouts}))
    if m.raises == 0:
        return Finding(
            "fail",
            Msg(
                "contrastive.pairs.never_raised",
                {"moves": m.cross_class_moves, "largest": m.largest_cross_class_change},
            ),
        )
    return Finding(
        "pass",
        Msg(
            "contrastive.pairs.pass",
            {
                "moves": m.moves,
                "same": m.largest_same_class_change,
                "raises": m.raises,
                "cross": m.cross_class_moves,
                "tolerance": m.largest_tolerance,
                "dtype": m.dtype,
            },
        ),
    )


# --- contrastive.value -------------------------------------------------------------


@dataclass(frozen=True)
class ValueMismatch:
    layout: Layout
    prototype_seed: int
    measured: float
    oracle: float
    tolerance: float


@dataclass(frozen=True)
class ValueMeasurement:
    counterexample: ValueMismatch | None
    compared: int
    largest_abs_difference: float
    largest_tolerance: float
    dtype: str
    training: tuple[TermTraining, ...] = ()  # whether the term trains (item 2)


def _measure_value(ctx: Context) -> ValueMeasurement:
    worst = {"diff": 0.0, "tol": 0.0}
    compared = [0]
    dtypes: set[str] = set()
    log = TrainingLog()

    @st.composite
    def cases(draw: st.DrawFn) -> tuple[Layout, int]:
        return draw(layouts(min_classes_with_rows=2)), draw(st.integers(0, 99))

    def prop(case: tuple[Layout, int]) -> None:
        asked, salt = case
        head, layout = head_for_layout(ctx, asked, 16)
        gen = ctx.generator(salt)
        x = torch.randn(layout.rows, 16, generator=gen, dtype=torch.float64)
        x = x * torch.rand(layout.rows, 1, generator=gen, dtype=torch.float64).add(0.2) * 2
        expected = different_class_mean(x.numpy(), layout)
        measured, dtype = _term(ctx, head, x, unscaled=True)
        dtypes.add(dtype_name(dtype))
        if log.wants():  # every layout here has different-class pairs: the oracle's term is active
            log.add(_probe(ctx, head, x, unscaled=True, active=True, salt=100 + salt))
        diff = abs(measured - expected)
        tol = tolerance(dtype, max(abs(expected), abs(measured)))
        compared[0] += 1
        worst["diff"] = max(worst["diff"], diff)
        worst["tol"] = max(worst["tol"], tol)
        if not diff <= tol:
            raise Refuted(ValueMismatch(layout, salt, measured, expected, tol))

    explicit = [(Layout(2, 2, (2, 1)), 0), (Layout(3, 2, (1, 2, 1)), 1)]
    found = ctx.search(cases(), prop, ci_examples=25, explicit=explicit)
    return ValueMeasurement(
        counterexample=found.error.detail if found else None,
        compared=compared[0],
        largest_abs_difference=worst["diff"],
        largest_tolerance=worst["tol"],
        dtype=", ".join(sorted(dtypes)),
        training=log.records(),
    )


def _judge_value(m: ValueMeasurement) -> Finding:
    bad = m.counterexample
    if bad is not None:
        params = {
            "measured": bad.measured,
            "oracle": bad.oracle,
            "difference": abs(bad.measured - bad.oracle),
            "tolerance": bad.tolerance,
            "layout": bad.layout.describe(),
        }
        return Finding("fail", Msg("contrastive.value.fail", params))
    untrainable = untrained(m.training)
    if untrainable is not None:
        return untrainable
    return Finding(
        "pass",
        Msg(
            "contrastive.value.pass",
            {"compared": m.compared, "difference": m.largest_abs_difference, "tolerance": m.largest_tolerance},
        ),
    )


# --- contrastive.tiny --------------------------------------------------------------


@dataclass(frozen=True)
class TinyCase:
    name: str
    layout: Layout
    value: float | None = None
    tolerance: float | None = None
    precision: str = ""  # the dtype the term was computed in (the tolerance's)
    finite_gradient: bool | None = None
    raised: str | None = None
    with_labels: dict[str, float] | str = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            self.raised is None
            and self.value is not None
            and math.isfinite(self.value)
            and abs(self.value) <= (self.tolerance or 0.0)
            and bool(self.finite_gradient)
        )


@dataclass(frozen=True)
class TinyMeasurement:
    cases: tuple[TinyCase, ...]
    # whether the term trains: in each tiny case (where it must not move: inactive) and in a
    # control state with two classes (where it must: "finite gradients" is then not vacuous)
    training: tuple[TermTraining, ...] = ()


_TINY_CASES: tuple[tuple[str, Layout], ...] = (
    ("n=0", Layout(3, 2, (0, 0, 0))),
    ("n=1", Layout(3, 2, (1, 0, 0))),
    ("one class, n=3", Layout(3, 3, (3, 0, 0))),
)
_TINY_CONTROL = ("two classes, n=2", Layout(3, 2, (1, 1, 0)))


def _measure_tiny(ctx: Context) -> TinyMeasurement:
    cases = []
    training: list[TermTraining] = []
    for index, (name, asked) in enumerate(_TINY_CASES):
        head, layout = head_for_layout(ctx, asked, 8)
        x = torch.randn(layout.rows, 8, generator=ctx.generator(7), requires_grad=True)
        record: dict[str, object] = {}
        try:
            value = contrastive_term(ctx, head, x, unscaled=False)
        except SubjectRaised as exc:  # the call under test raising is its measured behaviour here
            record["raised"] = exc.detail
        else:
            number = float(value.detach())
            precision = computed_in(value, sources=(x,))
            record.update(value=number, tolerance=tolerance(precision, 0.0), precision=dtype_name(precision))
            grad_ok = True
            if value.requires_grad:
                (grad,) = torch.autograd.grad(value, x, allow_unused=True)
                grad_ok = grad is None or bool(torch.isfinite(grad).all())
            record["finite_gradient"] = grad_ok
            training.extend(_probe(ctx, head, x, unscaled=False, active=False, salt=200 + index, case=name))
        # With labels present the per-class terms run too; report what the whole loss does.
        labels = torch.zeros(2, dtype=torch.long)
        sims = torch.rand(2, layout.num_classes, layout.max_prototypes, generator=ctx.generator(8))
        try:
            terms = loss_terms(ctx, head, x.detach(), sims, labels)
            record["with_labels"] = {k: float(v) for k, v in sorted(terms.items())}
        except SubjectRaised as exc:
            record["with_labels"] = exc.detail
        cases.append(TinyCase(name, layout, **record))  # type: ignore[arg-type]
    name, asked = _TINY_CONTROL
    head, layout = head_for_layout(ctx, asked, 8)
    x = torch.randn(layout.rows, 8, generator=ctx.generator(7))
    # active=False: the claim here is about n <= 1; a hinge on the cosine may rest at these rows
    training.extend(_probe(ctx, head, x, unscaled=False, active=False, salt=210, case=name))
    return TinyMeasurement(tuple(cases), tuple(training))


def _judge_tiny(m: TinyMeasurement) -> Finding:
    bad = [c for c in m.cases if not c.ok]
    untrainable = untrained(m.training)
    if untrainable is not None and not bad:
        return untrainable
    if not bad:
        return Finding("pass", Msg("contrastive.tiny.pass", {"cases": [c.name for c in m.cases]}))
    listing = []
    for c in bad:
        if c.raised is not None:
            listing.append(Msg("contrastive.tiny.case_raised", {"case": c.name, "detail": c.raised}))
        elif c.value is not None and not (math.isfinite(c.value) and abs(c.value) <= (c.tolerance or 0.0)):
            listing.append(Msg("contrastive.tiny.case_value", {"case": c.name, "value": c.value}))
        else:
            listing.append(Msg("contrastive.tiny.case_gradient", {"case": c.name}))
    return Finding("fail", Msg("contrastive.tiny.fail", {"bad": len(bad), "total": len(m.cases), "cases": listing}))


ORDER = 110

CHECKS: tuple[Check[object], ...] = (
    Check(
        id="contrastive.pairs",
        catalogue=1,
        measure=_measure_pairs,
        judge=_judge_pairs,  # type: ignore[arg-type]
        needs=CONTRASTIVE_NEEDS,
        severity="high",
        search=True,
    ),
    Check(
        id="contrastive.value",
        catalogue=1,
        measure=_measure_value,
        judge=_judge_value,  # type: ignore[arg-type]
        needs=CONTRASTIVE_NEEDS,
        severity="high",
        search=True,
    ),
    Check(
        id="contrastive.tiny",
        catalogue=1,
        measure=_measure_tiny,
        judge=_judge_tiny,  # type: ignore[arg-type]
        needs=CONTRASTIVE_NEEDS,
        severity="medium",
    ),
)
