"""Performance of the hot path (CHECKS.md section 4): step time, operators, host syncs.

Each check measures one subject, role-blind, through :mod:`headaudit.bench` (no timer
or counter of its own here) with the quick configuration (:meth:`BenchConfig.quick`).
A step is BENCH.md's: ``zero_grad(set_to_none=True)``, forward in train mode with
labels, ``backward`` of the loss (element ``[1]`` of the forward's return); forward-only
runs in eval mode under ``no_grad``. Heads are built through ``ctx.build`` with
:data:`NUM_HEADS` attention heads (or the next count the constructor accepts) and
dropout 0 where the constructor takes it (the rate read back is in the evidence);
``img_feat_dim`` is ``emb_dim``. One smoke step at a small size runs first through
``call_subject``, so a raising head is ``error`` with its own message before any timing.

- ``perf.step-time``: the training step and the forward pass of the subject and of the
  bundled ``head.py`` (:func:`headaudit.subjects.bundled_reference`) on the same inputs,
  calls interleaved one by one in this process, at batch 1/8/32/64 with 7 classes and
  ``emb_dim`` 256; ratio = p10(subject) / p10(head.py). Beside each time: operators and
  FLOPs of that step and head.py's FLOPs of the same step, so each row says whether it
  compares equal work (:func:`equal_work`; batch 1 is there for it: a head that attends
  per sample does the batched heads' arithmetic only there), the limit measured in the
  same run (per-operator overhead, matmul FLOP rate) and the distance from
  ``max(FLOP floor, overhead floor)``. Where the config asks for it
  (``compiled_points``, ``headaudit bench --compiled``), the training step under
  ``torch.compile`` too: timed for a head without graph breaks, ``n/a`` with the count
  and the first reason otherwise, ``error`` with the message when compiling raised (a
  row of its own: the eager rows and the verdict stand). CPU always (one
  intra-op thread), CUDA too where present. Verdict: ``pass`` whenever every step was
  timed and compared; speed itself is not judged, because no threshold on a ratio or a
  distance would be measured rather than chosen (the floor is a bound no eager head
  reaches). The subject that is head.py itself is measured against a second head.py: its
  ratio (about 1) shows the noise of the machine.
- ``perf.op-count``: ATen operators per training step at ``num_classes`` 4, 8, 16, 32
  (batch 64, every class present), counted by a ``TorchDispatchMode``
  (:class:`headaudit.bench.counts.OpCounter`). What one more class costs is read between
  successive counts (:func:`per_class_costs`); ``fail`` when it rises by at least one
  operator per class from the first interval to the last (the counts are exact integers,
  so this is measured growth faster than linear, typically a loop over classes nested in
  another or work per pair of classes done in Python, and no one-operator step can cause
  it); ``pass`` when the count is linear in the classes or constant. The power-law
  exponent (R^2) and the least-squares fit ``ops = a + b*C + c*C**2`` are shown with it,
  and so are the graph breaks of the training forward (``torch._dynamo.explain``), which
  ``compile.graph-breaks`` judges.
- ``perf.host-syncs``: device-to-host synchronisations in one training step, on CUDA
  only (``torch.cuda.set_sync_debug_mode("warn")``, warnings counted); ``n/a`` without
  CUDA; ``pass`` at 0, ``fail`` above.

The functions :func:`timing_from`, :func:`op_count_from` and :func:`host_syncs_from`
read one subject's measurement out of any :class:`BenchResult`; ``headaudit bench``
uses them on one run of all its subjects (:mod:`headaudit.perfrun`). The evidence
field names are read by :mod:`headaudit.render.performance`; keep them stable.

Cost on a 2-core CPU: step-time about 11 s per subject, op-count about 3 s (half of it
dynamo), host-syncs nothing without CUDA.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from headaudit.bench.counts import host_syncs
from headaudit.bench.grid import EQUAL_WORK, BenchConfig
from headaudit.bench.results import BenchResult, GridPoint, SampleStats
from headaudit.bench.run import Stage, run_bench
from headaudit.bench.step import HeadFactory, forward_step, make_inputs, train_step
from headaudit.build import Built
from headaudit.context import Context
from headaudit.fingerprints import Headline
from headaudit.messages import Msg
from headaudit.model import Finding
from headaudit.profiles import Profile
from headaudit.registry import Check
from headaudit.sandbox import SubjectRaised, call_subject
from headaudit.subjects import Subject, bundled_reference, importable, load_subject

__all__ = [
    "CHECKS",
    "NUM_HEADS",
    "ORDER",
    "REFERENCE",
    "CompiledTiming",
    "DeviceTiming",
    "HostSyncMeasurement",
    "OpCountMeasurement",
    "StepTimeMeasurement",
    "Timing",
    "equal_work",
    "host_syncs_from",
    "op_count_from",
    "per_class_costs",
    "prepare",
    "reference_context",
    "reference_subject",
    "timing_devices",
    "timing_from",
]

#: Attention heads asked for (the bench's reference factories use 8; 8 divides 256 and 768).
NUM_HEADS = 8
#: The name of the bundled reference in every bench run, and the file ratios divide by.
REFERENCE = "head.py"
#: The subject's name in a check's own bench run.
SUBJECT = "subject"
#: Where the smoke step runs before anything is timed or counted.
SMOKE = GridPoint.of(4, 4, 32)


_TIMES: tuple[Stage, ...] = ("limit", "times", "compiled")
_COUNTS: tuple[Stage, ...] = ("scaling",)
_SYNCS: tuple[Stage, ...] = ("host_syncs",)


# --- building and running --------------------------------------------------------------


@functools.cache
def reference_subject() -> Subject:
    """The bundled ``head.py``, loaded once per process like any subject file."""
    return load_subject(str(bundled_reference(REFERENCE)), "reference head.py")


def reference_context(seed: int, profile: Profile) -> Context:
    """A context for the bundled ``head.py`` (it declares no names: the bench only calls it)."""
    return Context(reference_subject(), seed, profile, frozenset(), {})


def _build(ctx: Context, num_classes: int, emb_dim: int) -> Built:
    built = ctx.build_full(num_classes=num_classes, emb_dim=emb_dim, img_feat_dim=emb_dim, num_heads=NUM_HEADS)
    if ctx.builds and ctx.builds[-1] is built:
        ctx.builds.pop()  # the bench builds dozens of heads; keeping them all would only hold memory
    return built


def prepare(ctx: Context) -> tuple[HeadFactory, Built]:
    """A bench factory for ``ctx``'s subject, after a smoke step at :data:`SMOKE`.

    The smoke head is built and run through ``ctx.build`` and ``call_subject``, so a
    constructor or forward that raises gives ``error`` (and a setting that did not take
    effect ``n/a``) with the subject's own message before anything is timed.
    """
    torch.manual_seed(ctx.seed)
    built = _build(ctx, SMOKE.num_classes, SMOKE.emb_dim)
    inputs = make_inputs(SMOKE, seed=ctx.seed)
    call_subject("the training step (forward with labels, backward)", train_step(built.head, inputs))
    call_subject("the forward pass in eval mode", forward_step(built.head, inputs))

    def factory(num_classes: int, emb_dim: int) -> nn.Module:
        return _build(ctx, num_classes, emb_dim).head

    return factory, built


def timing_devices() -> tuple[str, ...]:
    """Where step times are measured: the CPU always, CUDA too where it is available."""
    return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)


def _bench(
    ctx: Context, subjects: Mapping[str, HeadFactory], stages: Collection[Stage], device: str = "cpu"
) -> BenchResult:
    try:
        return run_bench(
            subjects, reference=next(iter(subjects)), device=device, seed=ctx.seed, config=_config(), stages=stages
        )
    except SystemExit as exc:  # the bench records a subject's exceptions, but not an exit
        raise SubjectRaised("the bench", exc) from exc


def _config() -> BenchConfig:
    return BenchConfig.quick()


def _recorded(where: str, detail: str) -> SubjectRaised:
    """The subject's exception that the bench recorded as text (``"Type: message"``)."""
    raised = SubjectRaised(where, RuntimeError(detail))
    raised.detail = detail  # already "Type: message"; no second type in front
    return raised


