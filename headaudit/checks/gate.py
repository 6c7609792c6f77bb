"""The fusion gate of the mixed attention block (claim 1.2).

Forward hooks capture the three branch outputs (``norm1``, ``norm2``, ``norm3`` of
``mixed_attn``) and the block output; per prototype token we solve, by least
squares, for the weights that best rebuild the output from the three branches. A
true three-way fusion leaves no residual; a gate that mixes in anything else does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import strategies as st
from torch import nn

from headaudit.adapters import Head, build_head, call_subject
from headaudit.checks._common import fmt
from headaudit.context import Context
from headaudit.model import Outcome, Text
from headaudit.registry import Check

__all__ = ["CHECKS", "FusionFit", "fit_fusion"]

_RESIDUAL_TOL = 1e-4
_SUM_TOL = 1e-4


@dataclass(frozen=True)
class FusionFit:
    """Least-squares weights of the block output on its three branches, over all tokens."""

    max_residual: float  # largest per-token ||A w - y|| / ||y||
    min_weight: float
    max_sum_deviation: float  # largest |w0 + w1 + w2 - 1|
    gate_softmax_sum_deviation: float | None  # from the gate's own 3-wide output, if any
    gate_vs_fit: float | None  # largest |softmax(gate) - w|, if the gate is 3-wide
    tokens: int


def _capture(head: Head, pool: torch.Tensor, img: torch.Tensor) -> dict[str, torch.Tensor]:
    block = head.mixed_attn
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str):  # type: ignore[no-untyped-def]
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            seen[name] = (output[0] if isinstance(output, tuple) else output).detach()

        return hook

    handles = [getattr(block, n).register_forward_hook(keep(n)) for n in ("norm1", "norm2", "norm3")]
    handles.append(block.register_forward_hook(keep("out")))
    gate = getattr(block, "gate", None)
    if isinstance(gate, nn.Module):
        handles.append(gate.register_forward_hook(keep("gate")))
    try:
        with torch.no_grad():
            call_subject("forward", head, pool, img)
    finally:
        for h in handles:
            h.remove()
    return seen


def fit_fusion(ctx: Context, seed: int, num_classes: int, batch: int) -> FusionFit:
    """Build a seeded head, run one eval forward, and fit the output on its branches."""
    torch.manual_seed(ctx.seed * 7919 + seed)
    head = build_head(ctx.subject, num_classes=num_classes, emb_dim=16, num_heads=2, num_prototypes=2, max_prototypes=3)
    gen = ctx.generator(seed)
    pool = torch.randn(batch, 4, 16, generator=gen)
    img = torch.randn(batch, 16, generator=gen)
    seen = _capture(head, pool, img)
    branches = torch.stack([seen["norm1"], seen["norm2"], seen["norm3"]], dim=-1).double()  # (1, P, E, 3)
    out = seen["out"].double()  # (1, P, E)
    a = branches.reshape(-1, branches.size(-2), 3)
    y = out.reshape(-1, out.size(-1), 1)
    w = torch.linalg.lstsq(a, y).solution  # (T, 3, 1)
    residual = ((a @ w - y).norm(dim=(1, 2)) / y.norm(dim=(1, 2)).clamp_min(1e-12)).max()
    w = w.squeeze(-1)
    gate_sum = gate_fit = None
    gate_out = seen.get("gate")
    if gate_out is not None and gate_out.size(-1) == 3:
        soft = torch.softmax(gate_out.double().reshape(-1, 3), dim=-1)
        gate_sum = float((soft.sum(-1) - 1).abs().max())
        gate_fit = float((soft - w).abs().max())
    return FusionFit(
        max_residual=float(residual),
        min_weight=float(w.min()),
        max_sum_deviation=float((w.sum(-1) - 1).abs().max()),
        gate_softmax_sum_deviation=gate_sum,
        gate_vs_fit=gate_fit,
        tokens=w.size(0),
    )


def _fits(ctx: Context) -> list[tuple[dict[str, int], FusionFit]]:
    """Fits over generated configurations (the search only enumerates; nothing is refuted)."""
    fits: list[tuple[dict[str, int], FusionFit]] = []

    def record(case: tuple[int, int, int]) -> None:
        seed, num_classes, batch = case
        fits.append(({"seed": seed, "num_classes": num_classes, "batch": batch}, fit_fusion(ctx, *case)))

    found = ctx.search(st.tuples(st.integers(0, 99), st.integers(2, 8), st.integers(1, 16)), record, ci_examples=6)
    if found is not None:  # the subject raised on a plain forward: nothing to measure
        raise found.error
    return fits


def _summary_evidence(fits: list[tuple[dict[str, int], FusionFit]]) -> dict[str, object]:
    worst = max(fits, key=lambda cf: cf[1].max_residual)
    return {
        "configs": len(fits),
        "tokens": sum(f.tokens for _, f in fits),
        "max_relative_residual": max(f.max_residual for _, f in fits),
        "min_weight": min(f.min_weight for _, f in fits),
        "max_sum_deviation": max(f.max_sum_deviation for _, f in fits),
        "worst_config": worst[0],
    }


def _run_convex(ctx: Context) -> Outcome:
    fits = _fits(ctx)
    ev = _summary_evidence(fits)
    residual, min_w = float(ev["max_relative_residual"]), float(ev["min_weight"])  # type: ignore[arg-type]
    if residual > _RESIDUAL_TOL:
        return Outcome(
            "fail",
            Text(
                f"the output leaves the span of cross_out, self_out and third_out: the best per-token "
                f"weights leave a relative residual of up to {fmt(residual)} (over {ev['tokens']} tokens)",
                f"输出不在 cross_out、self_out、third_out 张成的空间内：逐 token 最优权重的相对残差最高达 "
                f"{fmt(residual)}（共 {ev['tokens']} 个 token）",
            ),
            ev,
            ctx.examples,
        )
    if min_w < -_RESIDUAL_TOL:
        return Outcome(
            "fail",
            Text(
                f"the output is a combination of the three branches but not a mix: a weight is {fmt(min_w)}",
                f"输出是三路分支的线性组合但不是混合：有权重为 {fmt(min_w)}",
            ),
            ev,
            ctx.examples,
        )
    return Outcome(
        "pass",
        Text(
            f"the output is rebuilt from the three branches alone (largest relative residual {fmt(residual)}, "
            f"smallest weight {fmt(min_w)}, over {ev['tokens']} tokens)",
            f"仅用三路分支即可重建输出（最大相对残差 {fmt(residual)}，最小权重 {fmt(min_w)}，"
            f"共 {ev['tokens']} 个 token）",
        ),
        ev,
        ctx.examples,
    )


def _run_sum(ctx: Context) -> Outcome:
    fits = _fits(ctx)
    ev = _summary_evidence(fits)
    residual = float(ev["max_relative_residual"])  # type: ignore[arg-type]
    if residual > _RESIDUAL_TOL:
        return Outcome(
            "n/a",
            Text(
                f"there are no three gate weights to sum: no per-token weights rebuild the output from the "
                f"three branches (relative residual up to {fmt(residual)}; see gate.convex)",
                f"不存在可求和的三路门控权重：没有逐 token 权重能由三路分支重建输出（相对残差最高 {fmt(residual)}；"
                f"见 gate.convex）",
            ),
            ev,
            ctx.examples,
        )
    gate_sums = [f.gate_softmax_sum_deviation for _, f in fits if f.gate_softmax_sum_deviation is not None]
    gate_fit = [f.gate_vs_fit for _, f in fits if f.gate_vs_fit is not None]
    if gate_sums:
        ev["gate_softmax_max_sum_deviation"] = max(gate_sums)
        ev["gate_softmax_vs_fitted_weights"] = max(gate_fit)
    deviation = max([float(ev["max_sum_deviation"]), *gate_sums])  # type: ignore[arg-type]
    if deviation > _SUM_TOL:
        return Outcome(
            "fail",
            Text(
                f"the fitted branch weights do not sum to 1: largest |w0 + w1 + w2 - 1| is {fmt(deviation)}",
                f"拟合出的分支权重之和不为 1：最大 |w0 + w1 + w2 - 1| 为 {fmt(deviation)}",
            ),
            ev,
            ctx.examples,
        )
    return Outcome(
        "pass",
        Text(
            f"the three weights sum to 1 (largest deviation {fmt(deviation)} over {ev['tokens']} tokens"
            + (", gate softmax included)" if gate_sums else ")"),
            f"三路权重之和为 1（{ev['tokens']} 个 token 上的最大偏差为 {fmt(deviation)}"
            + ("，含门控 softmax 输出）" if gate_sums else "）"),
        ),
        ev,
        ctx.examples,
    )


_NEEDS = ("mixed_attn.norm1", "mixed_attn.norm2", "mixed_attn.norm3")

CHECKS: tuple[Check, ...] = (
    Check(
        id="gate.convex",
        catalogue=1,
        title=Text(
            "The fused prototype is a mix of the three attention branches only",
            "融合后的原型只是三路注意力分支的混合",
        ),
        method=Text(
            "Forward hooks on mixed_attn.norm1/norm2/norm3 and on the block capture cross_out, self_out, "
            "third_out and the output; per token, least squares for three weights; report residual and signs.",
            "在 mixed_attn.norm1/norm2/norm3 与整个模块上挂前向钩子，捕获 cross_out、self_out、third_out 与输出；"
            "逐 token 用最小二乘求三个权重，报告残差与符号。",
        ),
        run=_run_convex,
        needs=_NEEDS,
        severity="high",
    ),
    Check(
        id="gate.sum-to-one",
        catalogue=1,
        title=Text("The three gate weights sum to 1", "三路门控权重之和为 1"),
        method=Text(
            "The weights fitted for gate.convex, and softmax of the gate's own output where it is three wide; "
            "report the largest deviation of their sums from 1.",
            "使用 gate.convex 拟合出的权重，以及门控输出为三维时对其取 softmax；报告权重和与 1 的最大偏差。",
        ),
        run=_run_sum,
        needs=_NEEDS,
        severity="medium",
    ),
)
