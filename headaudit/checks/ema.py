"""The momentum update of the prototype manager (claim 1.3).

The claim is that ``momentum_update(i, v)`` is the standard EMA on the unit sphere,
``p <- normalize(m * p + (1 - m) * normalize(v))``, that rows stay unit-norm, and that an
update touches only its own row. Where the manager defers updates
(``apply_momentum_updates``), the checks call it after the updates, as a caller would.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from headaudit.adapters import Head, apply_pending_updates, build_head, call_subject, expand, unit_rows
from headaudit.checks._common import fmt
from headaudit.context import Context, Refuted, refutation_outcome
from headaudit.model import Outcome, Text
from headaudit.registry import Check

__all__ = ["CHECKS"]

_MOMENTA = (0.9, 0.5, 0.99)
_NORM_TOL = 1e-4


def _small_head(ctx: Context, momentum: float, emb_dim: int = 8) -> Head:
    torch.manual_seed(ctx.seed)
    return build_head(
        ctx.subject, num_classes=2, emb_dim=emb_dim, num_prototypes=2, max_prototypes=3, momentum=momentum
    )


@torch.no_grad()
def _normalise_rows(head: Head) -> None:
    protos = head.proto_manager.prototypes
    protos.copy_(unit_rows(protos))


def _update(head: Head, row: int, value: torch.Tensor) -> None:
    call_subject("momentum_update", head.proto_manager.momentum_update, row, value)


def _row(head: Head, row: int) -> torch.Tensor:
    return head.proto_manager.prototypes[row].detach().double().clone()


def _run_standard(ctx: Context) -> Outcome:
    per_m: dict[str, dict[str, float]] = {}
    for m in _MOMENTA:
        head = _small_head(ctx, m)
        _normalise_rows(head)
        gen = ctx.generator(int(m * 1000))
        # one update on row 0
        p0 = _row(head, 0)
        v = 3.0 * torch.randn(p0.numel(), generator=gen)
        _update(head, 0, v)
        apply_pending_updates(head)
        got = _row(head, 0)
        ema = unit_rows(m * p0 + (1 - m) * unit_rows(v.double()))
        # three updates on row 1, applied once after them
        expected = _row(head, 1)
        for _ in range(3):
            vk = 3.0 * torch.randn(expected.numel(), generator=gen)
            expected = unit_rows(m * expected + (1 - m) * unit_rows(vk.double()))
            _update(head, 1, vk)
        apply_pending_updates(head)
        per_m[f"m={m}"] = {
            "one_update_distance_to_ema": float((got - ema).abs().max()),
            "one_update_distance_to_normalize_v": float((got - unit_rows(v.double())).abs().max()),
            "three_updates_distance_to_ema": float((_row(head, 1) - expected).abs().max()),
        }
    evidence = {"rows_start_unit_norm": True, "per_momentum": per_m}
    worst = max(max(d["one_update_distance_to_ema"], d["three_updates_distance_to_ema"]) for d in per_m.values())
    if worst <= 1e-5:
        return Outcome(
            "pass",
            Text(
                f"one and three updates match the closed-form EMA for m in {list(_MOMENTA)} "
                f"(largest distance {fmt(worst)})",
                f"m 取 {list(_MOMENTA)} 时，一次与三次更新都与 EMA 闭式解一致（最大距离 {fmt(worst)}）",
            ),
            evidence,
        )
    to_v = max(d["one_update_distance_to_normalize_v"] for d in per_m.values())
    if to_v <= 1e-5:
        return Outcome(
            "fail",
            Text(
                f"after one update the row equals normalize(v) whatever m is (distance {fmt(to_v)} for m in "
                f"{list(_MOMENTA)}); the previous row has weight 0, and the EMA is missed by up to {fmt(worst)}",
                f"一次更新后该行等于 normalize(v)，与 m 无关（m 取 {list(_MOMENTA)} 时距离 {fmt(to_v)}）；"
                f"旧原型的权重为 0，与 EMA 的差距最大为 {fmt(worst)}",
            ),
            evidence,
        )
    return Outcome(
        "fail",
        Text(
            f"the update differs from the closed-form EMA by up to {fmt(worst)}",
            f"更新结果与 EMA 闭式解的差距最大为 {fmt(worst)}",
        ),
        evidence,
    )


@dataclass(frozen=True)
class _Value:
    """A new value for an update: an axis vector or a seeded random one, both exact in binary."""

    axis: int | None
    scale: float
    seed: int

    def tensor(self, dim: int) -> torch.Tensor:
        if self.axis is not None:
            v = torch.zeros(dim)
            v[self.axis % dim] = self.scale
            return v
        # Entries +-2^k: scaling by a power of two is exact in floating point, so a value
        # and its negation cancel exactly wherever the subject's arithmetic lets them.
        gen = torch.Generator().manual_seed(self.seed)
        signs = torch.randint(0, 2, (dim,), generator=gen) * 2 - 1
        powers = torch.randint(-1, 2, (dim,), generator=gen)
        return self.scale * signs * torch.pow(2.0, powers.float())

    def describe(self) -> str:
        if self.axis is not None:
            return f"{self.scale:+g}·e{self.axis}"
        return f"{self.scale:g}·random±2^k(seed {self.seed})"


_values = st.one_of(
    st.builds(_Value, st.integers(0, 3), st.sampled_from([1.0, -1.0, 0.5, -2.0]), st.just(0)),
    st.builds(_Value, st.none(), st.sampled_from([1.0, 2.0**-7, 4.0]), st.integers(0, 99)),
)


def _run_unit_norm(ctx: Context) -> Outcome:
    dim = 4
    templates: dict[float, Head] = {}

    def fresh_head(momentum: float) -> Head:
        if momentum not in templates:
            templates[momentum] = _small_head(ctx, momentum, emb_dim=dim)
        return copy.deepcopy(templates[momentum])

    class Machine(RuleBasedStateMachine):
        """Random sequences of update, update-against, expand and apply on one head."""

        def __init__(self) -> None:
            super().__init__()
            ctx.examples += 1
            self.head: Head | None = None
            self.momentum = 0.0
            self.trace: list[Text] = []
            self.last: dict[int, torch.Tensor] = {}
            self.step: dict[str, object] = {}

        @initialize(momentum=st.sampled_from(_MOMENTA), axis_rows=st.booleans())
        def start(self, momentum: float, axis_rows: bool) -> None:
            self.head = fresh_head(momentum)
            self.momentum = momentum
            protos = self.head.proto_manager.prototypes
            with torch.no_grad():
                if axis_rows:
                    protos.copy_(torch.eye(dim)[torch.arange(protos.size(0)) % dim])
                else:
                    protos.copy_(unit_rows(protos))
            self.trace.append(
                Text(
                    f"head(momentum={momentum}) with {'axis-aligned' if axis_rows else 'random'} unit-norm rows",
                    f"head(momentum={momentum})，各行为{'坐标轴方向的' if axis_rows else '随机的'}单位向量",
                )
            )

        def _valid(self) -> list[int]:
            assert self.head is not None
            return [int(i) for i in torch.nonzero(self.head.proto_manager.valid_mask).flatten()]

        def _send(self, row: int, value: torch.Tensor, label: str) -> None:
            assert self.head is not None
            before = float(self.head.proto_manager.prototypes[row].detach().norm())
            _update(self.head, row, value)
            self.last[row] = value
            after = float(self.head.proto_manager.prototypes[row].detach().norm())
            self.step = {"row": row, "row_norm_before": before, "v": value.tolist(), "momentum": self.momentum}
            call = f"momentum_update(row {row}, v={label})"
            self.trace.append(
                Text(
                    f"{call}: row norm {fmt(before)} -> {fmt(after)}", f"{call}：该行范数 {fmt(before)} -> {fmt(after)}"
                )
            )

        @rule(pick=st.integers(0, 1), value=_values)
        def update(self, pick: int, value: _Value) -> None:
            rows = self._valid()
            if rows:
                self._send(rows[pick % len(rows)], value.tensor(dim), value.describe())

        @rule(pick=st.integers(0, 1), against=st.sampled_from(["previous v", "row"]))
        def update_against(self, pick: int, against: str) -> None:
            """Send -m x the previous value (cancels a cache) or -1 x the row (cancels an EMA at m=0.5)."""
            assert self.head is not None
            rows = self._valid()
            if not rows:
                return
            row = rows[pick % len(rows)]
            if against == "row" or row not in self.last:
                base, name, factor = self.head.proto_manager.prototypes[row].detach().clone(), f"row {row}", 1.0
            else:
                base, name, factor = self.last[row], "previous v", self.momentum
            self._send(row, -factor * base, f"-{factor:g}·({name})")

        @rule(class_idx=st.integers(0, 1), value=_values)
        def grow(self, class_idx: int, value: _Value) -> None:
            assert self.head is not None
            added = expand(self.head, class_idx, value.tensor(dim))
            call = f"expand(class {class_idx}, {value.describe()}) -> {added}"
            self.trace.append(Text(call, call))

        @precondition(lambda self: hasattr(getattr(self.head, "proto_manager", None), "apply_momentum_updates"))
        @rule()
        def apply(self) -> None:
            assert self.head is not None
            apply_pending_updates(self.head)
            self.last.clear()
            self.trace.append(Text("apply_momentum_updates()", "apply_momentum_updates()"))

        @invariant()
        def rows_unit_norm(self) -> None:
            if self.head is None:
                return
            rows = self._valid()
            norms = self.head.proto_manager.prototypes.detach()[rows].norm(dim=-1)
            bad = [(r, float(n)) for r, n in zip(rows, norms, strict=False) if not abs(float(n) - 1) <= _NORM_TOL]
            if bad:
                row, norm = bad[0]
                raise Refuted(
                    Text(
                        f"row {row} has norm {fmt(norm)} after: {'; '.join(t.en for t in self.trace)}",
                        f"以下操作后第 {row} 行的范数为 {fmt(norm)}：{'；'.join(t.zh for t in self.trace)}",
                    ),
                    {"row": row, "norm": norm, "steps": [t.en for t in self.trace], "last_update": dict(self.step)},
                )

    error = ctx.run_machine(Machine, ci_examples=300, steps=10)
    if error is None:
        return Outcome(
            "pass",
            Text(
                f"every valid row stayed unit-norm over {ctx.examples} generated update sequences",
                f"在 {ctx.examples} 个生成的更新序列中，所有有效行始终保持单位范数",
            ),
            {"sequences": ctx.examples, "momenta": list(_MOMENTA)},
            ctx.examples,
        )
    return refutation_outcome(error, ctx.examples)


def _run_initial_norm(ctx: Context) -> Outcome:
    from headaudit.reference.recommended import RECOMMENDED_KWARGS

    config = dict(RECOMMENDED_KWARGS)
    sizes = {k: config.pop(k) for k in ("num_classes", "emb_dim", "num_heads", "img_feat_dim")}
    per_class = {k: config.pop(k) for k in ("num_prototypes", "max_prototypes")}
    torch.manual_seed(ctx.seed)
    head = build_head(ctx.subject, **sizes, **per_class, **config)
    manager = head.proto_manager
    norms = manager.prototypes.detach()[manager.valid_mask].norm(dim=-1)
    lo, hi = float(norms.min()), float(norms.max())
    m = float(getattr(manager, "momentum", math.nan))
    evidence = {
        "config": "the original report's recommended configuration (section 4.1)",
        "valid_rows": int(norms.numel()),
        "min_norm": lo,
        "max_norm": hi,
        "mean_norm": float(norms.mean()),
        "first_step_old_row_weight": [m * lo, m * hi],
    }
    if max(abs(lo - 1), abs(hi - 1)) <= 1e-3:
        return Outcome(
            "pass",
            Text(
                f"all {norms.numel()} valid rows of a fresh head are unit-norm (norms {fmt(lo)}-{fmt(hi)})",
                f"新建头部的 {norms.numel()} 个有效行均为单位范数（范数 {fmt(lo)}-{fmt(hi)}）",
            ),
            evidence,
        )
    return Outcome(
        "fail",
        Text(
            f"a fresh head's valid rows have norms {fmt(lo)}-{fmt(hi)}, not 1, so the first EMA step weighs "
            f"the old row by {fmt(m * lo)}-{fmt(m * hi)} instead of m={fmt(m)}",
            f"新建头部的有效行范数为 {fmt(lo)}-{fmt(hi)} 而非 1，因此第一次 EMA 更新中旧原型的权重为 "
            f"{fmt(m * lo)}-{fmt(m * hi)}，而不是 m={fmt(m)}",
        ),
        evidence,
    )


def _run_isolation(ctx: Context) -> Outcome:
    head = _small_head(ctx, 0.9)
    protos = head.proto_manager.prototypes
    before = protos.detach().clone()
    row = 1
    value = torch.randn(before.size(1), generator=ctx.generator(3), requires_grad=True)
    with torch.enable_grad():
        _update(head, row, value)
        applied = apply_pending_updates(head)
    after = protos.detach()
    others = [r for r in range(before.size(0)) if r != row]
    changed = [r for r in others if not torch.equal(before[r], after[r])]
    leaf = protos.is_leaf and protos.grad_fn is None and protos.requires_grad
    protos.sum().backward()
    leaked = value.grad is not None
    evidence = {
        "updated_row": row,
        "apply_momentum_updates_called": applied,
        "own_row_changed": not torch.equal(before[row], after[row]),
        "other_rows_changed": changed,
        "prototypes_is_leaf_with_requires_grad": leaf,
        "gradient_reaches_new_value": leaked,
    }
    problems = []
    if changed:
        problems.append(Text(f"rows {changed} changed too", f"第 {changed} 行也被改变"))
    if not leaf:
        problems.append(Text("the prototypes are no longer a trainable leaf", "原型参数不再是可训练的叶子张量"))
    if leaked:
        problems.append(
            Text("the update recorded autograd history (a gradient reached v)", "更新记录了计算图（梯度传到了 v）")
        )
    if problems:
        return Outcome(
            "fail",
            Text("; ".join(p.en for p in problems), "；".join(p.zh for p in problems)),
            evidence,
        )
    return Outcome(
        "pass",
        Text(
            f"an update of row {row} left the other {before.size(0) - 1} rows unchanged and recorded no "
            "autograd history",
            f"更新第 {row} 行没有改变其余 {before.size(0) - 1} 行，也没有记录计算图",
        ),
        evidence,
    )


CHECKS: tuple[Check, ...] = (
    Check(
        id="ema.standard",
        catalogue=1,
        title=Text(
            "The momentum update is the standard EMA normalize(m*p + (1-m)*normalize(v))",
            "动量更新是标准 EMA：normalize(m*p + (1-m)*normalize(v))",
        ),
        method=Text(
            "From unit-norm rows, one update and three updates for m in 0.5, 0.9, 0.99, compared with the "
            "closed form; apply_momentum_updates() is called after the updates where it exists.",
            "从单位范数的行出发，m 取 0.5、0.9、0.99，分别做一次和三次更新并与闭式解比较；"
            "若存在 apply_momentum_updates()，在更新后调用。",
        ),
        run=_run_standard,
        needs=("proto_manager.momentum_update", "proto_manager.prototypes"),
        severity="high",
    ),
    Check(
        id="ema.unit-norm",
        catalogue=1,
        title=Text(
            "Rows stay unit-norm under any sequence of updates",
            "任意更新序列之后各行仍保持单位范数",
        ),
        method=Text(
            "A Hypothesis rule-based state machine over update, update against the row or the previous value, "
            "expand and apply, from unit-norm rows (random or axis-aligned, so cancellations are exact); "
            "new values have norm >= 1e-3; the invariant is |norm - 1| <= 1e-4 on every valid row.",
            "Hypothesis 基于规则的状态机：更新、反向更新（针对该行或上一次的值）、扩展、应用；"
            "从单位范数的行（随机或坐标轴方向，使抵消精确）出发；新值范数 >= 1e-3；"
            "不变量为每个有效行 |范数 - 1| <= 1e-4。",
        ),
        run=_run_unit_norm,
        needs=("proto_manager.momentum_update", "proto_manager.valid_mask"),
        severity="high",
    ),
    Check(
        id="ema.initial-norm",
        catalogue=1,
        title=Text(
            "Rows are unit-norm before their first update, so the first EMA step weighs the old row by m",
            "首次更新前各行即为单位范数，因此第一次 EMA 更新中旧原型的权重为 m",
        ),
        method=Text(
            "Norms of the valid rows of a fresh head built with the original report's recommended configuration.",
            "按原报告推荐配置新建头部，测量其有效行的范数。",
        ),
        run=_run_initial_norm,
        needs=("proto_manager.prototypes", "proto_manager.valid_mask"),
        severity="low",
    ),
    Check(
        id="ema.isolation",
        catalogue=1,
        title=Text(
            "An update changes only its own row and records no autograd history",
            "一次更新只改变对应的行，且不记录计算图",
        ),
        method=Text(
            "Update one row with a value that requires grad (then apply, where deferred); compare every other "
            "row bit for bit, check the prototypes stay a trainable leaf and no gradient reaches the value.",
            "用需要梯度的值更新一行（若为延迟更新则随后应用）；逐位比较其余各行，检查原型仍是可训练的叶子张量，"
            "且梯度不会传到该值。",
        ),
        run=_run_isolation,
        needs=("proto_manager.momentum_update", "proto_manager.prototypes"),
        severity="medium",
    ),
)