def _raise_recorded(result: BenchResult, name: str) -> None:
    """Re-raise, as the subject's exception, what the bench recorded for ``name``."""
    message = result.errors.get(name)
    if message is not None:
        where, _, detail = message.partition(": ")
        raise _recorded(where, detail or where)


# --- perf.step-time -------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """One timed step at one grid point: the subject's and head.py's samples, compared."""

    kind: str  # "train" or "forward"
    batch: int
    num_classes: int
    emb_dim: int
    subject: SampleStats  # seconds per call
    reference: SampleStats  # head.py in the same interleaved loop
    ratio: float | None  # p10(subject) / p10(head.py)
    ops: int | None  # operators of this step (the dispatch-mode counter)
    flops: int | None  # FlopCounterMode
    flop_floor_s: float | None
    overhead_floor_s: float | None
    floor_s: float | None  # max of the two
    distance: float | None  # p10 / floor
    bound: str | None  # "flops" or "overhead"
    reference_flops: int | None = None  # head.py's FLOPs of the same step at the same point
    equal_work: bool | None = None  # equal_work(flops, reference_flops); None without both counts


def equal_work(flops: int | None, reference_flops: int | None) -> bool | None:
    """Whether two steps do the same arithmetic: FLOPs per step within :data:`EQUAL_WORK`
    of each other (``None`` when either count is missing). Where they do, a time ratio
    compares per-operator overhead and the code path; where they do not, part of the
    ratio is the difference of work, to be read with the FLOP counts."""
    if flops is None or reference_flops is None:
        return None
    larger = max(flops, reference_flops)
    return larger == 0 or abs(flops - reference_flops) <= EQUAL_WORK * larger


