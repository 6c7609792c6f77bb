"""Component contracts of the prototype manager: its layout and its expansion (CHECKS.md 3b).

``manager.layout``: a fresh head's ``valid_mask``, ``protos_per_class`` and
``get_prototype_indices()`` describe the same rows (class ``c`` owns
``[c*max_prototypes, c*max_prototypes + k_c)``, every class starting with
``num_prototypes``), and the indices follow the counts when those change.

``manager.expand``: adding a prototype writes ``normalize(v)`` into the class's next free
row, increments its count, marks the row valid, writes nothing else and returns True;
at capacity it returns False and writes nothing. A deterministic battery runs first
(fill a class, one past capacity, tiny and huge values), then a Hypothesis state machine
of expansions over generated layouts. The method is ``expand_prototype`` or
``expand_prototypes`` (the adapter). Cost (2-core CPU, one thread): about 0.3-0.45 s per
subject for both checks.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, NoReturn

import torch
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from headaudit.adapters import EXPAND_NEEDS, LAYOUT_NEEDS, Head, expand, unit_rows
from headaudit.checks._common import Layout, computed_in, dtype_name, tolerance
from headaudit.checks._contracts import build_contract_head
from headaudit.context import Context, Refuted
from headaudit.fingerprints import Headline
from headaudit.messages import Msg
from headaudit.model import Finding
from headaudit.registry import Check
from headaudit.sandbox import SubjectRaised, call_subject

__all__ = ["CHECKS", "ORDER"]

_PROTOS = "proto_manager.prototypes"
_INDICES = "proto_manager.get_prototype_indices"
_NEEDS = (*LAYOUT_NEEDS, _INDICES, _PROTOS)
_EMB = 8


@dataclass(frozen=True)
class LayoutState:
    """What the three descriptions of the rows say, and what they should say."""

    num_classes: int
    max_prototypes: int
    counts: tuple[int, ...]
    mask_rows: tuple[int, ...]
    indices: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class LayoutViolation:
    kind: str  # "shape", "initial-count", "indices", "mask"
    stage: str  # "fresh" or "counts set through the buffers"
    num_prototypes: int | None
    state: LayoutState
    expected: str
    found: str = ""


def _state(ctx: Context, head: Head) -> LayoutState:
    classes = int(ctx.get(head, "proto_manager.num_classes"))
    per_class = int(ctx.get(head, "proto_manager.max_prototypes"))
    counts = tuple(int(v) for v in ctx.get(head, "proto_manager.protos_per_class").detach().flatten().tolist())
    mask = ctx.get(head, "proto_manager.valid_mask").detach().flatten()
    raw = call_subject("get_prototype_indices", ctx.get(head, _INDICES))
    indices = tuple((int(a), int(b)) for a, b in raw)
    rows = tuple(int(i) for i in torch.nonzero(mask).flatten().tolist())
    return LayoutState(classes, per_class, counts, rows, indices)


def _agreement(state: LayoutState) -> tuple[str, str] | None:
    """The first disagreement between counts, indices and mask: (kind, what was expected)."""
    m = state.max_prototypes
    expected_indices = tuple((c * m, c * m + k) for c, k in enumerate(state.counts))
    if state.indices != expected_indices:
        return "indices", repr(list(expected_indices))
    expected_rows = tuple(c * m + j for c, k in enumerate(state.counts) for j in range(k))
    if state.mask_rows != expected_rows:
        return "mask", repr(list(expected_rows))
    return None


def _shapes(ctx: Context, head: Head, state: LayoutState) -> tuple[str, str] | None:
    """(found, expected) shapes in code notation when the tensors do not fit the layout, else None."""
    rows = state.num_classes * state.max_prototypes
    protos = ctx.get(head, _PROTOS)
    mask = ctx.get(head, "proto_manager.valid_mask")
    per = ctx.get(head, "proto_manager.protos_per_class")
    found = (list(protos.shape), list(mask.shape), dtype_name(mask.dtype), list(per.shape), len(state.indices))
    wanted = ([rows, protos.shape[-1]], [rows], "bool", [state.num_classes], state.num_classes)
    if found != wanted:
        notation = "prototypes={}, valid_mask={}:{}, protos_per_class={}, len(indices)={}"
        return notation.format(*found), notation.format(*wanted)
    return None


@dataclass(frozen=True)
class LayoutMeasurement:
    counterexample: LayoutViolation | None
    configurations: int
    recounted: int
    skipped: int  # num_prototypes above the capacity the head has (a head that fixes max_prototypes)
    refused_zero: str = ""  # what the constructor raised for num_prototypes=0 (measured through the buffers)


def _measure_layout(ctx: Context) -> LayoutMeasurement:
    seen: dict[str, Any] = {"configs": 0, "recounted": 0, "skipped": 0, "refused_zero": ""}

    def prop(case: tuple[int, int, int, int]) -> None:
        classes, per_class, wanted, salt = case
        wanted = min(wanted, per_class)
        torch.manual_seed(ctx.seed + salt)
        try:
            built = ctx.build_full(num_classes=classes, emb_dim=_EMB, num_prototypes=wanted, max_prototypes=per_class)
        except SubjectRaised as exc:
            if wanted != 0:
                raise
            # Refusing a head without prototypes is edges.zero-prototypes' subject (and what it asks
            # for); the empty class is still measured below, through counts set in the buffers.
            seen["refused_zero"] = seen["refused_zero"] or exc.detail
            return
        head = built.head
        state = _state(ctx, head)
        if wanted > state.max_prototypes:
            seen["skipped"] += 1
            return
        seen["configs"] += 1
        shape = _shapes(ctx, head, state)
        applied = "num_prototypes" in built.passed
        if shape is not None:
            raise Refuted(LayoutViolation("shape", "fresh", wanted if applied else None, state, shape[1], shape[0]))
        bad = _agreement(state)
        if bad is not None:
            raise Refuted(LayoutViolation(bad[0], "fresh", wanted if applied else None, state, bad[1]))
        if applied and state.counts != (wanted,) * classes:
            raise Refuted(LayoutViolation("initial-count", "fresh", wanted, state, repr([wanted] * classes)))
        # The counts change through the buffers (as expanding does): the indices must follow.
        gen = torch.Generator().manual_seed(ctx.seed * 31 + salt)
        counts = torch.randint(0, state.max_prototypes + 1, (classes,), generator=gen).tolist()
        with torch.no_grad():
            ctx.get(head, "proto_manager.protos_per_class").copy_(torch.tensor(counts))
            mask = torch.zeros_like(ctx.get(head, "proto_manager.valid_mask"))
            for c, k in enumerate(counts):
                mask[c * state.max_prototypes : c * state.max_prototypes + k] = True
            ctx.get(head, "proto_manager.valid_mask").copy_(mask)
        seen["recounted"] += 1
        later = _state(ctx, head)
        bad = _agreement(later)
        if bad is not None:
            raise Refuted(LayoutViolation(bad[0], "recounted", wanted if applied else None, later, bad[1]))

    strategy = st.tuples(st.integers(2, 8), st.integers(1, 6), st.integers(0, 6), st.integers(0, 99))
    explicit = [(2, 2, 1, 0), (3, 3, 0, 1), (3, 1, 1, 2), (4, 4, 2, 3)]
    found = ctx.search(strategy, prop, ci_examples=16, explicit=explicit)
    return LayoutMeasurement(
        counterexample=found.error.detail if found else None,
        configurations=seen["configs"],
        recounted=seen["recounted"],
        skipped=seen["skipped"],
        refused_zero=seen["refused_zero"],
    )


def _layout_params(state: LayoutState) -> dict[str, Any]:
    return {
        "classes": state.num_classes,
        "max_prototypes": state.max_prototypes,
        "counts": list(state.counts),
        "indices": repr([list(p) for p in state.indices]),
        "rows": list(state.mask_rows) or "-",
    }


def _judge_layout(m: LayoutMeasurement) -> Finding:
    bad = m.counterexample
    if bad is not None:
        params = {
            **_layout_params(bad.state),
            "expected": bad.expected,
            "found": bad.found or "-",
            "wanted": "-" if bad.num_prototypes is None else bad.num_prototypes,
        }
        return Finding("fail", Msg(f"manager.layout.{bad.kind}_{bad.stage}", params))
    if m.configurations == 0:
        return Finding("error", Msg("manager.layout.none", {"skipped": m.skipped}))
    params = {"configs": m.configurations, "recounted": m.recounted}
    if m.refused_zero:
        return Finding("pass", Msg("manager.layout.pass_zero_refused", {**params, "detail": m.refused_zero}))
    return Finding("pass", Msg("manager.layout.pass", params))


# --- manager.expand -----------------------------------------------------------------


@dataclass(frozen=True)
class ExpandViolation:
    # "returned", "row", "count", "mask", "other-rows", "other-counts", "other-mask", "layout", "leaf", "raised"
    kind: str
    class_idx: int
    count_before: int
    max_prototypes: int
    returned: bool
    values: dict[str, Any]  # what was found (rows, counts, errors), for the message
    steps: tuple[str, ...]
    found_by: str  # "battery" or "search"


@dataclass(frozen=True)
class ExpandMeasurement:
    counterexample: ExpandViolation | None
    battery_expansions: int
    searched_runs: int
    accepted: int
    refused: int
    largest_row_error: float
    tolerance: float
    dtype: str


def _trainable_parameter(param: Any) -> bool:
    return bool(isinstance(param, torch.nn.Parameter) and param.is_leaf and param.requires_grad)


class _Expander:
    """One head, a trace of expansions, and the contract checked after each of them."""

    def __init__(self, ctx: Context, head: Head, found_by: str, trace: list[str], stats: dict[str, float]) -> None:
        self.ctx, self.head, self.found_by, self.trace, self.stats = ctx, head, found_by, trace, stats
        self.per_class = int(ctx.get(head, "proto_manager.max_prototypes"))
        self.dtype = ctx.get(head, _PROTOS).dtype
        self.was_leaf = _trainable_parameter(ctx.get(head, _PROTOS))  # rows kept in a buffer never were

    def _snapshot(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        get = self.ctx.get
        return (
            get(self.head, _PROTOS).detach().clone(),
            get(self.head, "proto_manager.protos_per_class").detach().clone(),
            get(self.head, "proto_manager.valid_mask").detach().clone(),
        )

    def _fail(self, kind: str, c: int, k: int, returned: bool, **values: Any) -> NoReturn:
        raise Refuted(ExpandViolation(kind, c, k, self.per_class, returned, values, tuple(self.trace), self.found_by))

    def expand(self, c: int, value: torch.Tensor, label: str) -> None:
        protos, counts, mask = self._snapshot()
        k = int(counts[c])
        try:
            returned = expand(self.ctx, self.head, c, value.to(self.dtype))
        except SubjectRaised as exc:
            if k < self.per_class:  # with room to spare, a raise is the subject's failure (error)
                raise
            # At capacity the contract says what must happen (return False, write nothing):
            # raising instead is the measured behaviour there, and a caller's `if not expand(...)` breaks.
            self.trace.append(f"expand({c}, {label}) [k={k}/{self.per_class}] raised {exc.detail}")
            self._fail("raised", c, k, False, detail=exc.detail)
        self.trace.append(f"expand({c}, {label}) [k={k}/{self.per_class}] -> {returned}")
        after_p, after_c, after_m = self._snapshot()
        row = c * self.per_class + k
        room = k < self.per_class
        if returned != room:
            self._fail("returned", c, k, returned, expected=room)
        others = [r for r in range(protos.size(0)) if not (room and r == row)]
        changed = [r for r in others if not torch.equal(protos[r], after_p[r])]
        if changed:
            self._fail("other-rows", c, k, returned, rows=changed)
        other_classes = [i for i in range(counts.numel()) if not (room and i == c)]
        moved = [i for i in other_classes if int(after_c[i]) != int(counts[i])]
        if moved:
            self._fail("other-counts", c, k, returned, classes=moved)
        flipped = [r for r in others if bool(after_m[r]) != bool(mask[r])]
        if flipped:
            self._fail("other-mask", c, k, returned, rows=flipped)
        if room:
            self.stats["accepted"] += 1
            expected = unit_rows(value.double())
            error = float((after_p[row].double() - expected).abs().max())
            self.stats["row_error"] = max(self.stats["row_error"], error)
            precision = computed_in(self.ctx.get(self.head, _PROTOS))  # the rows as the subject wrote them
            tol = tolerance(precision, 1.0)
            if not error <= tol:
                self._fail("row", c, k, returned, row=row, error=error, tolerance=tol, precision=dtype_name(precision))
            if int(after_c[c]) != k + 1:
                self._fail("count", c, k, returned, count=int(after_c[c]), expected=k + 1)
            if not bool(after_m[row]):
                self._fail("mask", c, k, returned, row=row)
        else:
            self.stats["refused"] += 1
        bad = _agreement(_state(self.ctx, self.head))
        if bad is not None:
            part = {"indices": "get_prototype_indices()", "mask": "valid_mask"}[bad[0]]
            self._fail("layout", c, k, returned, part=part, expected=bad[1])
        param = self.ctx.get(self.head, _PROTOS)
        if self.was_leaf and not _trainable_parameter(param):
            self._fail("leaf", c, k, returned, found=type(param).__name__)


_values = st.one_of(
    st.tuples(st.integers(0, _EMB - 1), st.sampled_from([1.0, -3.0, 1e-3])),
    st.tuples(st.integers(0, 99), st.sampled_from([1.0, 0.01, 50.0])).map(lambda t: (t[0] + 100, t[1])),
)


def _value(code: tuple[int, float]) -> tuple[torch.Tensor, str]:
    which, scale = code
    if which < 100:
        v = torch.zeros(_EMB, dtype=torch.float64)
        v[which] = scale
        return v, f"{scale:g}*e{which}"
    v = torch.randn(_EMB, generator=torch.Generator().manual_seed(which - 100), dtype=torch.float64)
    return scale * v, f"{scale:g}*randn(seed={which - 100})"


def _fresh(ctx: Context, classes: int, per_class: int, start: int) -> tuple[Head, int]:
    """A head with ``start`` valid rows per class (at most its own capacity, which is returned)."""
    head, layout = build_contract_head(ctx, Layout(classes, per_class, (start,) * classes), 0, perturbed=False)
    return head, layout.counts[0]


def _measure_expand(ctx: Context) -> ExpandMeasurement:
    stats: dict[str, float] = {"accepted": 0, "refused": 0, "row_error": 0.0}
    template, _ = _fresh(ctx, 3, 3, 1)
    dtype = ctx.get(template, _PROTOS).dtype
    per_class = int(ctx.get(template, "proto_manager.max_prototypes"))
    battery = 0
    try:
        trace: list[str] = [f"head(num_classes=3, max_prototypes={per_class}); counts [1, 1, 1]"]
        run = _Expander(ctx, copy.deepcopy(template), "battery", trace, stats)
        plan = [(0, (100, 1.0))] * (per_class + 1) + [(2, (1, 1e-3)), (2, (105, 50.0)), (1, (3, -3.0))]
        plan += [(2, (106, 1.0))] * per_class
        for c, code in plan:
            value, label = _value(code)
            run.expand(c, value, label)
            battery += 1
    except Refuted as exc:
        ctx.count_explicit(battery + 1, found=True)
        return ExpandMeasurement(
            exc.detail,
            battery + 1,
            0,
            int(stats["accepted"]),
            int(stats["refused"]),
            stats["row_error"],
            tolerance(dtype, 1.0),
            dtype_name(dtype),
        )
    ctx.count_explicit(battery, found=False)

    class Machine(RuleBasedStateMachine):
        """Expansions of generated classes with generated values on a generated layout."""

        def __init__(self) -> None:
            super().__init__()
            ctx.count_run()
            self.run: _Expander | None = None

        @initialize(classes=st.integers(2, 4), per_class=st.integers(1, 4), start=st.integers(0, 4))
        def start(self, classes: int, per_class: int, start: int) -> None:
            head, valid = _fresh(ctx, classes, per_class, start)
            cap = int(ctx.get(head, "proto_manager.max_prototypes"))
            trace = [f"head(num_classes={classes}, max_prototypes={cap}); counts {[valid] * classes}"]
            self.run = _Expander(ctx, head, "search", trace, stats)

        @rule(class_idx=st.integers(0, 3), value=_values)
        def grow(self, class_idx: int, value: tuple[int, float]) -> None:
            assert self.run is not None
            classes = int(ctx.get(self.run.head, "proto_manager.num_classes"))
            tensor, label = _value(value)
            try:
                self.run.expand(class_idx % classes, tensor, label)
            except Refuted:
                ctx.count_run(failed=True)
                raise

        @invariant()
        def nothing(self) -> None:  # the contract is checked inside each rule
            return None

    error = ctx.run_machine(Machine, ci_examples=25, steps=8)
    return ExpandMeasurement(
        counterexample=error.detail if error else None,
        battery_expansions=battery,
        searched_runs=ctx.stats.examples - battery,
        accepted=int(stats["accepted"]),
        refused=int(stats["refused"]),
        largest_row_error=stats["row_error"],
        tolerance=tolerance(dtype, 1.0),
        dtype=dtype_name(dtype),
    )


def _judge_expand(m: ExpandMeasurement) -> Finding:
    bad = m.counterexample
    if bad is not None:
        params = {
            "class_idx": bad.class_idx,
            "k": bad.count_before,
            "max": bad.max_prototypes,
            "returned": bad.returned,
            "steps": "; ".join(bad.steps),
            **bad.values,
        }
        return Finding("fail", Msg(f"manager.expand.{bad.kind}", params))
    if m.accepted == 0 or m.refused == 0:
        return Finding("error", Msg("manager.expand.unexercised", {"accepted": m.accepted, "refused": m.refused}))
    return Finding(
        "pass",
        Msg(
            "manager.expand.pass",
            {
                "accepted": m.accepted,
                "refused": m.refused,
                "runs": m.searched_runs,
                "error": m.largest_row_error,
                "tolerance": m.tolerance,
            },
        ),
    )


ORDER = 370

CHECKS: tuple[Check[Any], ...] = (
    Check(
        id="manager.layout",
        catalogue=3,
        measure=_measure_layout,
        judge=_judge_layout,
        needs=_NEEDS,
        severity="high",
        search=True,
        group="contracts",
    ),
    Check(
        id="manager.expand",
        catalogue=3,
        measure=_measure_expand,
        judge=_judge_expand,
        needs=(*_NEEDS, *EXPAND_NEEDS),
        severity="high",
        search=True,
        group="contracts",
        headlines={"manager.expand.row": Headline("error", "higher")},
    ),
)
