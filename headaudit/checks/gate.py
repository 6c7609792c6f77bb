"""The fusion gate of the mixed attention block (claim 1.2).

Forward hooks capture the three branch outputs (the outputs of ``mixed_attn.norm1``,
``norm2`` and ``norm3``: ``cross_out``, ``self_out``, ``third_out``), the block's input
(the prototype queries) and its output. Two ways a fusion can be a mix of the branches:

- per token: one weight per branch for each prototype token; least squares over the
  channels recovers them, and the residual says whether they exist;
- per channel (an element-wise gate, ``g`` and ``1 - g`` per channel): the weights are
  not identifiable from one output, but a convex per-channel mix must lie, channel by
  channel, between the smallest and largest of the three branches.

An output that is neither leaves the branches: the evidence then says whether the
block's input explains what is left. ``gate.sum-to-one`` judges the per-token weights
the subject's output implies; it never applies a softmax of its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import strategies as st
from torch import nn

from headaudit.adapters import Head
from headaudit.checks._common import coarsest, computed_in, dtype_name, tolerance
from headaudit.context import Context, Refuted
from headaudit.fingerprints import Headline
from headaudit.messages import Msg
from headaudit.model import Finding
from headaudit.precision import amplified
from headaudit.registry import Check
from headaudit.sandbox import call_subject

__all__ = ["CHECKS", "ORDER", "GateFit", "fit_gate"]

_BRANCHES = ("mixed_attn.norm1", "mixed_attn.norm2", "mixed_attn.norm3")
_NEEDS = ("mixed_attn", *_BRANCHES)
_ULPS = 256.0  # least squares in float64 over float32 tensors: a few hundred ulps of the subject's dtype
_EXPLICIT = ((0, 2, 1), (1, 3, 4))
#: A weight sum known to within this is evidence either way; a coarser tolerance (a head
#: computing in bfloat16, ill-conditioned branches) could not tell a softmax from sigmoids.
_RESOLUTION = 0.1


@dataclass(frozen=True)
class GateFit:
    """How the block output relates to its branches at one configuration."""

    seed: int
    num_classes: int
    batch: int
    dtype: str
    tokens: int
    channels: int
    token_residual: float  # largest per-token ||A w - y|| / ||y||
    token_tolerance: float
    min_weight: float
    max_sum_deviation: float  # largest |w0 + w1 + w2 - 1|
    sum_tolerance: float
    condition: float  # largest condition number of the per-token branch matrices
    outside_share: float  # share of (token, channel) entries outside the branches' per-channel range
    outside_largest: float  # largest distance outside that range, relative to the entry's scale
    input_explains: bool  # with the block's input as a fourth source, nothing is outside

    @property
    def per_token(self) -> bool:
        return self.token_residual <= self.token_tolerance and self.min_weight >= -self.token_tolerance

    @property
    def per_channel(self) -> bool:
        return self.outside_share == 0.0

    @property
    def resolves_sum(self) -> bool:
        return self.sum_tolerance < _RESOLUTION


def _capture(ctx: Context, head: Head, pool: torch.Tensor, img: torch.Tensor) -> dict[str, torch.Tensor]:
    block = ctx.get(head, "mixed_attn")
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str) -> Any:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            seen[name] = (output[0] if isinstance(output, tuple) else output).detach()

        return hook

    def keep_input(_module: nn.Module, inputs: Any) -> None:
        if inputs:
            seen["input"] = inputs[0].detach()

    handles = [ctx.get(head, n).register_forward_hook(keep(n)) for n in _BRANCHES]
    handles.append(block.register_forward_hook(keep("out")))
    handles.append(block.register_forward_pre_hook(keep_input))
    try:
        with torch.no_grad():
            call_subject("forward", head, pool, img)
    finally:
        for h in handles:
            h.remove()
    return seen


def fit_gate(ctx: Context, seed: int, num_classes: int, batch: int) -> GateFit:
    """Build a seeded head, run one eval forward, and relate the output to its branches."""
    torch.manual_seed(ctx.seed * 7919 + seed)
    head = ctx.build(num_classes=num_classes, emb_dim=16, num_prototypes=2, max_prototypes=3)
    gen = ctx.generator(seed)
    seen = _capture(ctx, head, torch.randn(batch, 4, 16, generator=gen), torch.randn(batch, 16, generator=gen))
    out = seen["out"]
    # the block's output against its branches: what the fusion computed after them counts
    read = [seen[n] for n in _BRANCHES]
    dtype = computed_in(out, sources=read)
    branches = torch.stack([seen[n] for n in _BRANCHES], dim=-1).double()  # (..., E, 3)
    a = branches.reshape(-1, branches.size(-2), 3)
    y = out.double().reshape(-1, out.size(-1), 1)
    w = torch.linalg.lstsq(a, y).solution
    residual = float(((a @ w - y).norm(dim=(1, 2)) / y.norm(dim=(1, 2)).clamp_min(1e-30)).max())
    condition = float(torch.linalg.cond(a).max())
    w = w.squeeze(-1)
    token_tol = tolerance(dtype, 1.0, _ULPS)
    # Per channel: the output entry must lie within the branches' range at that entry.
    yy = y.squeeze(-1)
    scale = torch.maximum(yy.abs(), a.abs().amax(-1)).clamp_min(1.0)
    entry_tol = tolerance(dtype, 1.0, _ULPS) * scale
    lo, hi = a.amin(-1), a.amax(-1)
    distance = torch.maximum(lo - yy, yy - hi).clamp_min(0.0)
    outside = distance > entry_tol
    explains = True
    if "input" in seen and seen["input"].numel() == yy.numel():
        x = seen["input"].double().reshape(yy.shape)
        lo4, hi4 = torch.minimum(lo, x), torch.maximum(hi, x)
        explains = bool((torch.maximum(lo4 - yy, yy - hi4) <= entry_tol).all())
    return GateFit(
        seed=seed,
        num_classes=num_classes,
        batch=batch,
        dtype=dtype_name(dtype),
        tokens=a.size(0),
        channels=a.size(1),
        token_residual=residual,
        token_tolerance=token_tol,
        min_weight=float(w.min()),
        max_sum_deviation=float((w.sum(-1) - 1).abs().max()),
        sum_tolerance=amplified(out, 1.0, condition, _ULPS, sources=read),
        condition=condition,
        outside_share=float(outside.double().mean()),
        outside_largest=float((distance / scale).max()),
        input_explains=explains and bool(outside.any()),
    )


def _configs() -> st.SearchStrategy[tuple[int, int, int]]:
    return st.tuples(st.integers(0, 99), st.integers(2, 8), st.integers(1, 16))


@dataclass(frozen=True)
class ConvexMeasurement:
    counterexample: GateFit | None
    configs: int
    tokens: int
    per_token_configs: int
    per_channel_configs: int
    largest_residual: float
    smallest_weight: float


def _measure_convex(ctx: Context) -> ConvexMeasurement:
    fits: list[GateFit] = []

    def prop(case: tuple[int, int, int]) -> None:
        fit = fit_gate(ctx, *case)
        fits.append(fit)
        if not (fit.per_token or fit.per_channel):
            raise Refuted(fit)

    found = ctx.search(_configs(), prop, ci_examples=6, explicit=_EXPLICIT)
    return ConvexMeasurement(
        counterexample=found.error.detail if found else None,
        configs=len(fits),
        tokens=sum(f.tokens for f in fits),
        per_token_configs=sum(f.per_token for f in fits),
        per_channel_configs=sum(f.per_channel and not f.per_token for f in fits),
        largest_residual=max((f.token_residual for f in fits), default=math.nan),
        smallest_weight=min((f.min_weight for f in fits), default=math.nan),
    )


def _judge_convex(m: ConvexMeasurement) -> Finding:
    bad = m.counterexample
    if bad is not None:
        # why there is no per-token mix: no weights fit, or the weights that fit are not all >= 0
        fits = bad.token_residual <= bad.token_tolerance
        why = [Msg("gate.convex.negative_weight" if fits else "gate.convex.no_fit")]
        params = {
            "why": why,
            "residual": bad.token_residual,
            "share": 100 * bad.outside_share,
            "largest": bad.outside_largest,
            "classes": bad.num_classes,
            "batch": bad.batch,
        }
        key = "fail_input" if bad.input_explains else "fail"
        return Finding("fail", Msg(f"gate.convex.{key}", params))
    if m.per_channel_configs:
        return Finding("pass", Msg("gate.convex.pass_channel", {"configs": m.configs, "tokens": m.tokens}))
    return Finding(
        "pass",
        Msg(
            "gate.convex.pass",
            {"residual": m.largest_residual, "weight": m.smallest_weight, "tokens": m.tokens, "configs": m.configs},
        ),
    )


@dataclass(frozen=True)
class SumMeasurement:
    base: GateFit
    counterexample: GateFit | None = None
    configs: int = 0
    largest_sum_deviation: float | None = None
    unresolved: int = 0  # per-token fits whose sum tolerance was too coarse to tell (see _RESOLUTION)
    precision: str = ""  # the coarsest precision the fits compared at


def _measure_sum(ctx: Context) -> SumMeasurement:
    base = fit_gate(ctx, *_EXPLICIT[0])
    if not base.per_token:
        return SumMeasurement(base)
    fits: list[GateFit] = []

    def prop(case: tuple[int, int, int]) -> None:
        fit = fit_gate(ctx, *case)
        fits.append(fit)
        if fit.per_token and fit.resolves_sum and not fit.max_sum_deviation <= fit.sum_tolerance:
            raise Refuted(fit)

    found = ctx.search(_configs(), prop, ci_examples=6, explicit=_EXPLICIT)
    usable = [f for f in fits if f.per_token and f.resolves_sum]
    return SumMeasurement(
        base=base,
        counterexample=found.error.detail if found else None,
        configs=len(usable),
        largest_sum_deviation=max((f.max_sum_deviation for f in usable), default=math.nan),
        unresolved=sum(1 for f in fits if f.per_token and not f.resolves_sum),
        precision=dtype_name(coarsest(*(getattr(torch, f.dtype) for f in (base, *fits)))),
    )


def _judge_sum(m: SumMeasurement) -> Finding:
    if not m.base.per_token:
        key = "na_channel" if m.base.per_channel else "na"
        return Finding("n/a", Msg(f"gate.sum-to-one.{key}", {"residual": m.base.token_residual}))
    bad = m.counterexample
    if bad is not None:
        params = {"deviation": bad.max_sum_deviation, "tolerance": bad.sum_tolerance, "classes": bad.num_classes}
        return Finding("fail", Msg("gate.sum-to-one.fail", params))
    if m.configs == 0:
        found = {"fits": m.unresolved, "dtype": m.precision, "tolerance": m.base.sum_tolerance}
        return Finding("warn", Msg("gate.sum-to-one.unresolved", found))
    return Finding(
        "pass",
        Msg("gate.sum-to-one.pass", {"deviation": m.largest_sum_deviation, "configs": m.configs}),
    )


ORDER = 120

CHECKS: tuple[Check[Any], ...] = (
    Check(
        id="gate.convex",
        catalogue=1,
        measure=_measure_convex,
        judge=_judge_convex,
        needs=_NEEDS,
        severity="high",
        search=True,
        headlines={
            "gate.convex.fail": Headline("residual", "higher"),
            "gate.convex.fail_input": Headline("residual", "higher"),
        },
    ),
    Check(
        id="gate.sum-to-one",
        catalogue=1,
        measure=_measure_sum,
        judge=_judge_sum,
        needs=_NEEDS,
        severity="medium",
        search=True,
        headlines={"gate.sum-to-one.fail": Headline("deviation", "higher")},
    ),
)
