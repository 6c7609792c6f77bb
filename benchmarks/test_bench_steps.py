"""pytest-benchmark: one training step and one forward pass of each reference head.

Grid: batch 1/8/32/64 x ``num_classes`` 7/32 x ``emb_dim`` 256/768, 49 patches, on CPU
(one intra-op thread) and on CUDA where available (``conftest.py`` parametrizes
``bench_point`` and ``bench_device``). Pedantic mode: fixed rounds after warm-up rounds.

CPU: ``perf_counter`` around each round of ``iterations`` steps, calibrated so a round
lasts at least about 1 ms (a step here takes several ms, so usually 1).

CUDA: a kernel launch returns as soon as the kernel is queued, so ``perf_counter``
alone around a round would time the launches, not the work, and leave the queued work
to be billed to the next round. Each CUDA round is therefore
:func:`~headaudit.bench.timers.synchronised`: ``CUDA_STEPS`` steps then
``torch.cuda.synchronize()``; the warm-up rounds also end synchronised, so each round
starts on an idle device. Reported times are per round: divide by
``extra_info["steps_per_round"]``. (``run_bench`` times CUDA with events instead.)

After timing, each body asserts facts that hold whatever the speed (ops and FLOPs per
step are positive, gradients reach the prototypes, logits have the right shape), so
the benchmarks fail when the step breaks, also under ``--benchmark-disable``.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from pytest_benchmark.fixture import BenchmarkFixture

from headaudit.bench.counts import count_flops, count_ops, graph_breaks
from headaudit.bench.grid import COMPILED_POINT, KINDS
from headaudit.bench.results import GridPoint, Kind
from headaudit.bench.step import (
    Step,
    StepInputs,
    build_head,
    default_loss,
    make_inputs,
    make_step,
    reference_factories,
)
from headaudit.bench.timers import cpu_timer, synchronised

SUBJECTS = reference_factories()
FULL_GRID = os.environ.get("HEADAUDIT_BENCH_GRID", "").strip().lower() == "full"
COMPILE_REASON = "the compiled step takes minutes to compile; set HEADAUDIT_BENCH_GRID=full to run it"
ROUNDS = 20
WARMUP_ROUNDS = 3
CUDA_STEPS = 10
MIN_ROUND_S = 1e-3


def _iterations(step: Step) -> int:
    """Calls per round so that a round lasts at least :data:`MIN_ROUND_S`."""
    step()
    seconds = cpu_timer(step, 1)
    return max(1, math.ceil(MIN_ROUND_S / max(seconds, 1e-9)))


def _assert_step_facts(kind: Kind, head: torch.nn.Module, inputs: StepInputs, step: Step) -> dict[str, int]:
    ops = count_ops(step, warmup=0).total
    flops = count_flops(step)
    assert ops > 0
    assert flops > 0
    point = inputs.point
    if kind == "train":
        grad = head.proto_manager.prototypes.grad
        assert grad is not None, "the training step did not reach proto_manager.prototypes"
        assert torch.isfinite(grad).all()
    else:
        assert not head.training
        with torch.no_grad():
            logits = head(inputs.pool_img_features, inputs.img_features)[0]
        assert logits.shape == (point.batch, point.num_classes)
        assert torch.isfinite(logits).all()
    return {"ops_per_step": ops, "flops_per_step": flops}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("subject", list(SUBJECTS))
def test_step(benchmark: BenchmarkFixture, subject: str, kind: Kind, bench_point: GridPoint, bench_device: str) -> None:
    head = build_head(SUBJECTS[subject], bench_point, device=bench_device)
    inputs = make_inputs(bench_point, device=bench_device)
    step = make_step(kind, head, inputs)
    benchmark.group = f"{kind} {bench_point.label} {bench_device}"
    benchmark.extra_info.update(
        subject=subject, kind=kind, point=bench_point.label, device=bench_device, threads=torch.get_num_threads()
    )
    if bench_device == "cuda":
        benchmark.extra_info["steps_per_round"] = CUDA_STEPS
        benchmark.pedantic(synchronised(step, CUDA_STEPS), rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS)
    else:
        iterations = _iterations(step) if benchmark.enabled else 1
        benchmark.extra_info["iterations"] = iterations  # pytest-benchmark reports per iteration: per step
        benchmark.pedantic(step, rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS, iterations=iterations)
    benchmark.extra_info.update(_assert_step_facts(kind, head, inputs, step))


@pytest.mark.bench_full
@pytest.mark.skipif(not FULL_GRID, reason=COMPILE_REASON)
@pytest.mark.parametrize("subject", list(SUBJECTS))
def test_compiled_step(benchmark: BenchmarkFixture, subject: str) -> None:
    """The training step under ``torch.compile`` at batch 1 (CPU), for a head without graph breaks.

    A head whose training forward breaks the graph is skipped with the count and the first
    reason (its compiled step would fall back to eager between graphs: not the compiled
    head). The first call compiles and is a warm-up round's business, never a timed one;
    ``fullgraph=True`` turns a break that explain missed into an error.
    """
    point = COMPILED_POINT
    head = build_head(SUBJECTS[subject], point)
    inputs = make_inputs(point)
    head.train()
    args = (inputs.pool_img_features, inputs.img_features, inputs.labels)

    def forward(pool: torch.Tensor, img: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return default_loss(head(pool, img, labels)).sum()

    breaks = graph_breaks(forward, *args, num_classes=point.num_classes, batch=point.batch)
    assert breaks.error is None, breaks.error
    if breaks.graph_break_count:
        first = breaks.reasons[0].reason if breaks.reasons else "?"
        pytest.skip(f"n/a: {breaks.graph_break_count} graph breaks (first: {first})")
    traced = torch.compile(head, fullgraph=True, dynamic=False)

    def step() -> None:
        head.zero_grad(set_to_none=True)
        default_loss(traced(*args)).sum().backward()

    step()  # compiles: outside every round
    benchmark.group = f"train-compiled {point.label} cpu"
    benchmark.extra_info.update(
        subject=subject, kind="train-compiled", point=point.label, threads=torch.get_num_threads()
    )
    benchmark.pedantic(step, rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS, iterations=1)
    grad = head.proto_manager.prototypes.grad
    assert grad is not None, "the compiled training step did not reach proto_manager.prototypes"
    assert torch.isfinite(grad).all()
