"""The momentum update of the prototype manager (claim 1.3).

The claim is that ``momentum_update(i, v)`` is the standard EMA on the unit sphere,
``p <- normalize(m * p + (1 - m) * normalize(v))``, that rows stay unit-norm, and that an
update touches only its own row. Where the manager defers updates
(``apply_momentum_updates``), the checks call it after the updates, as a caller would.
Every head is built with the momentum under test and the momentum is read back from
``proto_manager.momentum``: a head that ignores the keyword is ``n/a``, never measured
at another momentum.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from headaudit.adapters import APPLY_NEEDS, EXPAND_NEEDS, Head, apply_pending_updates, expand, unit_rows
from headaudit.build import SettingNotApplied
from headaudit.checks._common import dtype_name, tolerance
from headaudit.context import Context, Refuted
from headaudit.fingerprints import Headline
from headaudit.messages import Msg
from headaudit.model import Finding
from headaudit.registry import Check
from headaudit.sandbox import SubjectRaised, call_subject

__all__ = ["CHECKS", "MOMENTA", "ORDER"]

#: Momenta every EMA check tries; those the head refuses (raises, or reads back
#: differently) are skipped and named in the evidence.
MOMENTA = (0.5, 0.9, 0.99, 0.1)
_DIM = 4
_UPDATE = "proto_manager.momentum_update"
_PROTOS = "proto_manager.prototypes"
_MOMENTUM = "proto_manager.momentum"


def _head(ctx: Context, momentum: float, emb_dim: int = 8) -> Head:
    torch.manual_seed(ctx.seed)
    return ctx.build(num_classes=2, emb_dim=emb_dim, num_prototypes=2, max_prototypes=3, momentum=momentum)


def _heads(ctx: Context, emb_dim: int = 8) -> tuple[dict[float, Head], dict[str, str]]:
    """A head per momentum the subject allows; the constructor's refusals (m -> message).

    A momentum the constructor rejects (raises) is skipped and named; a momentum it
    accepts but ignores (reads back differently) makes the check n/a: the update could
    not be measured at the momentum claimed.
    """
    heads: dict[float, Head] = {}
    refused: dict[str, str] = {}
    for m in MOMENTA:
        try:
            heads[m] = _head(ctx, m, emb_dim)
        except SubjectRaised as exc:
            refused[f"m={m}"] = exc.detail
    if not heads:
        raise SettingNotApplied("momentum", list(MOMENTA), None, "refused-all", "; ".join(refused.values()))
    return heads, refused


@torch.no_grad()
def _set_rows(ctx: Context, head: Head, rows: torch.Tensor) -> None:
    protos = ctx.get(head, _PROTOS)
    protos.copy_(rows.to(protos.dtype))


def _update(ctx: Context, head: Head, row: int, value: torch.Tensor) -> None:
    call_subject("momentum_update", ctx.get(head, _UPDATE), row, value)


def _row(ctx: Context, head: Head, row: int) -> torch.Tensor:
    return ctx.get(head, _PROTOS)[row].detach().double().clone()


# --- ema.standard ------------------------------------------------------------------


@dataclass(frozen=True)
class StandardAtMomentum:
    momentum: float  # as read back from the built head
    one_update_distance_to_ema: float
    one_update_distance_to_normalize_v: float
    three_updates_distance_to_ema: float
    tolerance: float
    applied_deferred: bool


@dataclass(frozen=True)
class StandardMeasurement:
    per_momentum: tuple[StandardAtMomentum, ...]
    refused: dict[str, str]
    dtype: str


def _measure_standard(ctx: Context) -> StandardMeasurement:
    heads, refused = _heads(ctx)
    out = []
    dtype = torch.float32
    for m, head in heads.items():
        protos = ctx.get(head, _PROTOS)
        dtype = protos.dtype
        _set_rows(ctx, head, unit_rows(protos.detach().double()))
        gen = ctx.generator(int(m * 1000))
        p0 = _row(ctx, head, 0)
        v = 3.0 * torch.randn(p0.numel(), generator=gen)
        _update(ctx, head, 0, v.to(dtype))
        applied = apply_pending_updates(ctx, head)
        got = _row(ctx, head, 0)
        ema = unit_rows(m * p0 + (1 - m) * unit_rows(v.double()))
        expected = _row(ctx, head, 1)
        for _ in range(3):
            vk = 3.0 * torch.randn(expected.numel(), generator=gen)
            expected = unit_rows(m * expected + (1 - m) * unit_rows(vk.double()))
            _update(ctx, head, 1, vk.to(dtype))
        apply_pending_updates(ctx, head)
        out.append(
            StandardAtMomentum(
                momentum=float(ctx.get(head, _MOMENTUM)),
                one_update_distance_to_ema=float((got - ema).abs().max()),
                one_update_distance_to_normalize_v=float((got - unit_rows(v.double())).abs().max()),
                three_updates_distance_to_ema=float((_row(ctx, head, 1) - expected).abs().max()),
                tolerance=tolerance(ctx.get(head, _PROTOS), 1.0),  # the rows as the updates wrote them
                applied_deferred=applied,
            )
        )
    return StandardMeasurement(tuple(out), refused, dtype_name(dtype))


def _judge_standard(m: StandardMeasurement) -> Finding:
    momenta = [r.momentum for r in m.per_momentum]
    worst = max(max(r.one_update_distance_to_ema, r.three_updates_distance_to_ema) for r in m.per_momentum)
    tol = max(r.tolerance for r in m.per_momentum)
    if worst <= tol:
        return Finding("pass", Msg("ema.standard.pass", {"momenta": momenta, "distance": worst, "tolerance": tol}))
    after = [  # which sequences miss the EMA, one finding each: a defect that needs three updates is another
        Msg(f"ema.standard.{name}")
        for name, missed in (
            ("one_update", any(not r.one_update_distance_to_ema <= r.tolerance for r in m.per_momentum)),
            ("three_updates", any(not r.three_updates_distance_to_ema <= r.tolerance for r in m.per_momentum)),
        )
        if missed
    ]
    to_v = max(r.one_update_distance_to_normalize_v for r in m.per_momentum)
    if to_v <= tol and len(m.per_momentum) > 1:
        params = {"momenta": momenta, "to_v": to_v, "distance": worst, "after": after}
        return Finding("fail", Msg("ema.standard.fail_weight_zero", params))
    params = {"momenta": momenta, "distance": worst, "tolerance": tol, "after": after}
    return Finding("fail", Msg("ema.standard.fail", params))


# --- ema.unit-norm -----------------------------------------------------------------


@dataclass(frozen=True)
class NormViolation:
    row: int
    norm: float
    momentum: float
    steps: tuple[str, ...]
    found_by: str  # "battery" or "search"
    #: the kind of sequence, number-free: the battery's family (``v1=-row; v2=-c*v1``) or
    #: the search's rules in order of first use (``update, update against row, apply``)
    sequence: str = ""


@dataclass(frozen=True)
class UnitNormMeasurement:
    counterexample: NormViolation | None
    battery_sequences: int
    searched_sequences: int
    momenta: tuple[float, ...]
    refused: dict[str, str]
    tolerance: float


def _axis_rows(rows: int) -> torch.Tensor:
    return torch.eye(_DIM, dtype=torch.float64)[torch.arange(rows) % _DIM]


class _Run:
    """One sequence of operations on one head, with a readable trace."""

    def __init__(self, ctx: Context, head: Head, momentum: float) -> None:
        self.ctx, self.head, self.momentum = ctx, head, momentum
        self.trace: list[str] = []
        self.rules: list[str] = []  # the kinds of operation, in order of first use
        self.family = ""  # the battery's cancellation family, where this is one
        self.last: dict[int, torch.Tensor] = {}

    def did(self, rule: str) -> None:
        if rule not in self.rules:
            self.rules.append(rule)

    def valid(self) -> list[int]:
        mask = self.ctx.get(self.head, "proto_manager.valid_mask")
        return [int(i) for i in torch.nonzero(mask).flatten()]

    def row(self, index: int) -> torch.Tensor:
        return self.ctx.get(self.head, _PROTOS)[index].detach().clone()

    def send(self, index: int, value: torch.Tensor, label: str) -> None:
        before = float(self.row(index).norm())
        _update(self.ctx, self.head, index, value)
        self.last[index] = value
        after = float(self.row(index).norm())
        self.trace.append(f"momentum_update({index}, v={label}) |p| {before:.4g} -> {after:.4g}")

    def apply(self) -> None:
        if apply_pending_updates(self.ctx, self.head):
            self.last.clear()
            self.trace.append("apply_momentum_updates()")
            self.did("apply")

    def check(self, found_by: str, tol: float) -> None:
        rows = self.valid()
        norms = self.ctx.get(self.head, _PROTOS).detach()[rows].double().norm(dim=-1)
        for r, n in zip(rows, norms.tolist(), strict=True):
            if not abs(n - 1) <= tol:
                sequence = self.family or ", ".join(self.rules)
                raise Refuted(NormViolation(r, n, self.momentum, tuple(self.trace), found_by, sequence))


def _battery(ctx: Context, templates: dict[float, Head], tol: float, counter: list[int]) -> None:
    """The cancellation families of linear momentum updates, at every momentum allowed.

    From exact unit rows (axis vectors), a first value ``v1`` (opposite to the row, or an
    orthogonal axis), then optionally ``v2 = -c * v1`` or ``-c * row`` for ``c`` in
    ``1, m, 1-m, m/(1-m), (1-m)/m``, then apply where deferred. Scaled copies are
    computed by the same tensor arithmetic a subject uses, so cancellations are exact.
    """
    for m, template in templates.items():
        factors = sorted({1.0, m, 1 - m, m / (1 - m) if m < 1 else 1.0, (1 - m) / m if m > 0 else 1.0})
        for first, second, factor in itertools.product(("-row", "axis"), (None, "-c*v1", "-c*row"), factors):
            if second is None and factor != factors[0]:
                continue
            run = _Run(ctx, copy.deepcopy(template), m)
            _set_rows(ctx, run.head, _axis_rows(ctx.get(run.head, _PROTOS).size(0)))
            run.trace.append(f"head(momentum={m}), rows=axes")
            v2 = {None: "", "-c*v1": "; v2=-c*v1", "-c*row": "; v2=-c*row"}[second]
            run.family = f"v1={'-row' if first == '-row' else 'axis'}{v2}"
            index = run.valid()[0]
            row = run.row(index)
            v1 = -row if first == "-row" else torch.roll(row, 1)
            run.send(index, v1, "-row" if first == "-row" else "axis⊥row")
            if second == "-c*v1":
                run.send(index, -factor * v1, f"-{factor:g}*v1")
            elif second == "-c*row":
                run.send(index, -factor * run.row(index), f"-{factor:g}*row")
            run.apply()
            counter[0] += 1
            run.check("battery", tol)


_values = st.one_of(
    st.tuples(st.integers(0, _DIM - 1), st.sampled_from([1.0, -1.0, 0.5, -2.0])),
    st.tuples(st.integers(0, 99), st.sampled_from([1.0, 2.0**-7, 4.0])).map(lambda t: (t[0] + 100, t[1])),
)


def _value(code: tuple[int, float]) -> tuple[torch.Tensor, str]:
    """An axis vector, or a seeded vector of +-2^k entries (exact under power-of-two scaling)."""
    which, scale = code
    if which < 100:
        v = torch.zeros(_DIM)
        v[which] = scale
        return v, f"{scale:+g}*e{which}"
    gen = torch.Generator().manual_seed(which - 100)
    signs = torch.randint(0, 2, (_DIM,), generator=gen) * 2 - 1
    powers = torch.randint(-1, 2, (_DIM,), generator=gen)
    return scale * signs * torch.pow(2.0, powers.float()), f"{scale:g}*rand2^k(seed={which - 100})"


def _measure_unit_norm(ctx: Context) -> UnitNormMeasurement:
    templates, refused = _heads(ctx, emb_dim=_DIM)
    protos = ctx.get(next(iter(templates.values())), _PROTOS)
    tol = tolerance(protos, 1.0, ulps=1024.0)
    counter = [0]
    try:
        _battery(ctx, templates, tol, counter)
    except Refuted as exc:
        ctx.count_explicit(counter[0], found=True)
        return UnitNormMeasurement(exc.detail, counter[0], 0, tuple(templates), refused, tol)
    battery = counter[0]
    ctx.count_explicit(battery, found=False)
    momenta = sorted(templates)
    can_apply = ctx.has("proto_manager.apply_momentum_updates")
    can_grow = any(ctx.has(n) for n in ("proto_manager.expand_prototype", "proto_manager.expand_prototypes"))

    class Machine(RuleBasedStateMachine):
        """Random sequences of update, update-against, expand and apply on one head."""

        def __init__(self) -> None:
            super().__init__()
            ctx.count_run()
            self.run: _Run | None = None

        @initialize(momentum=st.sampled_from(momenta), axis_rows=st.booleans())
        def start(self, momentum: float, axis_rows: bool) -> None:
            self.run = _Run(ctx, copy.deepcopy(templates[momentum]), momentum)
            current = ctx.get(self.run.head, _PROTOS).detach().double()
            _set_rows(ctx, self.run.head, _axis_rows(current.size(0)) if axis_rows else unit_rows(current))
            kind = "axes" if axis_rows else "random unit"
            self.run.trace.append(f"head(momentum={momentum}), rows={kind}")

        @rule(pick=st.integers(0, 1), value=_values)
        def update(self, pick: int, value: tuple[int, float]) -> None:
            assert self.run is not None
            rows = self.run.valid()
            if rows:
                tensor, label = _value(value)
                self.run.send(rows[pick % len(rows)], tensor, label)
                self.run.did("update")

        @rule(pick=st.integers(0, 1), against=st.sampled_from(["previous v", "row"]), which=st.integers(0, 4))
        def update_against(self, pick: int, against: str, which: int) -> None:
            """Send -c x the previous value or the row, c in 1, m, 1-m, m/(1-m), (1-m)/m."""
            assert self.run is not None
            rows = self.run.valid()
            if not rows:
                return
            index = rows[pick % len(rows)]
            m = self.run.momentum
            factor = (1.0, m, 1 - m, m / (1 - m) if m < 1 else 1.0, (1 - m) / m if m > 0 else 1.0)[which]
            base = self.run.last.get(index) if against == "previous v" else None
            name = "previous v" if base is not None else "row"
            base = base if base is not None else self.run.row(index)
            self.run.send(index, -factor * base, f"-{factor:g}*({name})")
            self.run.did(f"update against {name}")

        @precondition(lambda self: can_grow)
        @rule(class_idx=st.integers(0, 1), value=_values)
        def grow(self, class_idx: int, value: tuple[int, float]) -> None:
            assert self.run is not None
            tensor, label = _value(value)
            added = expand(ctx, self.run.head, class_idx, tensor)
            self.run.trace.append(f"expand({class_idx}, {label}) -> {added}")
            self.run.did("expand")

        @precondition(lambda self: can_apply)
        @rule()
        def apply(self) -> None:
            assert self.run is not None
            self.run.apply()

        @invariant()
        def rows_unit_norm(self) -> None:
            if self.run is not None:
                try:
                    self.run.check("search", tol)
                except Refuted:
                    ctx.count_run(failed=True)
                    raise

    error = ctx.run_machine(Machine, ci_examples=200, steps=8)
    return UnitNormMeasurement(
        counterexample=error.detail if error else None,
        battery_sequences=battery,
        searched_sequences=ctx.stats.examples - battery,
        momenta=tuple(momenta),
        refused=refused,
        tolerance=tol,
    )


def _norm_problem(norm: float, tol: float) -> str:
    """What kind of wrong norm: non-finite, collapsed to zero (as close to 0 as a unit row
    must be to 1), or finite and off 1."""
    if not math.isfinite(norm):
        return "nonfinite"
    return "zero" if norm <= tol else "off"


def _judge_unit_norm(m: UnitNormMeasurement) -> Finding:
    bad = m.counterexample
    if bad is not None:
        params = {
            "row": bad.row,
            "norm": bad.norm,
            "momentum": bad.momentum,
            "steps": "; ".join(bad.steps),
            "problem": Msg(f"ema.unit-norm.{_norm_problem(bad.norm, m.tolerance)}"),
            "sequence": Msg(f"ema.unit-norm.{bad.found_by}", {"kind": bad.sequence}),
        }
        return Finding("fail", Msg("ema.unit-norm.fail", params))
    return Finding(
        "pass",
        Msg(
            "ema.unit-norm.pass",
            {"battery": m.battery_sequences, "searched": m.searched_sequences, "momenta": list(m.momenta)},
        ),
    )


# --- ema.initial-norm --------------------------------------------------------------


@dataclass(frozen=True)
class InitialNormMeasurement:
    valid_rows: int
    min_norm: float
    max_norm: float
    mean_norm: float
    tolerance: float
    momentum: float | None
    first_update_old_row_weight: float | None  # measured on a fresh row, orthogonal value


def _measure_initial_norm(ctx: Context) -> InitialNormMeasurement:
    from headaudit.reference.recommended import RECOMMENDED_KWARGS

    config = dict(RECOMMENDED_KWARGS)
    sizes = {k: config.pop(k) for k in ("num_classes", "emb_dim", "num_heads", "img_feat_dim")}
    torch.manual_seed(ctx.seed)
    head = ctx.build(**sizes, **config)
    protos = ctx.get(head, _PROTOS).detach()
    valid = ctx.get(head, "proto_manager.valid_mask")
    norms = protos[valid].double().norm(dim=-1)
    weight = momentum = None
    if ctx.has(_UPDATE) and ctx.has(_MOMENTUM) and norms.numel():
        momentum = float(ctx.get(head, _MOMENTUM))
        index = int(torch.nonzero(valid).flatten()[0])
        p = protos[index].double()
        v = torch.randn(p.numel(), generator=ctx.generator(5), dtype=torch.float64)
        v = v - (v @ p) / (p @ p) * p  # orthogonal to the row, so the two parts separate
        _update(ctx, head, index, v.to(protos.dtype))
        apply_pending_updates(ctx, head)
        new = _row(ctx, head, index)
        along_p, along_v = float(new @ (p / p.norm())), float(new @ (v / v.norm()))
        weight = along_p / (along_p + along_v) if along_p + along_v else math.nan
    return InitialNormMeasurement(
        valid_rows=int(norms.numel()),
        min_norm=float(norms.min()) if norms.numel() else math.nan,
        max_norm=float(norms.max()) if norms.numel() else math.nan,
        mean_norm=float(norms.mean()) if norms.numel() else math.nan,
        tolerance=tolerance(protos, 1.0, ulps=1024.0),
        momentum=momentum,
        first_update_old_row_weight=weight,
    )


def _judge_initial_norm(m: InitialNormMeasurement) -> Finding:
    if m.valid_rows == 0:
        return Finding("error", Msg("ema.initial-norm.no_rows", {}))
    params: dict[str, Any] = {"rows": m.valid_rows, "low": m.min_norm, "high": m.max_norm}
    unit = max(abs(m.min_norm - 1), abs(m.max_norm - 1)) <= m.tolerance
    weight = m.first_update_old_row_weight
    if weight is not None:
        params.update(weight=weight, momentum=m.momentum)
        suffix = "_weight"
    else:
        suffix = ""
    if unit:
        return Finding("pass", Msg(f"ema.initial-norm.pass{suffix}", params))
    if weight is not None and m.momentum is not None and abs(weight - m.momentum) <= m.tolerance:
        # The update normalises the old row itself: the norms are off, their consequence absent.
        return Finding("warn", Msg("ema.initial-norm.warn_weight", params))
    off = [  # which way the rows are off 1, one finding each
        Msg(f"ema.initial-norm.{name}")
        for name, found in (("below", not m.min_norm >= 1 - m.tolerance), ("above", not m.max_norm <= 1 + m.tolerance))
        if found
    ]
    return Finding("fail", Msg(f"ema.initial-norm.fail{suffix}", {**params, "off": off}))


# --- ema.isolation -----------------------------------------------------------------


@dataclass(frozen=True)
class IsolationMeasurement:
    updated_row: int
    applied_deferred: bool
    own_row_change: float
    other_rows_changed: tuple[int, ...]
    prototypes_trainable_leaf: bool  # still a trainable leaf (or never was one: a buffer)
    gradient_reaches_value: bool


def _trainable_leaf(protos: torch.Tensor) -> bool:
    return bool(protos.is_leaf and protos.grad_fn is None and protos.requires_grad)


def _measure_isolation(ctx: Context) -> IsolationMeasurement:
    torch.manual_seed(ctx.seed)
    head = ctx.build(num_classes=2, emb_dim=8, num_prototypes=2, max_prototypes=3)
    protos = ctx.get(head, _PROTOS)
    _set_rows(ctx, head, unit_rows(protos.detach().double()))
    before = protos.detach().clone()
    was_leaf = _trainable_leaf(protos)  # a manager may keep its rows in a buffer: then there is nothing to keep
    row = 1
    value = torch.randn(before.size(1), generator=ctx.generator(3), dtype=torch.float64).to(before.dtype)
    value = (value - (value @ before[row]) * before[row]).requires_grad_(True)  # not parallel to the row
    with torch.enable_grad():
        _update(ctx, head, row, value)
        applied = apply_pending_updates(ctx, head)
    protos = ctx.get(head, _PROTOS)
    after = protos.detach()
    changed = tuple(r for r in range(before.size(0)) if r != row and not torch.equal(before[r], after[r]))
    leaf = _trainable_leaf(protos) or not was_leaf
    if protos.requires_grad:
        protos.sum().backward()
    return IsolationMeasurement(
        updated_row=row,
        applied_deferred=applied,
        own_row_change=float((after[row] - before[row]).abs().max()),
        other_rows_changed=changed,
        prototypes_trainable_leaf=leaf,
        gradient_reaches_value=value.grad is not None,
    )


def _judge_isolation(m: IsolationMeasurement) -> Finding:
    problems = []
    if m.own_row_change == 0.0:
        problems.append(Msg("ema.isolation.own_unchanged", {"row": m.updated_row}))
    if m.other_rows_changed:
        problems.append(Msg("ema.isolation.others_changed", {"rows": list(m.other_rows_changed)}))
    if not m.prototypes_trainable_leaf:
        problems.append(Msg("ema.isolation.not_leaf", {}))
    if m.gradient_reaches_value:
        problems.append(Msg("ema.isolation.history", {}))
    if problems:
        return Finding("fail", Msg("ema.isolation.fail", {"problems": problems}))
    return Finding("pass", Msg("ema.isolation.pass", {"row": m.updated_row, "change": m.own_row_change}))


_CORE = (_UPDATE, _PROTOS, _MOMENTUM, *APPLY_NEEDS)

ORDER = 130

CHECKS: tuple[Check[Any], ...] = (
    Check(
        id="ema.standard",
        catalogue=1,
        measure=_measure_standard,
        judge=_judge_standard,
        needs=_CORE,
        settings=("momentum",),
        severity="high",
        headlines={
            "ema.standard.fail": Headline("distance", "higher"),
            "ema.standard.fail_weight_zero": Headline("distance", "higher"),
        },
    ),
    Check(
        id="ema.unit-norm",
        catalogue=1,
        measure=_measure_unit_norm,
        judge=_judge_unit_norm,
        needs=(*_CORE, "proto_manager.valid_mask", *("?" + n for n in EXPAND_NEEDS)),
        settings=("momentum",),
        severity="high",
        search=True,
    ),
    Check(
        id="ema.initial-norm",
        catalogue=1,
        measure=_measure_initial_norm,
        judge=_judge_initial_norm,
        needs=(_PROTOS, "proto_manager.valid_mask", f"?{_UPDATE}", f"?{_MOMENTUM}", *APPLY_NEEDS),
        severity="low",
    ),
    Check(
        id="ema.isolation",
        catalogue=1,
        measure=_measure_isolation,
        judge=_judge_isolation,
        needs=(_UPDATE, _PROTOS, *APPLY_NEEDS),
        severity="medium",
    ),
)
