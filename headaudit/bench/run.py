"""``run_bench``: the whole Performance section in one process.

Order of work (each stage is described where it happens):

1. the limit probes (per-operator overhead, matmul FLOP rate);
2. per grid point and step kind: all subjects on the same inputs, interleaved one call
   at a time, then ops and FLOPs per step of each subject at that point;
3. operators per training step against ``num_classes`` and the growth fit;
4. graph breaks (``torch._dynamo.explain``) on the training forward (when
   ``config.trace_breaks``);
5. the training step under ``torch.compile`` at ``config.compiled_points`` (none by
   default): explained first, compiled with ``fullgraph=True`` only without breaks,
   warmed up (the compilation is never in a sample), then timed interleaved with the
   same step eager;
6. host syncs per training step (CUDA only, ``n/a`` on CPU);
7. each subject's distance from the floor at every timed point.

On CPU, timing runs with one intra-op thread (BENCH.md); the caller's thread count is
restored afterwards. On CUDA, samples are CUDA-event timings of ``cuda_number`` steps.

A subject that raises does not stop the run: the stage and the message go to
:attr:`BenchResult.errors` and the subject is left out of the later stages (a failing
op-count series or dynamo run is recorded in its own record instead).

``stages`` runs a subset (:data:`STAGES`): a ``perf.*`` check measures only what it
judges. A stage left out leaves its fields empty (``limit`` ``None`` without an error,
no ``times``, ``counts`` or ``distances``, empty ``scaling``, ``graph_breaks`` or
``host_syncs``); the distances need both ``"limit"`` and ``"times"``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import platform
import time
import warnings
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal

import torch

from headaudit.bench.counts import count_flops, count_ops, graph_breaks, host_syncs
from headaudit.bench.fit import fit_growth
from headaudit.bench.grid import BenchConfig
from headaudit.bench.limit import distance, measure_limit
from headaudit.bench.results import (
    SCHEMA_VERSION,
    BenchResult,
    CompiledStep,
    Distance,
    Environment,
    GraphBreaks,
    GridPoint,
    HostSyncs,
    Limit,
    OpScaling,
    StepCounts,
    StepTimes,
)
from headaudit.bench.step import HeadFactory, LossFn, build_head, default_loss, make_inputs, make_step, train_step
from headaudit.bench.timers import CudaEventTimer, Timer, cpu_timer, interleaved, intra_op_threads, ratio, summarize
from headaudit.errors import ConfigError

__all__ = ["STAGES", "Stage", "describe_device", "resolve_device", "run_bench"]

Progress = Callable[[str], None]

#: The stages of a run, in the order they run (see the module docstring).
Stage = Literal["limit", "times", "scaling", "graph_breaks", "compiled", "host_syncs"]
STAGES: tuple[Stage, ...] = ("limit", "times", "scaling", "graph_breaks", "compiled", "host_syncs")


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``; ``ConfigError`` for CUDA on a machine without it."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r}: {exc}; use 'cpu' or 'cuda'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but torch.cuda.is_available() is False; use device='cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {device!r} is not supported by the bench; use 'cpu' or 'cuda'")
    if dev.type == "cuda":  # pin the index so events, syncs and the record name one device
        index: int | None = dev.index
        dev = torch.device("cuda", torch.cuda.current_device() if index is None else index)
    return dev


def _cpu_name() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def describe_device(device: torch.device, threads: int) -> Environment:
    """The :class:`Environment` record of a run on ``device`` with ``threads`` threads."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    return Environment(
        device=str(device),
        device_name=name,
        threads=threads,
        torch_version=str(torch.__version__),
        python_version=platform.python_version(),
        platform=f"{platform.system()} {platform.machine()}",
        cuda_version=torch.version.cuda if device.type == "cuda" else None,
    )


