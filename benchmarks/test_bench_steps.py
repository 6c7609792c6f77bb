"""pytest-benchmark: one training step and one forward pass of each reference head.

Grid: batch 8/32/64 x ``num_classes`` 7/32 x ``emb_dim`` 256/768, 49 patches, on CPU
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

import pytest
import torch
from pytest_benchmark.fixture import BenchmarkFixture

from headaudit.bench.counts import count_flops, count_ops
from headaudit.bench.grid import KINDS
from headaudit.bench.results import GridPoint, Kind
from headaudit.bench.step import Step, StepInputs, build_head, make_inputs, make_step, reference_factories
from headaudit.bench.timers import cpu_timer, synchronised

SUBJECTS = reference_factories()
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