@dataclass(frozen=True)
class CompiledTiming:
    """The training step under ``torch.compile`` at one point (a :class:`CompiledStep`).

    ``status`` ``"timed"``: ``compiled`` and ``eager`` were sampled interleaved in one
    loop; ``speedup = p10(eager) / p10(compiled)``; ``ratio`` against head.py compiled
    in the same loop (``None`` where head.py did not compile: it has graph breaks).
    ``"n/a"``: ``graph_breaks`` breaks, the first ``reason``. ``"error"``: ``error``.
    """

    batch: int
    num_classes: int
    emb_dim: int
    status: str
    graph_breaks: int | None
    reason: str | None
    error: str | None
    compile_s: float | None
    compiled: SampleStats | None
    eager: SampleStats | None
    speedup: float | None
    ratio: float | None


@dataclass(frozen=True)
class DeviceTiming:
    """Every timed step on one device, with the limit measured in the same run."""

    device: str
    device_name: str
    threads: int
    mode: str
    warmup: int
    number: int  # calls per sample
    per_op_overhead_s: float | None
    overhead_op: str | None
    flop_rate: float | None
    matmul_n: int | None
    reference_is_subject: bool  # the run's head.py is this very subject (headaudit bench)
    rows: tuple[Timing, ...]
    compiled: tuple[CompiledTiming, ...] = ()  # empty: the compiled step was not asked for


@dataclass(frozen=True)
class StepTimeMeasurement:
    devices: tuple[DeviceTiming, ...]
    num_heads: int
    dropout: float | None  # the largest dropout rate read back from the built head


