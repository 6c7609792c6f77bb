"""The limit: how fast a step could be on this machine, measured in the same run.

A step takes at least ``max(FLOPs / peak, bytes / bandwidth, ops x per-op overhead)``
(BENCH.md). Two probes measure what this machine achieves now, under the same thread
setting and load as the subjects:

- the per-operator overhead: a loop of ``torch.add`` on two one-element tensors, whose
  arithmetic is nothing, so its time is the eager dispatch path (Python binding,
  dispatcher, allocation; on CUDA the kernel launch);
- the achievable FLOP rate: a large square float32 matmul (``2 n^3`` FLOPs).

The memory-bandwidth floor is left out: these heads move a few MB per step, far below
either of the other two floors. Small heads are overhead-bound, so the floor is mostly
``ops x overhead``; views (``slice``, ``select``) cost less than the probe's ``add``, so
read the overhead floor as an estimate, and a distance near 1 as "at the limit".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from headaudit.bench.results import Distance, GridPoint, Kind, Limit
from headaudit.bench.timers import Timer, cpu_timer, interleaved, summarize

__all__ = ["Floor", "distance", "floor", "measure_limit", "measure_matmul_rate", "measure_op_overhead"]

_OVERHEAD_OP = "aten.add of two 1-element float32 tensors"


def measure_op_overhead(
    device: str | torch.device = "cpu", *, ops: int = 200, repeats: int = 15, warmup: int = 2, timer: Timer = cpu_timer
) -> float:
    """p10 seconds of one trivial operator (:data:`_OVERHEAD_OP`), ``ops`` per sample."""
    a = torch.ones(1, device=device)
    b = torch.ones(1, device=device)

    def add() -> None:
        torch.add(a, b)

    stats = summarize(interleaved({"add": add}, repeats, warmup, timer=timer, number=ops)["add"])
    assert stats.p10 is not None
    return stats.p10


def measure_matmul_rate(
    device: str | torch.device = "cpu", *, n: int = 512, repeats: int = 5, warmup: int = 1, timer: Timer = cpu_timer
) -> float:
    """FLOP/s of an ``n x n`` float32 matmul at its p10 time (``2 n^3`` FLOPs)."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(n, n, generator=gen).to(device)
    y = torch.randn(n, n, generator=gen).to(device)

    def mm() -> None:
        torch.mm(x, y)

    stats = summarize(interleaved({"mm": mm}, repeats, warmup, timer=timer)["mm"])
    assert stats.p10 is not None
    return 2.0 * n**3 / stats.p10


def measure_limit(
    device: str | torch.device = "cpu",
    *,
    matmul_n: int = 512,
    overhead_ops: int = 200,
    repeats: int = 15,
    timer: Timer = cpu_timer,
) -> Limit:
    """Both probes with ``timer`` (use the subjects' timer and thread setting)."""
    overhead = measure_op_overhead(device, ops=overhead_ops, repeats=repeats, timer=timer)
    rate = measure_matmul_rate(device, n=matmul_n, repeats=max(3, repeats // 3), timer=timer)
    return Limit(
        per_op_overhead_s=overhead,
        overhead_op=_OVERHEAD_OP,
        flop_rate=rate,
        matmul_n=matmul_n,
        threads=torch.get_num_threads(),
    )


@dataclass(frozen=True)
class Floor:
    """``max(flops / flop_rate, ops * per_op_overhead)`` with both parts kept."""

    flop_floor_s: float
    overhead_floor_s: float

    @property
    def seconds(self) -> float:
        return max(self.flop_floor_s, self.overhead_floor_s)

    @property
    def bound(self) -> Literal["flops", "overhead"]:
        """Which floor is higher (ties go to ``"overhead"``)."""
        return "flops" if self.flop_floor_s > self.overhead_floor_s else "overhead"


def floor(flops: int, ops: int, limit: Limit) -> Floor:
    """The floor of a step with ``flops`` FLOPs and ``ops`` operators on ``limit``'s machine."""
    if flops < 0 or ops < 0:
        raise ValueError(f"flops and ops must be >= 0, got flops={flops!r}, ops={ops!r}")
    if limit.flop_rate <= 0 or limit.per_op_overhead_s < 0:
        raise ValueError(f"limit must have a positive FLOP rate and a non-negative overhead, got {limit!r}")
    return Floor(flops / limit.flop_rate, ops * limit.per_op_overhead_s)


def distance(
    subject: str,
    kind: Kind,
    point: GridPoint,
    measured_p10_s: float | None,
    flops: int,
    ops: int,
    limit: Limit,
) -> Distance:
    """How many times its floor ``subject``'s measured p10 is (``None`` without a time or
    with a zero floor)."""
    f = floor(flops, ops, limit)
    value = None if measured_p10_s is None or f.seconds <= 0 else measured_p10_s / f.seconds
    return Distance(
        subject=subject,
        kind=kind,
        point=point,
        measured_p10_s=measured_p10_s,
        flop_floor_s=f.flop_floor_s,
        overhead_floor_s=f.overhead_floor_s,
        floor_s=f.seconds,
        bound=f.bound,
        distance=value,
    )