def _describe_error(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class _Guarded:
    """A step that records its first exception and becomes a no-op after it, so one
    raising subject cannot abort the interleaved loop of the others."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.error: str | None = None

    def __call__(self) -> None:
        if self.error is not None:
            return
        try:
            self.fn()
        except Exception as exc:
            self.error = _describe_error(exc)


def run_bench(
    subjects: Mapping[str, HeadFactory],
    *,
    reference: str,
    quick: bool = True,
    device: str = "cpu",
    seed: int = 0,
    config: BenchConfig | None = None,
    loss_fn: LossFn | Mapping[str, LossFn] = default_loss,
    progress: Progress | None = None,
    stages: Collection[Stage] = STAGES,
) -> BenchResult:
    """Measure every subject for the Performance section and return the result.

    ``subjects`` maps a display name (e.g. ``"head.py"``) to a :data:`HeadFactory`;
    ``reference`` names the one ratios divide by (``p10(subject) / p10(reference)``,
    from calls interleaved one by one in this process). ``quick`` picks
    :meth:`BenchConfig.quick` (default, under a minute on a 2-core CPU for two heads) or
    :meth:`BenchConfig.full` (the whole grid); ``config`` overrides both. ``loss_fn``
    reads the loss from a forward's return, one for all or one per subject.
    ``progress`` receives a line per stage (e.g. for a CLI's stderr). ``stages`` picks
    which of :data:`STAGES` run (all by default).

    Raises :class:`headaudit.errors.ConfigError` for an unknown reference, an unknown
    stage or an unavailable device; a subject's own exceptions are recorded, never raised.
    """
    started = time.perf_counter()
    if reference not in subjects:
        raise ConfigError(f"reference {reference!r} is not among the subjects {list(subjects)!r}")
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise ConfigError(f"unknown bench stages {unknown!r}; choose from {list(STAGES)!r}")
    dev = resolve_device(device)
    cfg = config if config is not None else (BenchConfig.quick() if quick else BenchConfig.full())
    losses: dict[str, LossFn] = (
        {name: loss_fn.get(name, default_loss) for name in subjects}
        if isinstance(loss_fn, Mapping)
        else dict.fromkeys(subjects, loss_fn)
    )
    say: Progress = progress if progress is not None else (lambda _line: None)
    run = _Run(subjects, losses, reference, dev, seed, cfg, say)

    cuda = dev.type == "cuda"
    threads: contextlib.AbstractContextManager[int] = (
        contextlib.nullcontext(torch.get_num_threads()) if cuda else intra_op_threads(cfg.threads)
    )
    with threads as n_threads:
        if cuda:
            run.timer, run.number = CudaEventTimer(dev), cfg.cuda_number
        if "limit" in stages:
            run.measure_limit()
        if "times" in stages:
            for point in cfg.points:
                run.time_point(point)
        if "scaling" in stages:
            run.op_scaling()
        if "graph_breaks" in stages and cfg.trace_breaks:
            run.graph_breaks()
        if "compiled" in stages:
            for point in cfg.compiled_points:
                run.compiled(point)
        if "host_syncs" in stages:
            run.host_syncs()
    distances = run.distances()
    return BenchResult(
        schema_version=SCHEMA_VERSION,
        mode=cfg.mode,
        seed=seed,
        reference=reference,
        subjects=tuple(subjects),
        environment=describe_device(dev, n_threads),
        limit=run.limit,
        times=tuple(run.times),
        counts=tuple(run.counts),
        scaling=run.scaling,
        graph_breaks=run.breaks,
        host_syncs=run.syncs,
        distances=distances,
        errors=run.errors,
        elapsed_s=time.perf_counter() - started,
        compiled=tuple(run.compiled_steps),
    )


class _Run:
    """The mutable state of one ``run_bench`` call; each method is one stage."""

    def __init__(
        self,
        subjects: Mapping[str, HeadFactory],
        losses: Mapping[str, LossFn],
        reference: str,
        device: torch.device,
        seed: int,
        config: BenchConfig,
        say: Progress,
    ) -> None:
        self.subjects = subjects
        self.losses = losses
        self.reference = reference
        self.device = device
        self.seed = seed
        self.cfg = config
        self.say = say
        self.timer: Timer = cpu_timer
        self.number = config.number
        self.alive: list[str] = list(subjects)
        self.errors: dict[str, str] = {}
        self.limit: Limit | None = None
        self.times: list[StepTimes] = []
        self.counts: list[StepCounts] = []
        self.scaling: dict[str, OpScaling] = {}
        self.breaks: dict[str, GraphBreaks] = {}
        self.syncs: dict[str, HostSyncs] = {}
        self.compiled_steps: list[CompiledStep] = []

    def _fail(self, name: str, stage: str, error: str) -> None:
        self.errors[name] = f"{stage}: {error}"
        if name in self.alive:
            self.alive.remove(name)

    def _build(self, name: str, point: GridPoint, stage: str) -> Any:
        try:
            return build_head(self.subjects[name], point, device=self.device, seed=self.seed)
        except Exception as exc:
            self._fail(name, f"{stage}, building at {point.label}", _describe_error(exc))
            return None

    def measure_limit(self) -> None:
        """Stage 1: the per-operator overhead and the FLOP rate, with the subjects' timer."""
        self.say("limit: per-operator overhead and matmul FLOP rate")
        n = self.cfg.cuda_matmul_n if self.device.type == "cuda" else self.cfg.matmul_n
        try:
            self.limit = measure_limit(
                self.device,
                matmul_n=n,
                overhead_ops=self.cfg.overhead_ops,
                repeats=self.cfg.limit_repeats,
                timer=self.timer,
            )
        except Exception as exc:  # the probes are plain torch ops; record rather than lose the run
            self.errors["(limit)"] = _describe_error(exc)

    def time_point(self, point: GridPoint) -> None:
        """Stage 2: time every kind at ``point`` (interleaved), then count ops and FLOPs."""
        inputs = make_inputs(point, device=self.device, seed=self.seed)
        heads = {name: self._build(name, point, "timing") for name in list(self.alive)}
        heads = {name: head for name, head in heads.items() if head is not None}
        for kind in self.cfg.kinds:
            self.say(f"timing {kind} step at {point.label}: {', '.join(heads)}")
            steps = {name: _Guarded(make_step(kind, heads[name], inputs, self.losses[name])) for name in heads}
            for step in steps.values():  # one call each: a raising subject is dropped before timing
                step()
            samples = interleaved(
                {n: s for n, s in steps.items() if s.error is None},
                self.cfg.repeats,
                self.cfg.warmup,
                timer=self.timer,
                number=self.number,
            )
            for name, step in steps.items():
                if step.error is not None:
                    samples.pop(name, None)
                    self._fail(name, f"{kind} step at {point.label}", step.error)
                    heads.pop(name, None)
            stats = {name: summarize(s) for name, s in samples.items()}
            ref = stats.get(self.reference)
            self.times.append(
                StepTimes(
                    kind=kind,
                    point=point,
                    number=self.number,
                    stats=stats,
                    samples={name: tuple(s) for name, s in samples.items()},
                    ratios={name: (ratio(st, ref) if ref is not None else None) for name, st in stats.items()},
                )
            )
            for name in samples:
                step_fn = steps[name].fn
                try:
                    ops = count_ops(step_fn, warmup=0)
                    flops = count_flops(step_fn)
                except Exception as exc:
                    self._fail(name, f"counting the {kind} step at {point.label}", _describe_error(exc))
                    heads.pop(name, None)
                    continue
                self.counts.append(StepCounts(name, kind, point, ops.total, flops, ops.top()))

    def op_scaling(self) -> None:
        """Stage 3: operators per training step at each ``op_classes`` count, and the fit."""
        cfg = self.cfg
        for name in list(self.alive):
            self.say(f"op count of {name} at num_classes {', '.join(map(str, cfg.op_classes))}")
            classes: list[int] = []
            ops: list[int] = []
            error: str | None = None
            for c in cfg.op_classes:
                point = GridPoint.of(cfg.op_batch, c, cfg.op_emb_dim)
                try:
                    head = build_head(self.subjects[name], point, device=self.device, seed=self.seed)
                    step = train_step(head, make_inputs(point, device=self.device, seed=self.seed), self.losses[name])
                    ops.append(count_ops(step, warmup=1).total)
                    classes.append(c)
                except Exception as exc:
                    error = f"at num_classes={c}: {_describe_error(exc)}"
                    break
            fit = fit_growth(classes, ops) if len(set(classes)) >= 2 else None
            self.scaling[name] = OpScaling(cfg.op_batch, cfg.op_emb_dim, tuple(classes), tuple(ops), fit, error)

    def graph_breaks(self) -> None:
        """Stage 4: ``torch._dynamo.explain`` on the training forward with labels."""
        point = self.cfg.graph_break_point
        inputs = make_inputs(point, device=self.device, seed=self.seed)
        for name in list(self.alive):
            self.say(f"graph breaks of {name} at {point.label}")
            head = self._build(name, point, "graph breaks")
            if head is None:
                continue
            head.train()
            loss_of = self.losses[name]

            def forward(
                pool: torch.Tensor, img: torch.Tensor, labels: torch.Tensor, head: Any = head, loss_of: LossFn = loss_of
            ) -> Any:
                return loss_of(head(pool, img, labels)).sum()

            self.breaks[name] = graph_breaks(
                forward,
                inputs.pool_img_features,
                inputs.img_features,
                inputs.labels,
                num_classes=point.num_classes,
                batch=point.batch,
            )

    def _training_forward(self, name: str, head: Any) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Any]:
        """The training forward with labels, reduced to the scalar loss (what is traced)."""
        head.train()
        loss_of = self.losses[name]

        def forward(pool: torch.Tensor, img: torch.Tensor, labels: torch.Tensor) -> Any:
            return loss_of(head(pool, img, labels)).sum()

        return forward

    def compiled(self, point: GridPoint) -> None:
        """Stage 5: the training step under ``torch.compile`` at ``point``, beside it eager.

        First every subject's training forward at ``point`` goes through
        ``torch._dynamo.explain``: with breaks the row is ``n/a`` (their count and the
        first reason), an explain that raises is ``error``. Then each
        head without breaks is compiled (``torch.compile(head, fullgraph=True)``: a break
        that explain missed raises instead of silently falling back to eager) and its
        step (``zero_grad``, compiled forward, loss, backward through the compiled graph)
        is called twice: the first call compiles (its wall time is ``compile_s``), the
        second runs what was compiled. A raise in either is that head's ``error`` row.
        Explaining resets dynamo's caches, so it all happens before the first compile.
        Last, every compiled step and the same subject's eager step are timed
        interleaved in one loop, warm-up rounds dropped as for the other rows, with
        ``error_on_recompile`` set: a recompilation inside the loop (compile time in a
        sample) is an error of that row, never a time.
        """
        import torch._dynamo as dynamo  # imported only when compiled rows are asked for

        inputs = make_inputs(point, device=self.device, seed=self.seed)
        args = (inputs.pool_img_features, inputs.img_features, inputs.labels)
        rows: dict[str, CompiledStep] = {}
        heads: dict[str, Any] = {}
        for name in list(self.alive):
            self.say(f"graph breaks of {name} at {point.label} (for torch.compile)")
            head = self._build(name, point, "compiled step")
            if head is None:
                continue
            found = graph_breaks(
                self._training_forward(name, head), *args, num_classes=point.num_classes, batch=point.batch
            )
            if found.error is not None:
                rows[name] = CompiledStep(name, point, "error", error=found.error)
            elif found.graph_break_count is not None and found.graph_break_count > 0:
                first = found.reasons[0] if found.reasons else None
                where = f" ({first.location})" if first is not None and first.location else ""
                reason = f"{first.reason}{where}" if first is not None else None
                rows[name] = CompiledStep(name, point, "n/a", graph_breaks=found.graph_break_count, reason=reason)
            else:  # no break (or nothing traced: compiling with fullgraph=True then raises what stopped it)
                heads[name] = head
        fns: dict[str, Callable[[], None]] = {}
        for name, head in heads.items():
            self.say(f"torch.compile of {name}'s training step at {point.label}")
            loss_of = self.losses[name]
            try:
                traced = torch.compile(head, backend=self.cfg.compile_backend, fullgraph=True, dynamic=False)

                def step(head: Any = head, traced: Any = traced, loss_of: LossFn = loss_of) -> None:
                    head.zero_grad(set_to_none=True)
                    loss_of(traced(*args)).sum().backward()

                head.train()
                with warnings.catch_warnings():  # inductor's own deprecation notices, not the subject's words
                    warnings.simplefilter("ignore", DeprecationWarning)
                    started = time.perf_counter()
                    step()
                    compile_s = time.perf_counter() - started
                    step()
            except Exception as exc:  # inductor, a C++ compiler or the head: that head's row, not the run
                rows[name] = CompiledStep(name, point, "error", graph_breaks=0, error=_describe_error(exc))
                continue
            eager = train_step(head, inputs, loss_of)
            eager()
            fns[f"{name}\x00compiled"], fns[f"{name}\x00eager"] = step, eager
            rows[name] = CompiledStep(name, point, "timed", graph_breaks=0, compile_s=compile_s)
        if fns:
            self.say(f"timing compiled and eager training steps at {point.label}")
            guarded = {key: _Guarded(fn) for key, fn in fns.items()}
            with dynamo.config.patch(error_on_recompile=True):
                samples = interleaved(guarded, self.cfg.repeats, self.cfg.warmup, timer=self.timer, number=self.number)
            reference = summarize(samples.get(f"{self.reference}\x00compiled", []))
            for name, row in list(rows.items()):
                if row.status != "timed":
                    continue
                failed = guarded[f"{name}\x00compiled"].error or guarded[f"{name}\x00eager"].error
                if failed is not None:
                    rows[name] = dataclasses.replace(row, status="error", error=failed)
                    continue
                compiled = summarize(samples[f"{name}\x00compiled"])
                eager_stats = summarize(samples[f"{name}\x00eager"])
                rows[name] = dataclasses.replace(
                    row,
                    compiled=compiled,
                    eager=eager_stats,
                    speedup=ratio(eager_stats, compiled),
                    ratio=ratio(compiled, reference),
                )
        dynamo.reset()
        self.compiled_steps.extend(rows[name] for name in self.subjects if name in rows)

    def host_syncs(self) -> None:
        """Stage 6: host syncs per training step (``n/a`` off CUDA)."""
        point = self.cfg.sync_point
        inputs = make_inputs(point, device=self.device, seed=self.seed)
        for name in list(self.alive):
            if self.device.type != "cuda":
                self.syncs[name] = host_syncs(lambda: None, self.device)
                continue
            self.say(f"host syncs of {name} at {point.label}")
            head = self._build(name, point, "host syncs")
            if head is None:
                continue
            try:
                self.syncs[name] = host_syncs(train_step(head, inputs, self.losses[name]), self.device)
            except Exception as exc:
                self.syncs[name] = HostSyncs(None, "the step raised", _describe_error(exc))

    def distances(self) -> tuple[Distance, ...]:
        """Stage 7: measured p10 over ``max(FLOP floor, overhead floor)`` per timed cell."""
        if self.limit is None:
            return ()
        out: list[Distance] = []
        for row in self.times:
            for name, stats in row.stats.items():
                counted = next(
                    (c for c in self.counts if c.subject == name and c.kind == row.kind and c.point == row.point),
                    None,
                )
                if counted is None:
                    continue
                out.append(distance(name, row.kind, row.point, stats.p10, counted.flops, counted.ops, self.limit))
        return tuple(out)