def timing_from(result: BenchResult, name: str, config: BenchConfig) -> DeviceTiming:
    """``name``'s timed steps in ``result`` against its reference (raises what it recorded)."""
    _raise_recorded(result, name)
    rows = []
    for row in result.times:
        stats = row.stats.get(name)
        reference = row.stats.get(result.reference)
        if stats is None or reference is None:
            continue
        counted = result.counts_for(name, row.kind, row.point)
        theirs = result.counts_for(result.reference, row.kind, row.point)
        far = next(
            (d for d in result.distances if d.subject == name and d.kind == row.kind and d.point == row.point), None
        )
        rows.append(
            Timing(
                kind=row.kind,
                batch=row.point.batch,
                num_classes=row.point.num_classes,
                emb_dim=row.point.emb_dim,
                subject=stats,
                reference=reference,
                ratio=row.ratios.get(name),
                ops=counted.ops if counted else None,
                flops=counted.flops if counted else None,
                flop_floor_s=far.flop_floor_s if far else None,
                overhead_floor_s=far.overhead_floor_s if far else None,
                floor_s=far.floor_s if far else None,
                distance=far.distance if far else None,
                bound=far.bound if far else None,
                reference_flops=theirs.flops if theirs else None,
                equal_work=equal_work(counted.flops if counted else None, theirs.flops if theirs else None),
            )
        )
    compiled = tuple(
        CompiledTiming(
            batch=c.point.batch,
            num_classes=c.point.num_classes,
            emb_dim=c.point.emb_dim,
            status=c.status,
            graph_breaks=c.graph_breaks,
            reason=c.reason,
            error=c.error,
            compile_s=c.compile_s,
            compiled=c.compiled,
            eager=c.eager,
            speedup=c.speedup,
            ratio=c.ratio,
        )
        for c in result.compiled
        if c.subject == name
    )
    limit = result.limit
    env = result.environment
    return DeviceTiming(
        device=env.device,
        device_name=env.device_name,
        threads=env.threads,
        mode=result.mode,
        warmup=config.warmup,
        number=config.cuda_number if env.device.startswith("cuda") else config.number,
        per_op_overhead_s=limit.per_op_overhead_s if limit else None,
        overhead_op=limit.overhead_op if limit else None,
        flop_rate=limit.flop_rate if limit else None,
        matmul_n=limit.matmul_n if limit else None,
        reference_is_subject=name == result.reference,
        rows=tuple(rows),
        compiled=compiled,
    )


def _measure_step_time(ctx: Context) -> StepTimeMeasurement:
    factory, built = prepare(ctx)
    reference, _ = prepare(reference_context(ctx.seed, ctx.profile))
    devices = []
    for device in timing_devices():
        result = _bench(ctx, {REFERENCE: reference, SUBJECT: factory}, _TIMES, device)
        devices.append(timing_from(result, SUBJECT, _config()))
    return StepTimeMeasurement(tuple(devices), built.sizes[2], built.settings.get("dropout_rate"))


def _span(values: Sequence[float]) -> tuple[float, float]:
    return min(values), max(values)


def _judge_step_time(m: StepTimeMeasurement) -> Finding:
    parts = []
    for d in m.devices:
        train = [r.ratio for r in d.rows if r.kind == "train"]
        forward = [r.ratio for r in d.rows if r.kind == "forward"]
        if not train or not forward:
            return Finding("error", Msg("perf.step-time.nothing", {"device": d.device}))
        if any(r is None for r in (*train, *forward)):
            return Finding("error", Msg("perf.step-time.no_reference", {"device": d.device}))

        (t_lo, t_hi), (f_lo, f_hi) = _span([r for r in train if r]), _span([r for r in forward if r])
        params: dict[str, Any] = {
            "device": d.device,
            "batches": sorted({r.batch for r in d.rows}),
            "train_low": t_lo,
            "train_high": t_hi,
            "forward_low": f_lo,
            "forward_high": f_hi,
        }
        distances = [r.distance for r in d.rows if r.distance is not None]
        bounds = sorted({r.bound for r in d.rows if r.bound})
        if distances and bounds:
            bound = Msg(f"perf.step-time.bound_{bounds[0] if len(bounds) == 1 else 'mixed'}")
            low, high = _span(distances)
            parts.append(Msg("perf.step-time.on_device", {**params, "far_low": low, "far_high": high, "bound": bound}))
        else:
            parts.append(Msg("perf.step-time.on_device_no_floor", params))
        for c in d.compiled:  # a row of its own; an n/a or error here is that row's, the eager rows stand
            where = {"device": d.device, "batch": c.batch}
            if c.status == "timed" and c.speedup is not None:
                parts.append(Msg("perf.step-time.compiled_timed", {**where, "speedup": c.speedup}))
            elif c.status == "n/a":
                parts.append(Msg("perf.step-time.compiled_na", {**where, "breaks": c.graph_breaks or 0}))
            else:
                parts.append(Msg("perf.step-time.compiled_error", {**where, "error": c.error or "?"}))
    if not parts:
        return Finding("error", Msg("perf.step-time.nothing", {"device": "-"}))
    return Finding("pass", Msg("perf.step-time.pass", {"devices": parts}))


