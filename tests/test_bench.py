"""Tests of ``headaudit.bench``: the pure parts exactly, the measuring parts by structure.

No test asserts a speed (machines are shared and noisy): times are only checked to be
positive and finite; counts, orders, schemas and arithmetic are checked exactly.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import warnings
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from headaudit.bench.counts import (
    SYNC_WARNING,
    count_flops,
    count_sync_warnings,
    graph_breaks,
    host_syncs,
    shorten_reason,
)
from headaudit.bench.fit import fit_growth
from headaudit.bench.grid import CI_POINT, COMPILED_POINT, EQUAL_WORK, OP_COUNT_CLASSES, BenchConfig, grid
from headaudit.bench.limit import distance, floor, measure_limit
from headaudit.bench.plots import PLOT_FILES, plots_available, write_plots
from headaudit.bench.results import (
    SCHEMA_VERSION,
    BenchResult,
    BreakReason,
    Environment,
    GraphBreaks,
    GridPoint,
    HostSyncs,
    Limit,
    OpScaling,
    SampleStats,
    StepTimes,
    result_filename,
)
from headaudit.bench.run import resolve_device, run_bench
from headaudit.bench.step import (
    build_head,
    default_loss,
    forward_step,
    make_inputs,
    make_step,
    reference_factories,
    train_step,
)
from headaudit.bench.timers import (
    CudaEventTimer,
    cuda_sync_perf_counter,
    interleaved,
    interleaving_order,
    intra_op_threads,
    quantile,
    ratio,
    summarize,
)
from headaudit.checks.perf import equal_work
from headaudit.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
NO_CUDA = not torch.cuda.is_available()
SMALL = GridPoint.of(4, 4, 32)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny tensors run fastest on one thread; two on a shared 2-core machine thrash."""
    with intra_op_threads(1):
        yield


# -- statistics, ratios, interleaving ---------------------------------------------------


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=40), st.floats(0.0, 1.0))
def test_quantile_matches_numpy_linear(values: list[float], q: float) -> None:
    assert quantile(values, q) == pytest.approx(float(np.quantile(values, q)), rel=1e-9, abs=1e-6)


