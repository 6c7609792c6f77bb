"""Count facts of the reference heads that must hold on every machine.

Counts do not depend on speed, so these are exact assertions (BENCH.md, "Counts that do
not depend on the machine"). They run in CI as plain tests; ``--benchmark-only`` skips
them. Widths are small because the operator count does not depend on them.
"""

from __future__ import annotations

import pytest
import torch

from headaudit.bench.counts import count_flops, count_ops, host_syncs
from headaudit.bench.fit import fit_growth
from headaudit.bench.grid import OP_COUNT_CLASSES
from headaudit.bench.results import GridPoint
from headaudit.bench.step import build_head, forward_step, make_inputs, reference_factories, train_step
from headaudit.bench.timers import CudaEventTimer, interleaved, summarize

SUBJECTS = reference_factories()
EMB = 32  # the op count is the same at 32 and 256; small widths keep CI fast


def _train_ops(subject: str, point: GridPoint, device: str) -> int:
    head = build_head(SUBJECTS[subject], point, device=device)
    return count_ops(train_step(head, make_inputs(point, device=device)), warmup=1).total


@pytest.mark.parametrize("subject", list(SUBJECTS))
def test_op_count_grows_with_classes(subject: str, bench_device: str) -> None:
    """Per-class Python loops: more classes, more operators; the nested separation loop
    adds a quadratic term (the fitted exponent is above 1 and the slopes rise)."""
    batch = max(OP_COUNT_CLASSES)
    ops = [_train_ops(subject, GridPoint.of(batch, c, EMB), bench_device) for c in OP_COUNT_CLASSES]
    assert ops == sorted(ops)
    assert len(set(ops)) == len(ops)
    fit = fit_growth(OP_COUNT_CLASSES, ops)
    assert fit.exponent > 1.0
    assert fit.quadratic is not None
    assert fit.quadratic[2] > 0.0
    assert list(fit.local_exponents) == sorted(fit.local_exponents)


@pytest.mark.parametrize("subject", list(SUBJECTS))
def test_op_count_does_not_depend_on_width_or_batch(subject: str, bench_device: str) -> None:
    counts = {_train_ops(subject, GridPoint.of(b, 7, e), bench_device) for b, e in ((8, 32), (16, 64))}
    assert len(counts) == 1


@pytest.mark.parametrize("subject", list(SUBJECTS))
def test_training_step_costs_more_than_forward(subject: str, bench_device: str) -> None:
    point = GridPoint.of(8, 7, EMB)
    head = build_head(SUBJECTS[subject], point, device=bench_device)
    inputs = make_inputs(point, device=bench_device)
    train = train_step(head, inputs)
    train_ops, train_flops = count_ops(train).total, count_flops(train)
    forward = forward_step(head, inputs)
    forward_ops, forward_flops = count_ops(forward).total, count_flops(forward)
    assert 0 < forward_ops < train_ops
    assert 0 < forward_flops < train_flops


@pytest.mark.parametrize("subject", list(SUBJECTS))
def test_flops_grow_with_batch(subject: str) -> None:
    flops = []
    for batch in (8, 16):
        point = GridPoint.of(batch, 7, EMB)
        head = build_head(SUBJECTS[subject], point)
        flops.append(count_flops(train_step(head, make_inputs(point))))
    assert 0 < flops[0] < flops[1]


@pytest.mark.parametrize("subject", list(SUBJECTS))
def test_host_syncs_per_step(subject: str, bench_device: str) -> None:
    """On CUDA both heads read ``protos_per_class`` with ``.item()`` once per class (and
    more), so a step synchronises at least ``num_classes`` times; on CPU it is n/a."""
    point = GridPoint.of(8, 7, EMB)
    head = build_head(SUBJECTS[subject], point, device=bench_device)
    syncs = host_syncs(train_step(head, make_inputs(point, device=bench_device)), bench_device)
    if bench_device == "cpu":
        assert syncs.count is None
        assert "n/a" in syncs.note
    else:
        assert syncs.count is not None
        assert syncs.count >= point.num_classes


NO_CUDA = "CUDA not available (torch.cuda.is_available() is False: a CPU build or no GPU)"


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
def test_cuda_event_timer_times_queued_work() -> None:
    """CUDA events see the device work that ``perf_counter`` alone would miss: a large
    matmul timed with events takes longer than zero and longer than a tiny one."""
    x = torch.randn(2048, 2048, device="cuda")
    small = torch.randn(8, 8, device="cuda")
    timer = CudaEventTimer()
    samples = interleaved(
        {"big": lambda: torch.mm(x, x), "small": lambda: torch.mm(small, small)}, 5, 2, timer=timer, number=3
    )
    big, tiny = summarize(samples["big"]), summarize(samples["small"])
    assert big.p10 is not None
    assert tiny.p10 is not None
    assert big.p10 > tiny.p10 > 0.0