# --- perf.op-count --------------------------------------------------------------------


@dataclass(frozen=True)
class OpCountMeasurement:
    batch: int
    emb_dim: int
    num_classes: tuple[int, ...]
    ops: tuple[int, ...]  # operators per training step at each class count
    exponent: float | None  # least squares of log ops on log classes: ops ~ coefficient * C**exponent
    coefficient: float | None
    r2: float | None
    local_exponents: tuple[float, ...]
    quadratic: tuple[float, float, float] | None  # (a, b, c) of ops = a + b*C + c*C**2
    quadratic_ops_at_largest: float | None  # c * max(C)**2
    per_class_costs: tuple[float, ...]  # operators one more class costs, between successive counts


def per_class_costs(classes: Sequence[int], ops: Sequence[int]) -> tuple[float, ...]:
    """``(ops[i+1] - ops[i]) / (classes[i+1] - classes[i])``: what one more class costs."""
    pairs = zip(classes, ops, strict=True)
    return tuple((o2 - o1) / (c2 - c1) for (c1, o1), (c2, o2) in itertools.pairwise(pairs) if c2 != c1)


def op_count_from(result: BenchResult, name: str) -> OpCountMeasurement:
    """``name``'s operator-count series in ``result`` (graph breaks are compile.graph-breaks')."""
    _raise_recorded(result, name)
    scaling = result.scaling.get(name)
    if scaling is None:  # the stage did not run: the check's own failure, not the subject's
        raise RuntimeError(f"the bench run has no operator count of {name!r}")
    if scaling.error is not None:  # "at num_classes=8: Type: message"
        where, _, detail = scaling.error.partition(": ")
        raise _recorded(f"the training step {where}", detail or where)
    fit = scaling.fit
    quad = fit.quadratic if fit else None
    return OpCountMeasurement(
        batch=scaling.batch,
        emb_dim=scaling.emb_dim,
        num_classes=scaling.num_classes,
        ops=scaling.ops,
        exponent=fit.exponent if fit else None,
        coefficient=fit.coefficient if fit else None,
        r2=fit.r2 if fit else None,
        local_exponents=fit.local_exponents if fit else (),
        quadratic=quad,
        quadratic_ops_at_largest=quad[2] * max(scaling.num_classes) ** 2 if quad else None,
        per_class_costs=per_class_costs(scaling.num_classes, scaling.ops),
    )


def _measure_op_count(ctx: Context) -> OpCountMeasurement:
    factory, _ = prepare(ctx)
    with importable([ctx.subject]):  # dynamo imports the modules it traces
        return op_count_from(_bench(ctx, {SUBJECT: factory}, _COUNTS), SUBJECT)