def test_quantile_rejects_empty_and_bad_q() -> None:
    with pytest.raises(ValueError, match="empty"):
        quantile([], 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        quantile([1.0], 1.5)


def test_summarize_values() -> None:
    stats = summarize([float(v) for v in range(1, 12)])  # 1..11
    assert stats == SampleStats(n=11, p10=2.0, median=6.0, q25=3.5, q75=8.5, iqr=5.0, min=1.0, max=11.0)


def test_summarize_empty_and_non_finite() -> None:
    assert summarize([]) == SampleStats(0, None, None, None, None, None, None, None)
    stats = summarize([1.0, math.nan, 3.0, math.inf])
    assert stats.n == 2
    assert stats.median == 2.0


def test_ratio_is_p10_over_p10() -> None:
    subject = [2.0, 2.0, 4.0, 8.0]
    reference = [1.0, 1.0, 9.0, 9.0]
    assert ratio(subject, reference) == pytest.approx(2.0)
    assert ratio(summarize(subject), summarize(reference)) == pytest.approx(2.0)
    assert ratio(subject, []) is None
    assert ratio([], reference) is None
    assert ratio(subject, [0.0]) is None


def test_interleaving_order_abba() -> None:
    assert interleaving_order(["A", "B"], 4) == ["A", "B", "B", "A", "A", "B", "B", "A"]
    assert interleaving_order(["A", "B", "C"], 2) == ["A", "B", "C", "C", "B", "A"]


def test_interleaved_calls_one_by_one_and_drops_warmup() -> None:
    calls: list[str] = []

    def fake_timer(fn: Any, number: int) -> float:
        assert number == 1
        fn()
        return float(len(calls))  # the sample is the call's position

    fns = {"A": lambda: calls.append("A"), "B": lambda: calls.append("B")}
    samples = interleaved(fns, repeats=3, warmup=1, timer=fake_timer)
    assert calls == interleaving_order(["A", "B"], 4)
    assert samples == {"A": [4.0, 5.0, 8.0], "B": [3.0, 6.0, 7.0]}


def test_interleaved_passes_number_and_validates() -> None:
    seen: list[int] = []

    def timer(fn: Any, number: int) -> float:
        seen.append(number)
        return 1.0

    interleaved({"A": lambda: None}, 2, 0, timer=timer, number=7)
    assert seen == [7, 7]
    with pytest.raises(ValueError, match="repeats"):
        interleaved({"A": lambda: None}, 0)


def test_intra_op_threads_restores() -> None:
    with intra_op_threads(2) as outer:
        assert outer == 2
        with intra_op_threads(1) as inner:
            assert inner == 1
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    with pytest.raises(ValueError, match="threads"), intra_op_threads(0):
        pass


def test_cuda_sync_perf_counter_is_a_clock_without_cuda() -> None:
    first = cuda_sync_perf_counter()
    assert cuda_sync_perf_counter() >= first


@pytest.mark.skipif(not NO_CUDA, reason="checks the refusal on a machine without CUDA")
def test_cuda_event_timer_refuses_without_cuda() -> None:
    with pytest.raises(RuntimeError, match="CUDA"):
        CudaEventTimer()


# -- growth fit ---------------------------------------------------------------------------


def test_fit_recovers_a_power_law() -> None:
    sizes = [4, 8, 16, 32]
    fit = fit_growth(sizes, [3.0 * s**2 for s in sizes])
    assert fit.exponent == pytest.approx(2.0)
    assert fit.coefficient == pytest.approx(3.0)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.local_exponents == pytest.approx((2.0, 2.0, 2.0))
    assert fit.quadratic == pytest.approx((0.0, 0.0, 3.0), abs=1e-6)


def test_fit_of_linear_plus_quadratic() -> None:
    sizes = [4, 8, 16, 32]
    counts = [600 + 90 * s + 9 * s * s for s in sizes]
    fit = fit_growth(sizes, counts)
    assert 1.0 < fit.exponent < 2.0
    assert fit.quadratic == pytest.approx((600.0, 90.0, 9.0))
    assert list(fit.local_exponents) == sorted(fit.local_exponents)
    assert fit.r2 is not None
    assert 0.9 < fit.r2 <= 1.0


def test_fit_constant_and_two_points() -> None:
    fit = fit_growth([2, 4, 8], [5, 5, 5])
    assert fit.exponent == pytest.approx(0.0, abs=1e-12)
    assert fit.r2 == 1.0
    two = fit_growth([2, 4], [3, 12])
    assert two.exponent == pytest.approx(2.0)
    assert two.quadratic is None


@pytest.mark.parametrize(
    ("sizes", "counts", "match"),
    [
        ([4], [1], "two distinct"),
        ([4, 4], [1, 2], "two distinct"),
        ([2, 4], [0, 3], "positive"),
        ([2, 4], [1], "length"),
    ],
)
def test_fit_rejects_bad_input(sizes: list[int], counts: list[int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit_growth(sizes, counts)


# -- limit arithmetic -----------------------------------------------------------------------

LIMIT = Limit(per_op_overhead_s=5e-6, overhead_op="add", flop_rate=1e9, matmul_n=64, threads=1)


def test_floor_takes_the_larger_part() -> None:
    f = floor(flops=2_000_000, ops=100, limit=LIMIT)
    assert f.flop_floor_s == pytest.approx(2e-3)
    assert f.overhead_floor_s == pytest.approx(5e-4)
    assert f.seconds == pytest.approx(2e-3)
    assert f.bound == "flops"
    g = floor(flops=1000, ops=1000, limit=LIMIT)
    assert g.bound == "overhead"
    assert g.seconds == pytest.approx(5e-3)


def test_distance_is_measured_over_floor() -> None:
    d = distance("s", "train", SMALL, 4e-3, 2_000_000, 100, LIMIT)
    assert d.distance == pytest.approx(2.0)
    assert d.floor_s == pytest.approx(2e-3)
    assert d.bound == "flops"
    assert distance("s", "train", SMALL, None, 1, 1, LIMIT).distance is None
    assert distance("s", "train", SMALL, 1e-3, 0, 0, LIMIT).distance is None
    with pytest.raises(ValueError, match=">= 0"):
        floor(-1, 0, LIMIT)


def test_measure_limit_gives_positive_rates() -> None:
    limit = measure_limit("cpu", matmul_n=64, overhead_ops=20, repeats=3)
    assert limit.per_op_overhead_s > 0.0
    assert limit.flop_rate > 0.0
    assert limit.matmul_n == 64
    assert limit.threads == torch.get_num_threads()


# -- sync warnings, graph breaks ----------------------------------------------------------------


def test_count_sync_warnings_from_recorded_warnings() -> None:
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        for _ in range(3):  # the same line three times: "always" keeps every one
            warnings.warn(f"{SYNC_WARNING} (Triggered internally at CUDAFunctions.cpp:1)", UserWarning, stacklevel=1)
        warnings.warn("an unrelated warning", UserWarning, stacklevel=1)
    assert len(records) == 4
    assert count_sync_warnings(records) == 3
    assert count_sync_warnings([SYNC_WARNING, "other", UserWarning(SYNC_WARNING)]) == 2
    assert count_sync_warnings([]) == 0


def test_host_syncs_not_applicable_on_cpu() -> None:
    ran: list[int] = []
    syncs = host_syncs(lambda: ran.append(1), "cpu")
    assert syncs.count is None
    assert syncs.note.startswith("n/a")
    assert ran == []  # nothing to measure on CPU: the step is not even run


def test_shorten_reason() -> None:
    reason = "Dynamic shape operator\n  Explanation: Operator `aten.nonzero.default`'s output shape\n  Hint: ..."
    assert shorten_reason(reason) == "Dynamic shape operator (aten.nonzero.default)"
    assert shorten_reason("Data-dependent branching\n  Explanation: no op here") == "Data-dependent branching"
    assert shorten_reason("") == "(no reason given)"
    assert len(shorten_reason("x" * 300, limit=50)) == 50


def test_graph_breaks_report_errors_instead_of_raising() -> None:
    def broken(x: torch.Tensor) -> torch.Tensor:
        raise ValueError("boom")

    result = graph_breaks(broken, torch.ones(2), num_classes=1, batch=1)
    assert result.graph_count is None
    assert result.error is not None
    assert "ValueError" in result.error


def test_break_reason_location() -> None:
    assert BreakReason("r", "/a/b/head.py", 64, 1).location == "head.py:64"
    assert BreakReason("r", None, None, 1).location is None


# -- inputs and steps -----------------------------------------------------------------------------


def test_inputs_are_seeded_and_cover_every_class() -> None:
    point = GridPoint.of(9, 4, 16)
    a, b = make_inputs(point, seed=3), make_inputs(point, seed=3)
    assert torch.equal(a.pool_img_features, b.pool_img_features)
    assert torch.equal(a.labels, b.labels)
    assert not torch.equal(a.img_features, make_inputs(point, seed=4).img_features)
    assert a.pool_img_features.shape == (9, 49, 16)
    assert a.img_features.shape == (9, 16)
    assert a.labels.dtype == torch.int64
    assert sorted(a.labels.bincount().tolist()) == [2, 2, 2, 3]


def test_steps_train_and_forward() -> None:
    factory = reference_factories()["head_optimal.py"]
    head = build_head(factory, SMALL)
    assert torch.equal(head.proto_manager.prototypes, build_head(factory, SMALL).proto_manager.prototypes)
    inputs = make_inputs(SMALL)
    train_step(head, inputs)()
    assert head.training
    assert head.proto_manager.prototypes.grad is not None
    make_step("forward", head, inputs)()
    assert not head.training
    with pytest.raises(ValueError, match="unknown step kind"):
        make_step("backward", head, inputs)  # type: ignore[arg-type]


def test_default_loss_needs_a_tensor() -> None:
    loss = torch.ones(1)
    assert default_loss((None, loss)) is loss
    with pytest.raises(TypeError, match="not a loss tensor"):
        default_loss((None, 1.0))


@pytest.mark.parametrize("subject", ["head.py", "head_optimal.py"])
def test_flops_are_positive_and_backward_adds(subject: str) -> None:
    head = build_head(reference_factories()[subject], SMALL)
    inputs = make_inputs(SMALL)
    train = count_flops(train_step(head, inputs))
    forward = count_flops(forward_step(head, inputs))
    assert 0 < forward < train


# -- grid, config, devices ------------------------------------------------------------------------------


def test_grid_is_the_issue_grid() -> None:
    points = grid()
    assert len(points) == 16
    assert {(p.batch, p.num_classes, p.emb_dim) for p in points} == {
        (b, c, e) for b in (1, 8, 32, 64) for c in (7, 32) for e in (256, 768)
    }
    assert all(p.patches == 49 and p.img_feat_dim == p.emb_dim for p in points)
    assert CI_POINT in points
    assert COMPILED_POINT in points
    assert COMPILED_POINT.batch == 1
    quick = BenchConfig.quick()
    assert [p.batch for p in quick.points] == [1, 8, 32, 64]  # batch 1: the equal-work rows
    assert set(quick.points) <= set(points)
    assert BenchConfig.full().points == points
    assert quick.compiled_points == ()
    assert BenchConfig.full().compiled_points == ()
    assert quick.with_compiled().compiled_points == (COMPILED_POINT,)
    assert quick.with_compiled().points == quick.points


def test_equal_work_reads_the_flop_counts() -> None:
    """Equal work is measured, not assumed from the batch: within EQUAL_WORK of head.py's FLOPs."""
    assert EQUAL_WORK == 0.02
    assert equal_work(672_462_848, 672_462_848) is True
    assert equal_work(679_236_608, 672_462_848) is True  # head_fixed.py against head.py at batch 1: 1.0 %
    assert equal_work(21_468_921_856, 2_600_022_016) is False  # at batch 32: 8.3x
    assert equal_work(102, 100) is True
    assert equal_work(100, 102) is True
    assert equal_work(103, 100) is False
    assert equal_work(100, 103) is False
    assert equal_work(0, 0) is True
    assert equal_work(None, 100) is None
    assert equal_work(100, None) is None


def test_config_and_point_validation() -> None:
    with pytest.raises(ValueError, match="op_batch"):
        BenchConfig(mode="quick", points=(SMALL,), op_classes=(4, 32), op_batch=8)
    with pytest.raises(ValueError, match="mode"):
        BenchConfig(mode="slow", points=(SMALL,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        BenchConfig(mode="quick", points=())
    with pytest.raises(ValueError, match="batch"):
        GridPoint.of(0, 4, 32)


def test_resolve_device_refuses_what_it_cannot_run() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="not supported"):
        resolve_device("meta")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("bogus")
    if NO_CUDA:
        with pytest.raises(ConfigError, match="is_available"):
            resolve_device("cuda")


def test_run_bench_needs_the_reference_among_subjects() -> None:
    with pytest.raises(ConfigError, match="reference"):
        run_bench(reference_factories(), reference="nope.py")


# -- one small real run -----------------------------------------------------------------------------------


class _RaisingHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, *args: Any) -> Any:
        raise RuntimeError("boom in forward")


def _broken_factory(num_classes: int, emb_dim: int) -> nn.Module:
    raise TypeError("cannot build")


TINY = BenchConfig(
    mode="quick",
    points=(GridPoint.of(4, 4, 32), GridPoint.of(8, 4, 32)),
    repeats=3,
    warmup=1,
    op_classes=OP_COUNT_CLASSES,
    op_batch=32,
    op_emb_dim=32,
    graph_break_point=GridPoint.of(4, 2, 32),
    sync_point=GridPoint.of(4, 4, 32),
    matmul_n=64,
    overhead_ops=20,
    limit_repeats=3,
)


@pytest.fixture(scope="module")
def tiny_result() -> BenchResult:
    subjects = {
        **reference_factories(),
        "broken.py": _broken_factory,
        "raises.py": lambda c, e: _RaisingHead(),
    }
    return run_bench(subjects, reference="head.py", config=TINY)


def test_run_structure(tiny_result: BenchResult) -> None:
    r = tiny_result
    assert r.schema_version == SCHEMA_VERSION
    assert r.subjects == ("head.py", "head_optimal.py", "broken.py", "raises.py")
    assert r.environment.device == "cpu"
    assert r.environment.threads == 1
    assert r.environment.torch_version == torch.__version__
    assert [(t.kind, t.point) for t in r.times] == [(k, p) for p in TINY.points for k in ("train", "forward")]
    for row in r.times:
        assert set(row.stats) == {"head.py", "head_optimal.py"}
        assert row.ratios["head.py"] == 1.0
        assert row.ratios["head_optimal.py"] is not None
        for name, samples in row.samples.items():
            assert len(samples) == TINY.repeats
            assert all(s > 0.0 and math.isfinite(s) for s in samples)
            assert row.stats[name].n == TINY.repeats


def test_run_records_failing_subjects(tiny_result: BenchResult) -> None:
    errors = tiny_result.errors
    assert set(errors) == {"broken.py", "raises.py"}
    assert errors["broken.py"].startswith("timing, building at B4-C4-E32")
    assert "TypeError: cannot build" in errors["broken.py"]
    assert "train step at B4-C4-E32" in errors["raises.py"]
    assert "RuntimeError: boom in forward" in errors["raises.py"]
    assert set(tiny_result.scaling) == {"head.py", "head_optimal.py"}


def test_run_counts_scaling_breaks_syncs(tiny_result: BenchResult) -> None:
    r = tiny_result
    for name in ("head.py", "head_optimal.py"):
        for point in TINY.points:
            train, forward = r.counts_for(name, "train", point), r.counts_for(name, "forward", point)
            assert train is not None
            assert forward is not None
            assert 0 < forward.ops < train.ops
            assert 0 < forward.flops < train.flops
            assert train.top_ops[0][1] >= train.top_ops[-1][1]
        scaling = r.scaling[name]
        assert scaling.num_classes == OP_COUNT_CLASSES
        assert list(scaling.ops) == sorted(set(scaling.ops))
        assert scaling.fit is not None
        assert scaling.fit.exponent > 1.0
        breaks = r.graph_breaks[name]
        assert breaks.error is None
        assert breaks.graph_break_count is not None
        assert breaks.graph_break_count > 0  # both heads call .item() in the forward
        assert any(reason.file and reason.file.endswith(f"{name}") for reason in breaks.reasons)
        assert r.host_syncs[name].count is None
    assert r.limit is not None
    assert len(r.distances) == 2 * len(r.times)
    assert all(d.distance is not None and d.distance > 0 for d in r.distances)


def test_run_result_round_trips_through_json(tiny_result: BenchResult) -> None:
    text = tiny_result.to_json()
    assert "NaN" not in text
    assert "Infinity" not in text
    assert BenchResult.from_json(text) == tiny_result
    assert BenchResult.from_dict(json.loads(json.dumps(tiny_result.to_dict()))) == tiny_result


# -- schema -------------------------------------------------------------------------------------------------


def _handmade(**changes: Any) -> BenchResult:
    point = GridPoint.of(8, 7, 256)
    stats = summarize([1e-3, 2e-3])
    fields: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "mode": "quick",
        "seed": 0,
        "reference": "a",
        "subjects": ("a", "b"),
        "environment": Environment("cpu", "CPU", 1, "2", "3.11", "Linux", None),
        "limit": None,
        "times": (StepTimes("train", point, 1, {"a": stats}, {"a": (1e-3, 2e-3)}, {"a": 1.0, "b": None}),),
        "counts": (),
        "scaling": {"a": OpScaling(64, 64, (4,), (10,), None, "at num_classes=8: boom")},
        "graph_breaks": {"a": GraphBreaks(4, 8, None, None, (), "dynamo.explain raised X")},
        "host_syncs": {"a": HostSyncs(None, "n/a on cpu")},
        "distances": (),
        "errors": {},
        "elapsed_s": 1.5,
    }
    fields.update(changes)
    return BenchResult(**fields)


def test_handmade_round_trip_with_nones() -> None:
    result = _handmade()
    assert BenchResult.from_dict(result.to_dict()) == result


def test_non_finite_floats_become_null() -> None:
    point = GridPoint.of(8, 7, 256)
    row = StepTimes("train", point, 1, {}, {}, {"a": math.nan, "b": math.inf})
    data = _handmade(times=(row,)).to_dict()
    assert data["times"][0]["ratios"] == {"a": None, "b": None}
    json.dumps(data, allow_nan=False)


def test_from_dict_refuses_other_versions_and_bad_values() -> None:
    data = _handmade().to_dict()
    with pytest.raises(ValueError, match="schema_version"):
        BenchResult.from_dict({**data, "schema_version": SCHEMA_VERSION + 1})
    with pytest.raises((TypeError, ValueError), match="elapsed_s"):
        BenchResult.from_dict({**data, "elapsed_s": None})
    with pytest.raises(ValueError, match="mode"):
        BenchResult.from_dict({**data, "mode": "slow"})
    missing = dict(data)
    del missing["subjects"]
    with pytest.raises(ValueError, match="subjects"):
        BenchResult.from_dict(missing)


def test_result_filename() -> None:
    assert result_filename("cuda:0", "NVIDIA H200", date(2025, 1, 2)) == "cuda-nvidia-h200-2025-01-02.json"
    assert result_filename("cuda", "NVIDIA GeForce RTX 4090 (24GB)", date(2025, 12, 31)) == (
        "cuda-nvidia-geforce-rtx-4090-24gb-2025-12-31.json"
    )
    assert result_filename("cpu", "???", date(2025, 1, 2)) == "cpu-unknown-2025-01-02.json"


def test_results_grid_and_fit_import_without_torch() -> None:
    code = (
        "import sys; import headaudit.bench.results, headaudit.bench.grid, headaudit.bench.fit, headaudit.bench; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# -- plots ------------------------------------------------------------------------------------------------------


def test_write_plots_without_matplotlib_writes_nothing(
    tiny_result: BenchResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("headaudit.bench.plots.plots_available", lambda: False)
    assert write_plots(tiny_result, tmp_path / "plots") == []
    assert not (tmp_path / "plots").exists()


@pytest.mark.skipif(not plots_available(), reason="matplotlib is not installed (the optional 'plots' extra)")
def test_write_plots_with_matplotlib(tiny_result: BenchResult, tmp_path: Path) -> None:
    paths = write_plots(tiny_result, tmp_path)
    assert [p.name for p in paths] == list(PLOT_FILES)
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert write_plots(_handmade(), tmp_path / "empty") == []  # no series, one batch size: no chart


# -- the CUDA script, on a machine without CUDA ---------------------------------------------------------------


def _load_run_cuda() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_cuda", ROOT / "benchmarks" / "run_cuda.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not NO_CUDA, reason="checks the refusal on a machine without CUDA")
def test_run_cuda_refuses_cleanly_without_cuda(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_cuda = _load_run_cuda()
    assert run_cuda.main(["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no CUDA device" in err
    assert "nothing written" in err
    assert not (tmp_path / "out").exists()


def test_run_cuda_summary_reads_a_result(tiny_result: BenchResult) -> None:
    lines = _load_run_cuda().summary(tiny_result)
    assert "quick mode" in lines[0]
    assert any("head_optimal.py: p10" in line for line in lines)
    assert any("error, broken.py" in line for line in lines)
