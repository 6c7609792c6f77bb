"""Inputs and outputs of the head's forward (claim 2.3, and what the report did not check).

- ``shapes.global-3d`` (claim 2.3): a ``(B, 1, D)`` global feature gives the logits of
  ``(B, D)``, and ``(B, T, D)`` those of its mean over ``T``;
- ``shapes.batch-independence`` (missed by the report): in eval a sample's logits do not
  change when the other samples change or when it is evaluated alone;
- ``shapes.permutation``: a permuted batch gives the permuted logits;
- ``shapes.dtype``: a double head on double inputs gives double logits;
- ``shapes.bad-input``: wrong inputs get an error naming the argument. Here the subject
  raising IS the measurement: each input's outcome is recorded (the exception's type and
  message and whether it names the argument, or what came out when nothing was raised).

Every head is built with dropout 0 and measured in eval mode (``bad-input`` uses training
mode for labels, which eval ignores). Logits are the first value ``forward`` returns.
Tolerances are 256 ulps of the logits' dtype relative to their magnitude: reordering the
``B*N`` keys of an attention changes float32 rounding by a few ulps. All five cost about
0.5 s per subject.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import strategies as st

from headaudit.adapters import Head
from headaudit.checks._common import coarsest, computed_in, dtype_name, tolerance
from headaudit.context import Context, Refuted
from headaudit.fingerprints import Headline
from headaudit.messages import Msg
from headaudit.model import Finding
from headaudit.precision import derived
from headaudit.registry import Check
from headaudit.sandbox import SubjectRaised, call_subject

__all__ = ["CHECKS", "ORDER"]

_CLASSES, _EMB, _PATCHES = 3, 16, 4
_ULPS = 256.0
_EXPLICIT = ((2, 0), (5, 1))


def _head(ctx: Context, train: bool = False) -> Head:
    torch.manual_seed(ctx.seed)
    return ctx.build(num_classes=_CLASSES, emb_dim=_EMB, train=train)


def _batch(ctx: Context, batch: int, salt: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    gen = ctx.generator(salt)
    pool = torch.randn(batch, _PATCHES, _EMB, generator=gen, dtype=dtype)
    return pool, torch.randn(batch, _EMB, generator=gen, dtype=dtype)


def _logits(head: Head, *args: Any, **kwargs: Any) -> torch.Tensor:
    with torch.no_grad():
        out = call_subject("forward", head, *args, **kwargs)
    logits = out[0] if isinstance(out, (tuple, list)) else out
    if not isinstance(logits, torch.Tensor):
        raise SubjectRaised("forward", TypeError(f"returned {type(logits).__name__} as logits, not a tensor"))
    return derived(logits.detach(), logits)


def _tol(*tensors: torch.Tensor) -> float:
    """Tolerance on outputs of two runs from float32 inputs: the precision they were computed
    in (their whole computation: the runs are compared with each other), at most float32's."""
    finite = [t[torch.isfinite(t)] for t in tensors]
    magnitude = max(float(t.abs().max()) if t.numel() else 0.0 for t in finite)
    return tolerance(coarsest(computed_in(tensors), torch.float32), magnitude, _ULPS)


