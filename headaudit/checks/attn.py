"""Component contract of the mixed attention block and the FFN: their wiring (CHECKS.md 3b).

Forward hooks capture what each part of the block receives and returns on one eval
forward of a head with perturbed weights: the block's inputs, the three attentions'
queries, keys and values, the three branch outputs (``norm1``, ``norm2``, ``norm3``),
the gate's input and output, and the block's output. A numpy oracle recomputes the chain
from BEHAVIOR.md 2 with the modules' own weights, starting from the normalised prototype
rows and the projected patches of the whole batch:

- ``cross_out = norm1(q + cross_attn(q, K, K))``, ``q`` the normalised prototypes, ``K``
  every projected patch (compared as a set: the order of keys does not change attention);
- ``self_out = norm2(cross_out + self_attn(cross_out))``,
  ``third_out = norm3(self_out + third(self_out))``, each attention with the head counts
  BEHAVIOR.md gives (``num_heads``, ``num_heads``, ``max(1, num_heads // 2)``);
- the gate reads ``cat(cross_out, self_out, third_out)``; where it gives one weight per
  branch and token, the weights the output implies (least squares on the branches) rank
  as the gate's outputs do, so weight k multiplies branch k; a per-channel gate is
  described, and judged by ``gate.convex``;
- the class embeddings are ``ffn_norm(u + ffn(u))``, ``u`` the block's output, ``ffn``
  ``Linear -> GELU -> Linear``.

The first stage whose captured tensor leaves the oracle is reported. Cost (2-core CPU,
one thread): about 0.05 s per subject.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st
from torch import nn

from headaudit.adapters import LAYOUT_NEEDS
from headaudit.checks._common import Layout, coarsest, computed_in, dtype_name, tolerance
from headaudit.checks._contracts import build_contract_head, contract_layouts, features
from headaudit.checks._oracles import OracleUnavailable, arr, attention, gelu, layer_norm, linear, unit
from headaudit.context import Context, Refuted
from headaudit.messages import Msg
from headaudit.model import Finding
from headaudit.registry import Check
from headaudit.sandbox import call_subject

__all__ = ["CHECKS", "ORDER"]

_THIRD = ("mixed_attn.light_attn", "mixed_attn.local_self_attn")
_ATTN = {"cross": "mixed_attn.cross_attn", "self": "mixed_attn.self_attn"}
_NORMS = ("mixed_attn.norm1", "mixed_attn.norm2", "mixed_attn.norm3")
_ULPS = 1024.0  # three attentions, four LayerNorms and an FFN in float32 against float64: about a thousand ulps


@dataclass(frozen=True)
class WiringViolation:
    stage: str
    problem: str  # "differs", "shape", "not-called", "order", "heads", "widths"
    layout: Layout
    batch: int
    patches: int
    difference: float | None = None
    tolerance: float | None = None
    precision: str = ""  # the dtype the compared stage was computed in (the tolerance's)
    shape: tuple[int, ...] = ()
    expected_shape: tuple[int, ...] = ()
    tokens: tuple[int, ...] = ()
    implied_weights: tuple[float, ...] = ()
    gate_outputs: tuple[float, ...] = ()
    head_counts: tuple[int, ...] = ()
    expected_head_counts: tuple[int, ...] = ()


@dataclass(frozen=True)
class Fusion:
    """How the block's output relates to its branches (the gate's business, described here)."""

    kind: str  # "per-token", "per-channel", "other"
    gate_outputs: int  # size of the gate's last dim
    residual: float  # largest per-token least-squares residual, relative
    outside_share: float  # share of output entries outside the three branches' per-channel range
    input_explains: bool  # the block's input, as a fourth source, accounts for every such entry


@dataclass(frozen=True)
class WiringMeasurement:
    counterexample: WiringViolation | None
    unavailable: dict[str, str] | None  # the part the oracle cannot recompute: part, found, expected
    cases: int
    stages: tuple[str, ...]
    largest_difference: float
    tolerance: float
    dtype: str
    head_counts: dict[str, int] = field(default_factory=dict)
    fusion: Fusion | None = None
    scopes: tuple[str, ...] = ("batch",)  # the keys each query set attended to: "batch" or "sample"


class _Recorder:
    """Forward hooks that keep every call's inputs (by position and keyword) and outputs."""

    def __init__(self) -> None:
        self.inputs: dict[str, list[list[torch.Tensor]]] = {}
        self.outputs: dict[str, list[torch.Tensor]] = {}
        self.handles: list[Any] = []

    def watch(self, name: str, module: nn.Module) -> None:
        def before(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            values = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
            self.inputs.setdefault(name, []).append([v.detach().clone() for v in values])

        def after(_m: nn.Module, _args: Any, output: Any) -> None:
            first = output[0] if isinstance(output, (tuple, list)) else output
            self.outputs.setdefault(name, []).append(first.detach().clone())

        self.handles.append(module.register_forward_pre_hook(before, with_kwargs=True))
        self.handles.append(module.register_forward_hook(after))

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _flat(x: torch.Tensor | np.ndarray) -> np.ndarray:
    a = arr(x)
    return a.reshape(-1, a.shape[-1])


def _same_set(got: np.ndarray, want: np.ndarray, tol: float) -> float:
    """Largest distance between two sets of rows (inf when their sizes differ)."""
    if got.shape != want.shape:
        return math.inf
    d = np.abs(got[:, None, :] - want[None, :, :]).max(axis=-1)
    return float(max(d.min(axis=1).max(), d.min(axis=0).max()))


def _linears(module: Any) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def _ffn(x: np.ndarray, module: Any) -> np.ndarray:
    """``Linear -> GELU -> Linear`` (BEHAVIOR.md 2; dropout is 0) with the FFN's two Linear layers."""
    linears = _linears(module)
    if len(linears) != 2:
        raise OracleUnavailable("ffn", f"{len(linears)} nn.Linear", "Linear -> GELU -> Linear")
    return linear(gelu(linear(x, linears[0], "ffn.0")), linears[1], "ffn.1")


def _projection(x: np.ndarray, module: Any) -> np.ndarray:
    """``LayerNorm(Linear(x))`` (BEHAVIOR.md 2) with the projection's Linear and LayerNorm weights.

    A projection without a LayerNorm gets a plain one (no affine, eps 1e-5): BEHAVIOR.md
    normalises the projected features, so leaving it out changes them.
    """
    linears = _linears(module)
    if not linears:
        raise OracleUnavailable("proj", type(module).__name__, "Linear -> LayerNorm")
    norms = [m for m in module.modules() if isinstance(m, nn.LayerNorm)]
    norm = norms[0] if norms else nn.LayerNorm(linears[0].out_features, elementwise_affine=False)
    return layer_norm(linear(x, linears[0], "proj.0"), norm, "proj.1")


def _fusion(branches: list[np.ndarray], out: np.ndarray, block_input: np.ndarray, gate: np.ndarray) -> Fusion:
    a = np.stack(branches, axis=-1)  # (P, E, 3)
    y = out[:, :, None]
    residuals = []
    weights = []
    for p in range(a.shape[0]):
        w, *_ = np.linalg.lstsq(a[p], y[p], rcond=None)
        weights.append(w[:, 0])
        residuals.append(float(np.linalg.norm(a[p] @ w - y[p])) / max(float(np.linalg.norm(y[p])), 1e-30))
    lo, hi = a.min(-1), a.max(-1)
    scale = np.maximum(np.abs(out), np.abs(a).max(-1)).clip(min=1.0)
    slack = 1e-4 * scale
    outside = (out < lo - slack) | (out > hi + slack)
    explains = bool(((out >= np.minimum(lo, block_input) - slack) & (out <= np.maximum(hi, block_input) + slack)).all())
    kind = (
        "per-token"
        if gate.shape[-1] == len(branches)
        else "per-channel"
        if gate.shape[-1] == out.shape[-1]
        else "other"
    )
    return Fusion(kind, int(gate.shape[-1]), max(residuals), float(outside.mean()), explains and bool(outside.any()))


def _order_breaks(weights: np.ndarray, gate: np.ndarray, wtol: float) -> list[int]:
    """Tokens where the implied branch weights do not rank as the gate's outputs do."""
    bad = []
    for p in range(gate.shape[0]):
        for i in range(3):
            for j in range(i + 1, 3):
                dg, dw = gate[p, i] - gate[p, j], weights[p, i] - weights[p, j]
                if abs(dg) > 1e-3 and abs(dw) > wtol and np.sign(dg) != np.sign(dw):
                    bad.append(p)
    return sorted(set(bad))


def _measure(ctx: Context) -> WiringMeasurement:
    third = next(n for n in _THIRD if ctx.has(n))
    attn_names = {**_ATTN, "third": third}
    seen: dict[str, Any] = {
        "cases": 0,
        "diff": 0.0,
        "tol": 0.0,
        "dtype": "",
        "stages": [],
        "heads": {},
        "fusion": None,
        "scopes": set(),
    }
    precisions: list[torch.dtype] = []  # those of every compared stage

    def prop(case: tuple[Layout, int, int, int]) -> None:
        asked, batch, patches, salt = case
        head, layout = build_contract_head(ctx, asked, salt, emb_dim=8, img_feat_dim=6)
        seen["cases"] += 1
        pool, img = features(ctx, salt, batch, patches, 6)
        where: dict[str, Any] = {"layout": layout, "batch": batch, "patches": patches}
        rec = _Recorder()
        block = ctx.get(head, "mixed_attn")
        rec.watch("block", block)
        for key, name in attn_names.items():
            rec.watch(key, ctx.get(head, name))
        for name in _NORMS:
            rec.watch(name, ctx.get(head, name))
        rec.watch("gate", ctx.get(head, "mixed_attn.gate"))
        try:
            with torch.no_grad():
                out = call_subject("forward_features", ctx.get(head, "forward_features"), pool, img)
        finally:
            rec.close()
        stages: list[str] = []
        q = unit(arr(ctx.get(head, "proto_manager.prototypes")))
        # The keys' scope: the whole batch's patches (BEHAVIOR.md 2), or, where the block receives
        # one query set per sample, each sample's own patches (a head without batch coupling).
        given = (rec.inputs.get("block") or [[]])[0]
        scope = batch if batch > 1 and given and given[0].numel() == batch * q.size else 1
        proj = ctx.get(head, "proj")
        shared = _projection(_flat(pool), proj)
        whole = scope == 1 or (len(given) > 1 and given[1].numel() == scope * shared.size)
        keys_of = [shared] * scope if whole else [_projection(arr(x), proj) for x in pool]
        if batch > 1:  # with one sample both scopes are the same patches
            seen["scopes"].add("batch" if whole else "sample")

        def compare(
            stage: str, taken: tuple[np.ndarray | None, torch.dtype], want: np.ndarray, as_set: bool = False
        ) -> None:
            # each captured value at the precision it was computed in (the oracle reads parameters only)
            got, precision = taken
            precisions.append(precision)
            seen["dtype"] = dtype_name(coarsest(*precisions))
            tol = tolerance(precision, float(np.abs(want).max()) if want.size else 1.0, _ULPS)
            where["precision"] = dtype_name(precision)
            seen["tol"] = max(seen["tol"], tol)
            if got is None:
                raise Refuted(WiringViolation(stage, "not-called", **where))
            if got.shape != want.shape:
                raise Refuted(WiringViolation(stage, "shape", shape=got.shape, expected_shape=want.shape, **where))
            diff = _same_set(got, want, tol) if as_set else float(np.abs(got - want).max())
            if not diff <= tol:
                raise Refuted(WiringViolation(stage, "differs", difference=diff, tolerance=tol, **where))
            seen["diff"] = max(seen["diff"], diff)
            if stage not in stages:
                stages.append(stage)

        def part(x: np.ndarray | None, s: int) -> np.ndarray | None:
            """Scope ``s``'s rows of a captured tensor (all of it when it does not split evenly)."""
            if x is None or scope == 1 or x.shape[0] % scope:
                return x
            rows = x.shape[0] // scope
            return x[s * rows : (s + 1) * rows]

        def first_input(name: str, index: int, s: int) -> np.ndarray | None:
            calls = rec.inputs.get(name)
            return part(_flat(calls[0][index]), s) if calls and len(calls[0]) > index else None

        def first_output(name: str, s: int | None = None) -> np.ndarray | None:
            calls = rec.outputs.get(name)
            whole = _flat(calls[0]) if calls else None
            return whole if s is None else part(whole, s)

        def taken_input(name: str, index: int, s: int) -> tuple[np.ndarray | None, torch.dtype]:
            calls = rec.inputs.get(name)
            given = calls[0][index] if calls and len(calls[0]) > index else None
            return first_input(name, index, s), computed_in(given)

        def taken_output(name: str, s: int) -> tuple[np.ndarray | None, torch.dtype]:
            calls = rec.outputs.get(name)
            return first_output(name, s), computed_in(calls[0] if calls else None)

        # Head counts (BEHAVIOR.md 2): cross and self with num_heads, the third with max(1, num_heads // 2).
        heads = {k: int(getattr(ctx.get(head, n), "num_heads", -1)) for k, n in attn_names.items()}
        seen["heads"] = heads
        wanted = {"cross": heads["cross"], "self": heads["cross"], "third": max(1, heads["cross"] // 2)}
        if heads != wanted:
            raise Refuted(
                WiringViolation(
                    "head-counts",
                    "heads",
                    head_counts=tuple(heads.values()),
                    expected_head_counts=tuple(wanted[k] for k in heads),
                    **where,
                )
            )
        mods = {k: ctx.get(head, n) for k, n in attn_names.items()}
        for s, keys in enumerate(keys_of):
            compare("queries", taken_input("block", 0, s), q)
            compare("keys", taken_input("block", 1, s), keys, True)
            compare("cross-query", taken_input("cross", 0, s), q)
            compare("cross-keys", taken_input("cross", 1, s), keys, True)
            compare("cross-values", taken_input("cross", 2, s), keys, True)
            cross = layer_norm(
                q + attention(q, keys, keys, mods["cross"], "cross_attn"), ctx.get(head, _NORMS[0]), "norm1"
            )
            compare("cross-out", taken_output(_NORMS[0], s), cross)
            for k in range(3):
                compare(f"self-input-{k}", taken_input("self", k, s), cross)
            self_out = layer_norm(
                cross + attention(cross, cross, cross, mods["self"], "self_attn"), ctx.get(head, _NORMS[1]), "norm2"
            )
            compare("self-out", taken_output(_NORMS[1], s), self_out)
            for k in range(3):
                compare(f"third-input-{k}", taken_input("third", k, s), self_out)
            third_out = layer_norm(
                self_out + attention(self_out, self_out, self_out, mods["third"], third),
                ctx.get(head, _NORMS[2]),
                "norm3",
            )
            compare("third-out", taken_output(_NORMS[2], s), third_out)
            compare("gate-input", taken_input("gate", 0, s), np.concatenate([cross, self_out, third_out], axis=-1))
        u = first_output("block")
        g = first_output("gate")
        if u is None or g is None:
            raise Refuted(WiringViolation("block-out", "not-called", **where))
        captured = [first_output(n) for n in _NORMS]
        fusion = _fusion([c for c in captured if c is not None], u, np.tile(q, (scope, 1)), g)
        seen["fusion"] = fusion
        if fusion.kind == "per-token" and fusion.residual <= 1e-3:
            a = np.stack([c for c in captured if c is not None], axis=-1)
            w = np.stack([np.linalg.lstsq(a[p], u[p], rcond=None)[0] for p in range(a.shape[0])])
            broken = _order_breaks(w, g, 1e-3)
            if broken:
                raise Refuted(
                    WiringViolation(
                        "gate-order",
                        "order",
                        tokens=tuple(broken),
                        implied_weights=tuple(float(v) for v in w[broken[0]]),
                        gate_outputs=tuple(float(v) for v in g[broken[0]]),
                        **where,
                    )
                )
            stages.append("gate-order")
        class_emb = out[1] if isinstance(out, (tuple, list)) and len(out) > 1 else None
        emb = arr(class_emb) if isinstance(class_emb, torch.Tensor) else None
        widths = [(m.in_features, m.out_features) for m in _linears(ctx.get(head, "ffn"))]
        emb_dim = u.shape[-1]
        if widths != [(emb_dim, 4 * emb_dim), (4 * emb_dim, emb_dim)]:
            flat = tuple(w for pair in widths for w in pair)
            raise Refuted(WiringViolation("ffn", "widths", shape=flat, expected_shape=(emb_dim, 4 * emb_dim), **where))
        for s in range(scope):
            u_s = part(u, s)
            assert u_s is not None
            oracle = layer_norm(u_s + _ffn(u_s, ctx.get(head, "ffn")), ctx.get(head, "ffn_norm"), "ffn_norm")
            fits = emb is not None and emb.size % oracle.size == 0
            got = emb.reshape(-1, *oracle.shape)[s if scope > 1 else 0] if fits and emb is not None else emb
            # recomputed from the block's captured output: what the FFN computed after it counts
            precision = computed_in(class_emb, sources=rec.outputs.get("block", [])[:1])
            compare("class-embeddings", (got, precision), oracle)
        seen["stages"] = stages

    strategy = st.tuples(
        contract_layouts(max_classes=4, max_per_class=3, min_count=0),
        st.integers(1, 4),
        st.integers(1, 4),
        st.integers(0, 99),
    )
    explicit = [(Layout(3, 2, (2, 1, 0)), 3, 2, 0), (Layout(2, 3, (3, 1)), 2, 4, 1)]
    try:
        found = ctx.search(strategy, prop, ci_examples=6, explicit=explicit)
    except OracleUnavailable as exc:
        unavailable = {"part": exc.part, "found": exc.found, "expected": exc.expected}
        return WiringMeasurement(None, unavailable, seen["cases"], (), seen["diff"], seen["tol"], seen["dtype"])
    return WiringMeasurement(
        counterexample=found.error.detail if found else None,
        unavailable=None,
        cases=seen["cases"],
        stages=tuple(seen["stages"]),
        largest_difference=seen["diff"],
        tolerance=seen["tol"],
        dtype=seen["dtype"],
        head_counts=seen["heads"],
        fusion=seen["fusion"],
        scopes=tuple(sorted(seen["scopes"])),
    )


def _judge(m: WiringMeasurement) -> Finding:
    if m.unavailable is not None:
        return Finding("n/a", Msg("attn.wiring.unavailable", dict(m.unavailable)))
    bad = m.counterexample
    if bad is not None:
        stage = bad.stage.rsplit("-", 1)[0] if bad.stage[-1].isdigit() else bad.stage
        problem = {
            "difference": bad.difference if bad.difference is not None else math.nan,
            "tolerance": bad.tolerance if bad.tolerance is not None else math.nan,
            "shape": list(bad.shape) or "-",
            "expected": list(bad.expected_shape) or "-",
            "tokens": list(bad.tokens[:5]) or "-",
            "weights": [round(v, 4) for v in bad.implied_weights] or "-",
            "gate": [round(v, 4) for v in bad.gate_outputs] or "-",
            "heads": list(bad.head_counts) or "-",
            "wanted": list(bad.expected_head_counts) or "-",
        }
        failed = {
            "stage": Msg(f"attn.wiring.stage.{stage}"),
            "problem": Msg(f"attn.wiring.problem.{bad.problem}", problem),
            "layout": bad.layout.describe(),
            "batch": bad.batch,
            "patches": bad.patches,
        }
        return Finding("fail", Msg("attn.wiring.fail", failed))
    if m.cases == 0 or m.fusion is None:
        return Finding("error", Msg("attn.wiring.none", {}))
    params: dict[str, Any] = {
        "cases": m.cases,
        "difference": m.largest_difference,
        "tolerance": m.tolerance,
        "keys": [Msg(f"attn.wiring.scope.{k}") for k in m.scopes or ("single",)],
    }
    f = m.fusion
    if f.kind == "per-token" and f.residual <= 1e-3:
        return Finding("pass", Msg("attn.wiring.pass", params))
    extra = {"share": 100 * f.outside_share, "outputs": f.gate_outputs}
    key = (
        "pass_gate_input" if f.input_explains else "pass_gate_channel" if f.kind == "per-channel" else "pass_gate_other"
    )
    return Finding("pass", Msg(f"attn.wiring.{key}", {**params, **extra}))


ORDER = 360

CHECKS: tuple[Check[Any], ...] = (
    Check(
        id="attn.wiring",
        catalogue=3,
        measure=_measure,
        judge=_judge,
        needs=(
            "proj",
            "forward_features",
            "proto_manager.prototypes",
            "mixed_attn",
            *_ATTN.values(),
            "|".join(_THIRD),
            *_NORMS,
            "mixed_attn.gate",
            "ffn",
            "ffn_norm",
            *LAYOUT_NEEDS,
        ),
        severity="high",
        search=True,
        group="contracts",
    ),
)
