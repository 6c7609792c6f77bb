"""The benchmark grid: which input sizes are timed and counted (no torch here).

The issue's grid is batch 1/8/32/64 x ``num_classes`` 7/32 x ``emb_dim`` 256/768 with 49
patches; operators per step are counted at ``num_classes`` 4/8/16/32. ``7`` is the
recommended setup (BEHAVIOR.md 6); ``32`` shows what the per-class loops cost.

Batch 1 is there for equal work: a head that attends per sample (``head_fixed.py``)
does about 8x the FLOPs of a batched one at batch 32, so its time there is mostly its
extra arithmetic; at batch 1 the per-sample and the batched designs do the same
arithmetic and the per-operator overhead decides. Which rows compare equal work is
read from the FLOP counts measured at each point, not assumed
(:func:`headaudit.checks.perf.equal_work`).

The training step under ``torch.compile`` (``compiled_points``) is not part of the
quick or the full grid by default: compiling a head's forward and backward with
inductor takes from tens of seconds to minutes on a 2-core CPU (``head_fixed.py`` at
batch 32: about 3 minutes). :meth:`BenchConfig.with_compiled` adds it at batch 1
(``headaudit bench --compiled``).

:class:`BenchConfig` bundles one run's choices: :meth:`BenchConfig.quick` (the default
of ``headaudit bench``, under a minute on a 2-core CPU) and :meth:`BenchConfig.full`
(the whole grid, minutes).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from headaudit.bench.results import GridPoint, Kind

__all__ = [
    "BATCHES",
    "CI_POINT",
    "COMPILED_POINT",
    "EMB_DIMS",
    "EQUAL_WORK",
    "KINDS",
    "NUM_CLASSES",
    "OP_COUNT_CLASSES",
    "PATCHES",
    "BenchConfig",
    "grid",
]

BATCHES: tuple[int, ...] = (1, 8, 32, 64)
NUM_CLASSES: tuple[int, ...] = (7, 32)
EMB_DIMS: tuple[int, ...] = (256, 768)
PATCHES = 49
OP_COUNT_CLASSES: tuple[int, ...] = (4, 8, 16, 32)
KINDS: tuple[Kind, ...] = ("train", "forward")

#: The point the benchmarks run in CI besides :data:`COMPILED_POINT` (batch 8, the
#: smallest model of the grid).
CI_POINT = GridPoint.of(8, 7, 256)

#: Two steps do equal work (``headaudit.checks.perf.equal_work``) when their FLOPs per
#: step differ by at most this fraction: BENCH.md measured the p10 ratio stable to 1-2 %
#: on these machines, so a difference of work below 2 % cannot be what a ratio shows,
#: even for a FLOP-bound step. (The references at batch 1, 7 classes, emb_dim 256:
#: head_fixed.py 1.0 % above head.py, head_optimal.py 0.05 %; at batch 32 head_fixed.py
#: does 8.3x.)
EQUAL_WORK = 0.02

#: Where ``--compiled`` times the compiled training step: batch 1, equal work for the
#: family, and the point where fusing operators matters most (the step is overhead-bound).
COMPILED_POINT = GridPoint.of(1, 7, 256)


def grid(
    batches: Iterable[int] = BATCHES,
    num_classes: Iterable[int] = NUM_CLASSES,
    emb_dims: Iterable[int] = EMB_DIMS,
) -> tuple[GridPoint, ...]:
    """All combinations, ordered by model size then batch (the table's reading order)."""
    return tuple(
        GridPoint.of(b, c, e) for e, c, b in itertools.product(tuple(emb_dims), tuple(num_classes), tuple(batches))
    )


@dataclass(frozen=True)
class BenchConfig:
    """What one ``run_bench`` measures and how hard it tries.

    - ``points`` x ``kinds`` are timed, subjects interleaved (``warmup`` rounds dropped,
      then ``repeats`` samples each of ``number`` calls; CUDA uses ``cuda_number``).
      Ops and FLOPs per step are counted at the same points (the distance to the floor
      needs them where the time was taken).
    - ``op_classes`` at ``op_batch`` / ``op_emb_dim``: the operator-count series. The
      count does not depend on the widths (the references give the same counts at
      ``emb_dim`` 32 and 256, and at any batch that covers every class), so a small
      ``op_emb_dim`` keeps the series cheap; the full mode uses 256 all the same.
    - ``graph_break_point``: where ``torch._dynamo.explain`` runs (graph breaks do not
      depend on sizes, only on the per-class loops it unrolls, so it is small).
    - ``sync_point``: where host syncs are counted (CUDA only).
    - ``trace_breaks``: whether the graph-break stage runs (``torch._dynamo.explain`` at
      ``graph_break_point``; its numbers go to the JSON only, the report shows
      ``compile.graph-breaks``'). The quick mode leaves it out: importing dynamo alone
      costs about 8 s on a 2-core CPU.
    - ``compiled_points``: where the training step is timed under ``torch.compile``
      (``compile_backend``, ``fullgraph=True``) beside the same step eager, for subjects
      whose training forward has no graph break there (empty: not measured).
    - ``threads``: intra-op threads while timing on CPU (BENCH.md: 1).
    - ``matmul_n`` / ``cuda_matmul_n``, ``overhead_ops``: the limit's probes.
    """

    mode: Literal["quick", "full"]
    points: tuple[GridPoint, ...]
    kinds: tuple[Kind, ...] = KINDS
    repeats: int = 15
    warmup: int = 3
    number: int = 1
    cuda_number: int = 10
    op_classes: tuple[int, ...] = OP_COUNT_CLASSES
    op_batch: int = 64
    op_emb_dim: int = 64
    graph_break_point: GridPoint = field(default_factory=lambda: GridPoint.of(8, 4, 256))
    trace_breaks: bool = True
    compiled_points: tuple[GridPoint, ...] = ()
    compile_backend: str = "inductor"
    sync_point: GridPoint = field(default_factory=lambda: GridPoint.of(32, 7, 256))
    threads: int = 1
    matmul_n: int = 512
    cuda_matmul_n: int = 4096
    overhead_ops: int = 200
    limit_repeats: int = 15

    def __post_init__(self) -> None:
        if self.mode not in ("quick", "full"):
            raise ValueError(f"BenchConfig.mode must be 'quick' or 'full', got {self.mode!r}")
        if not self.points:
            raise ValueError("BenchConfig.points is empty: give at least one grid point to time")
        if self.repeats < 1 or self.warmup < 0 or self.number < 1 or self.cuda_number < 1:
            raise ValueError(
                f"repeats, number and cuda_number must be >= 1 and warmup >= 0, got repeats={self.repeats!r}, "
                f"warmup={self.warmup!r}, number={self.number!r}, cuda_number={self.cuda_number!r}"
            )
        if self.op_classes and self.op_batch < max(self.op_classes):
            raise ValueError(
                f"op_batch={self.op_batch!r} is smaller than the largest op class count {max(self.op_classes)!r}: "
                "some classes would be absent and their loops would not run"
            )

    @classmethod
    def quick(cls) -> BenchConfig:
        """The default: the batch sweep (1, 8, 32, 64) at the recommended 7 classes and
        ``emb_dim`` 256, the op-count series and the limit; about 50 s for three heads
        (``headaudit bench`` with the control) on an idle 2-core CPU.

        One warm-up round: before it, the bench has already called every step once (to
        drop a raising subject before timing), so each step runs twice before its first
        sample, which is what BENCH.md asks of a warm-up (libraries loaded, the allocator
        holding the step's buffers; a third call has no first-call cost left)."""
        return cls(mode="quick", points=grid(BATCHES, (7,), (256,)), repeats=15, warmup=1, trace_breaks=False)

    def with_compiled(self, points: tuple[GridPoint, ...] = (COMPILED_POINT,)) -> BenchConfig:
        """This config plus the compiled training step at ``points`` (which explains its own graph breaks)."""
        return dataclasses.replace(self, compiled_points=points)

    @classmethod
    def full(cls) -> BenchConfig:
        """The whole grid with more repeats and a larger matmul probe (about 6-8 minutes
        for two heads on a 2-core CPU, most of it in the ``emb_dim`` 768 points)."""
        return cls(mode="full", points=grid(), repeats=21, warmup=3, op_emb_dim=256, matmul_n=1024, limit_repeats=21)