def _change(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest |a - b|; NaN in both at the same place counts as equal, NaN in one as infinite."""
    if not a.numel():
        return 0.0
    a, b = a.double(), b.double()
    diff = torch.where(torch.isnan(a) & torch.isnan(b), torch.zeros_like(a), (a - b).abs())
    return float(torch.nan_to_num(diff, nan=math.inf).max())


# --- shapes.global-3d -------------------------------------------------------------------


@dataclass(frozen=True)
class GlobalCase:
    kind: str  # "singleton": (B, 1, D) vs (B, D); "mean": (B, T, D) vs its mean over T
    batch: int
    tokens: int
    change: float
    tolerance: float


@dataclass(frozen=True)
class Global3dMeasurement:
    cases: tuple[GlobalCase, ...]
    dtype: str


def _measure_global(ctx: Context) -> Global3dMeasurement:
    head = _head(ctx)
    cases = []
    dtype = torch.float32
    for batch, tokens, salt in ((1, 3, 0), (3, 4, 1), (4, 7, 2)):
        pool, img = _batch(ctx, batch, salt)
        flat = _logits(head, pool, img)
        dtype = flat.dtype
        single = _logits(head, pool, img.unsqueeze(1))
        cases.append(GlobalCase("singleton", batch, 1, _change(single, flat), _tol(flat, single)))
        tokens_in = torch.randn(batch, tokens, _EMB, generator=ctx.generator(100 + salt))
        from_3d = _logits(head, pool, tokens_in)
        from_mean = _logits(head, pool, tokens_in.mean(dim=1))
        cases.append(GlobalCase("mean", batch, tokens, _change(from_3d, from_mean), _tol(from_3d, from_mean)))
    return Global3dMeasurement(tuple(cases), dtype_name(dtype))


def _judge_global(m: Global3dMeasurement) -> Finding:
    if not m.cases:
        return Finding("error", Msg("shapes.global-3d.none", {}))
    bad = [c for c in m.cases if not c.change <= c.tolerance]
    if bad:
        listing = [
            Msg(f"shapes.global-3d.case_{c.kind}", {"batch": c.batch, "tokens": c.tokens, "change": c.change})
            for c in bad
        ]
        return Finding("fail", Msg("shapes.global-3d.fail", {"cases": listing, "tolerance": bad[0].tolerance}))
    worst = max(c.change for c in m.cases)
    tol = max(c.tolerance for c in m.cases)
    return Finding("pass", Msg("shapes.global-3d.pass", {"cases": len(m.cases), "change": worst, "tolerance": tol}))


# --- shapes.batch-independence ------------------------------------------------------------


@dataclass(frozen=True)
class Coupling:
    """A batch in which a sample's logits depend on the other samples."""

    batch: int
    salt: int
    alone_change: float  # sample 0: in the batch vs evaluated alone
    others_change: float  # sample 0: with the other samples replaced
    largest_change: float  # over every sample: in the batch vs alone
    flipped: int  # samples whose predicted class differs between the batch and alone
    tolerance: float


@dataclass(frozen=True)
class IndependenceMeasurement:
    counterexample: Coupling | None
    batches: int
    largest_change: float
    tolerance: float
    dtype: str


def _measure_independence(ctx: Context) -> IndependenceMeasurement:
    head = _head(ctx)
    seen = {"batches": 0, "change": 0.0, "tol": 0.0}
    dtypes: set[str] = set()

    def prop(case: tuple[int, int]) -> None:
        batch, salt = case
        pool, img = _batch(ctx, batch, salt)
        full = _logits(head, pool, img)
        dtypes.add(dtype_name(full.dtype))
        alone = _logits(head, pool[:1], img[:1])
        other_pool, other_img = _batch(ctx, batch, salt + 1000)
        other_pool[0], other_img[0] = pool[0], img[0]
        others = _logits(head, other_pool, other_img)
        tol = _tol(full, alone, others)
        alone_change, others_change = _change(full[:1], alone), _change(full[:1], others[:1])
        seen["batches"] += 1
        seen["change"] = max(seen["change"], alone_change, others_change)
        seen["tol"] = max(seen["tol"], tol)
        if alone_change <= tol and others_change <= tol:
            return
        singles = [_logits(head, pool[i : i + 1], img[i : i + 1]) for i in range(batch)]
        each = torch.cat(singles)
        flipped = int((each.argmax(-1) != full.argmax(-1)).sum())
        raise Refuted(Coupling(batch, salt, alone_change, others_change, _change(full, each), flipped, tol))

    found = ctx.search(st.tuples(st.integers(2, 16), st.integers(0, 99)), prop, ci_examples=10, explicit=_EXPLICIT)
    return IndependenceMeasurement(
        counterexample=found.error.detail if found else None,
        batches=int(seen["batches"]),
        largest_change=seen["change"],
        tolerance=seen["tol"],
        dtype=", ".join(sorted(dtypes)),
    )


def _coupled_by(bad: Coupling) -> list[Msg]:
    """What the counterexample shows, one finding each: which perturbation changed the
    sample's logits (evaluating it alone, replacing the other samples) and whether any
    prediction flipped, so a second kind of coupling is a new finding."""
    kinds = [
        Msg(f"shapes.batch-independence.{name}")
        for name, change in (("alone", bad.alone_change), ("others", bad.others_change))
        if not change <= bad.tolerance  # NaN counts as changed
    ]
    return [*kinds, Msg("shapes.batch-independence.flipped")] if bad.flipped else kinds


def _judge_independence(m: IndependenceMeasurement) -> Finding:
    bad = m.counterexample
    if bad is not None:
        params = {
            "kinds": _coupled_by(bad),
            "batch": bad.batch,
            "alone": bad.alone_change,
            "others": bad.others_change,
            "largest": bad.largest_change,
            "flipped": bad.flipped,
            "tolerance": bad.tolerance,
        }
        return Finding("fail", Msg("shapes.batch-independence.fail", params))
    if m.batches == 0:
        return Finding("error", Msg("shapes.batch-independence.none", {}))
    params = {"batches": m.batches, "change": m.largest_change, "tolerance": m.tolerance}
    return Finding("pass", Msg("shapes.batch-independence.pass", params))


# --- shapes.permutation -------------------------------------------------------------------


@dataclass(frozen=True)
class PermutationViolation:
    batch: int
    salt: int
    permutation: tuple[int, ...]
    change: float
    tolerance: float
    moved_changed: bool = True  # a sample the permutation moves has other logits
    fixed_changed: bool = False  # a sample it leaves in place has other logits


@dataclass(frozen=True)
class PermutationMeasurement:
    counterexample: PermutationViolation | None
    batches: int
    largest_change: float
    tolerance: float
    dtype: str


def _measure_permutation(ctx: Context) -> PermutationMeasurement:
    head = _head(ctx)
    seen = {"batches": 0, "change": 0.0, "tol": 0.0}
    dtypes: set[str] = set()

    def prop(case: tuple[int, int]) -> None:
        batch, salt = case
        pool, img = _batch(ctx, batch, salt)
        perm = torch.randperm(batch, generator=ctx.generator(salt + 2000))
        if torch.equal(perm, torch.arange(batch)):
            perm = perm.roll(1)
        plain = _logits(head, pool, img)
        permuted = _logits(head, pool[perm], img[perm])
        dtypes.add(dtype_name(plain.dtype))
        tol, change = _tol(plain, permuted), _change(plain[perm], permuted)
        seen["batches"] += 1
        seen["change"], seen["tol"] = max(seen["change"], change), max(seen["tol"], tol)
        if not change <= tol:
            rows = [not _change(plain[perm][i], permuted[i]) <= tol for i in range(batch)]
            moved = [bool(perm[i] != i) for i in range(batch)]
            found = (any(r and m for r, m in zip(rows, moved, strict=True)),
                     any(r and not m for r, m in zip(rows, moved, strict=True)))  # fmt: skip
            raise Refuted(PermutationViolation(batch, salt, tuple(int(i) for i in perm), change, tol, *found))

    found = ctx.search(st.tuples(st.integers(2, 16), st.integers(0, 99)), prop, ci_examples=10, explicit=_EXPLICIT)
    return PermutationMeasurement(
        counterexample=found.error.detail if found else None,
        batches=int(seen["batches"]),
        largest_change=seen["change"],
        tolerance=seen["tol"],
        dtype=", ".join(sorted(dtypes)),
    )


def _judge_permutation(m: PermutationMeasurement) -> Finding:
    bad = m.counterexample
    if bad is not None:
        which = [("moved", bad.moved_changed), ("fixed", bad.fixed_changed)]
        params = {
            "changed": [Msg(f"shapes.permutation.{name}") for name, changed in which if changed],
            "batch": bad.batch,
            "permutation": list(bad.permutation),
            "change": bad.change,
            "tolerance": bad.tolerance,
        }
        return Finding("fail", Msg("shapes.permutation.fail", params))
    if m.batches == 0:
        return Finding("error", Msg("shapes.permutation.none", {}))
    params = {"batches": m.batches, "change": m.largest_change, "tolerance": m.tolerance}
    return Finding("pass", Msg("shapes.permutation.pass", params))


# --- shapes.dtype ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DtypeMeasurement:
    parameters: str  # the dtypes of the head's floating parameters after `.double()`
    inputs: str
    logits: str


def _measure_dtype(ctx: Context) -> DtypeMeasurement:
    head = _head(ctx).double()
    pool, img = _batch(ctx, 3, 0, torch.float64)
    logits = _logits(head, pool, img)
    params = sorted({dtype_name(p.dtype) for p in head.parameters() if p.is_floating_point()})
    return DtypeMeasurement(", ".join(params), dtype_name(pool.dtype), dtype_name(logits.dtype))


def _judge_dtype(m: DtypeMeasurement) -> Finding:
    params = {"inputs": m.inputs, "logits": m.logits, "parameters": m.parameters}
    if m.logits == m.inputs:
        return Finding("pass", Msg("shapes.dtype.pass", params))
    return Finding("fail", Msg("shapes.dtype.fail", params))


# --- shapes.bad-input ---------------------------------------------------------------------


@dataclass(frozen=True)
class BadInput:
    """One wrong input and what the head did with it."""

    case: str  # pool-2d | batch-mismatch | label-range | nan-features
    argument: tuple[str, ...]  # the forward's parameter name(s) the error should name
    outcome: str  # clear | unclear | nan-propagated | silent
    raised: str | None = None
    names_argument: bool | None = None
    output_finite: bool | None = None
    output_shape: tuple[int, ...] | None = None


@dataclass(frozen=True)
class BadInputMeasurement:
    cases: tuple[BadInput, ...]


def _parameter_names(head: Head, labels: str) -> tuple[str, str, str]:
    """The forward's names of its two feature arguments (its first two parameters), and
    ``labels``: its name of the labels parameter (``forward.labels`` after the maps)."""
    try:
        params = [
            p.name
            for p in inspect.signature(head.forward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
    except (TypeError, ValueError):
        params = []
    params += ["pool_img_features", "img_features"][len(params) :]
    return params[0], params[1], labels


def _try(case: str, argument: tuple[str, ...], head: Head, *args: Any, **kwargs: Any) -> BadInput:
    try:
        out = call_subject("forward", head, *args, **kwargs)
    except SubjectRaised as exc:  # the head's reaction to a wrong input is what is measured
        text = str(exc.exc).lower()
        named = any(a.lower() in text for a in argument)
        return BadInput(case, argument, "clear" if named else "unclear", exc.detail, named)
    values = [v for v in (out if isinstance(out, (tuple, list)) else (out,)) if isinstance(v, torch.Tensor)]
    finite = all(bool(torch.isfinite(v).all()) for v in values)
    shape = tuple(values[0].shape) if values else None
    return BadInput(case, argument, "silent" if finite else "nan-propagated", output_finite=finite, output_shape=shape)


def _measure_bad_input(ctx: Context) -> BadInputMeasurement:
    head = _head(ctx)
    pool_name, img_name, labels_name = _parameter_names(head, ctx.parameter("forward.labels"))
    pool, img = _batch(ctx, 3, 0)
    cases = [
        _try("pool-2d", (pool_name,), head, pool[:, 0], img),
        _try("batch-mismatch", (pool_name, img_name), head, pool, img[:2]),
    ]
    nan_img = img.clone()
    nan_img[1, 0] = math.nan
    cases.append(_try("nan-features", (img_name,), head, pool, nan_img))
    trained = _head(ctx, train=True)
    labels = torch.tensor([0, 1, _CLASSES])
    cases.insert(2, _try("label-range", (labels_name,), trained, pool, img, **{labels_name: labels}))
    return BadInputMeasurement(tuple(cases))


def _bad_msg(c: BadInput) -> Msg:
    params = {"argument": list(c.argument), "raised": c.raised or "", "shape": list(c.output_shape or ())}
    return Msg(f"shapes.bad-input.{c.outcome}", {**params, "case": Msg(f"shapes.bad-input.case.{c.case}")})


def _judge_bad_input(m: BadInputMeasurement) -> Finding:
    if not m.cases:
        return Finding("error", Msg("shapes.bad-input.none", {}))
    listing = [_bad_msg(c) for c in m.cases]
    outcomes = {c.outcome for c in m.cases}
    if "silent" in outcomes:
        silent = [_bad_msg(c) for c in m.cases if c.outcome == "silent"]
        return Finding("fail", Msg("shapes.bad-input.fail", {"silent": silent, "cases": listing}))
    if outcomes != {"clear"}:
        unclear = [_bad_msg(c) for c in m.cases if c.outcome != "clear"]
        clear = [_bad_msg(c) for c in m.cases if c.outcome == "clear"]
        params: dict[str, Any] = {"count": len(unclear), "total": len(m.cases), "unclear": unclear}
        if clear:
            return Finding("warn", Msg("shapes.bad-input.warn_some", {**params, "clear": clear}))
        return Finding("warn", Msg("shapes.bad-input.warn", params))
    return Finding("pass", Msg("shapes.bad-input.pass", {"cases": listing}))


ORDER = 230

CHECKS: tuple[Check[Any], ...] = (
    Check(
        id="shapes.global-3d",
        catalogue=2,
        measure=_measure_global,
        judge=_judge_global,
        severity="medium",
        headlines={
            "shapes.global-3d.case_singleton": Headline("change", "higher"),
            "shapes.global-3d.case_mean": Headline("change", "higher"),
        },
    ),
    Check(
        id="shapes.batch-independence",
        catalogue=2,
        measure=_measure_independence,
        judge=_judge_independence,
        severity="high",
        search=True,
        group="missed",
        headlines={"shapes.batch-independence.fail": Headline("largest", "higher")},
    ),
    Check(
        id="shapes.permutation",
        catalogue=2,
        measure=_measure_permutation,
        judge=_judge_permutation,
        severity="medium",
        search=True,
        headlines={"shapes.permutation.fail": Headline("change", "higher")},
    ),
    Check(
        id="shapes.dtype",
        catalogue=2,
        measure=_measure_dtype,
        judge=_judge_dtype,
        severity="low",
    ),
    Check(
        id="shapes.bad-input",
        catalogue=2,
        measure=_measure_bad_input,
        judge=_judge_bad_input,
        needs=("forward.labels",),
        severity="low",
    ),
)