def _judge_op_count(m: OpCountMeasurement) -> Finding:
    """Fail when what one more class costs rises by at least one operator per class from
    the first interval of class counts to the last (exact integer counts: a real rise,
    robust to a one-operator step anywhere); pass when it does not (linear or constant)."""
    costs = m.per_class_costs
    if len(m.num_classes) < 3 or len(costs) < 2:
        return Finding("error", Msg("perf.op-count.too_few", {"classes": list(m.num_classes)}))
    classes = list(m.num_classes)
    params: dict[str, Any] = {
        "classes": classes,
        "ops": list(m.ops),
        "exponent": m.exponent if m.exponent is not None else "nan",
        "r2": m.r2 if m.r2 is not None else "nan",
    }
    if costs[-1] - costs[0] >= 1.0:
        c = m.quadratic[2] if m.quadratic else 0.0
        share = 100.0 * max(c, 0.0) * classes[-1] ** 2 / m.ops[-1] if m.ops[-1] else 0.0
        params.update(
            first=costs[0],
            last=costs[-1],
            first_span=f"{classes[0]}-{classes[1]}",
            last_span=f"{classes[-2]}-{classes[-1]}",
            c=c,
            share=share,
            largest=classes[-1],
            largest_ops=m.ops[-1],
        )
        return Finding("fail", Msg("perf.op-count.fail", params))
    if min(m.ops) == max(m.ops):
        return Finding("pass", Msg("perf.op-count.pass_constant", params))
    return Finding("pass", Msg("perf.op-count.pass_linear", {**params, "per_class": costs[-1]}))


# --- perf.host-syncs ------------------------------------------------------------------


@dataclass(frozen=True)
class HostSyncMeasurement:
    device: str
    batch: int
    num_classes: int
    count: int | None  # None: not measurable on this device
    note: str


def host_syncs_from(result: BenchResult, name: str, config: BenchConfig) -> HostSyncMeasurement:
    """``name``'s host syncs per training step in ``result`` (run with ``config``)."""
    _raise_recorded(result, name)
    syncs = result.host_syncs.get(name)
    if syncs is None:  # the stage did not run: the check's own failure, not the subject's
        raise RuntimeError(f"the bench run has no host-sync count of {name!r}")
    if syncs.error is not None:
        raise _recorded("the training step (host syncs)", syncs.error)
    point = config.sync_point
    return HostSyncMeasurement(result.environment.device, point.batch, point.num_classes, syncs.count, syncs.note)


def _measure_host_syncs(ctx: Context) -> HostSyncMeasurement:
    point = _config().sync_point
    if not torch.cuda.is_available():  # nothing to measure here: the bench says why, nothing is run
        syncs = host_syncs(lambda: None, "cpu")
        return HostSyncMeasurement("cpu", point.batch, point.num_classes, syncs.count, syncs.note)
    factory, _ = prepare(ctx)
    return host_syncs_from(_bench(ctx, {SUBJECT: factory}, _SYNCS, "cuda"), SUBJECT, _config())


def _judge_host_syncs(m: HostSyncMeasurement) -> Finding:
    params = {"device": m.device, "batch": m.batch, "classes": m.num_classes}
    if m.count is None:
        return Finding("n/a", Msg("perf.host-syncs.na", params))
    if m.count == 0:
        return Finding("pass", Msg("perf.host-syncs.pass", params))
    return Finding("fail", Msg("perf.host-syncs.fail", {**params, "count": m.count}))


ORDER = 410

CHECKS: tuple[Check[Any], ...] = (
    Check(
        id="perf.step-time",
        catalogue=4,
        measure=_measure_step_time,
        judge=_judge_step_time,
        severity="low",
        group="performance",
        timing=True,
    ),
    Check(
        id="perf.op-count",
        catalogue=4,
        measure=_measure_op_count,
        judge=_judge_op_count,
        severity="medium",
        group="performance",
        headlines={"perf.op-count.fail": Headline("last", "higher")},
    ),
    Check(
        id="perf.host-syncs",
        catalogue=4,
        measure=_measure_host_syncs,
        judge=_judge_host_syncs,
        severity="medium",
        group="performance",
        headlines={"perf.host-syncs.fail": Headline("count", "higher")},
    ),
)
