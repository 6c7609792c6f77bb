"""The perf.* checks, the Performance section, ``headaudit bench`` and ``--plots``.

No test asserts a speed (machines are shared and noisy): times are only checked to be
positive and finite and ratios to exist; verdicts, counts' structure, schemas and texts
are checked exactly. Runs use the tiny bench config :data:`TINY` where the test is about
structure; one subprocess runs ``headaudit bench`` in its quick default, as a user would.
The CUDA path is tested on CPU where it needs no GPU (the judges on CUDA numbers, the
host-sync reading of a CUDA result, recorded GPU results); the tests that need a GPU skip
with the reason.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import torch

from headaudit.bench.grid import OP_COUNT_CLASSES, BenchConfig
from headaudit.bench.plots import PLOT_FILES, plots_available
from headaudit.bench.recorded import read_recorded
from headaudit.bench.results import BenchResult, Environment, GridPoint, HostSyncs, SampleStats, result_filename
from headaudit.bench.run import run_bench
from headaudit.bench.step import reference_factories
from headaudit.checks import by_id, perf
from headaudit.cli import main
from headaudit.errors import ConfigError
from headaudit.messages import catalogue, placeholders
from headaudit.model import Report
from headaudit.perfrun import chart_result, run_shared, section_extra, shared_checks
from headaudit.profiles import active_profile
from headaudit.render.performance import render_bench_markdown, render_performance
from headaudit.runner import run_audit
from headaudit.sandbox import SubjectRaised
from headaudit.subjects import Subject, importable, load_subject
from tests.conftest import ROLES, SUBJECTS_DIR, LoadSubject, RunCheck

ROOT = Path(__file__).resolve().parents[1]
CUDA = torch.cuda.is_available()
NO_CUDA = "CUDA not available (torch.cuda.is_available() is False: a CPU build or no GPU)"
NO_MATPLOTLIB = "matplotlib is not installed (the optional 'plots' extra)"
_CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")

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


@pytest.fixture
def tiny_config(monkeypatch: pytest.MonkeyPatch) -> BenchConfig:
    """Make the quick config tiny for one test (the checks and the CLI read ``quick()``)."""
    monkeypatch.setattr(BenchConfig, "quick", classmethod(lambda cls: TINY))
    return TINY


@pytest.fixture(scope="module")
def shared_report(references: dict[str, Subject], tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Report]:
    """The references through ``headaudit bench``'s path: one tiny run, the perf checks on it."""
    shared = run_shared(references, seed=0, profile=active_profile(), config=TINY)
    report = run_audit(references, shared_checks(shared), seed=0, profile=active_profile())
    empty = tmp_path_factory.mktemp("no-results")
    extra = section_extra(recorded_dir=empty / "missing", one_run=True)
    return shared, dataclasses.replace(report, extra={"performance": extra})


# --- the checks on a shared run -----------------------------------------------------------


def test_one_run_of_head_py_and_the_candidate(shared_report: tuple[Any, Report]) -> None:
    shared, report = shared_report
    assert shared.result.subjects == ("head.py", "head_optimal.py")  # the baseline is head.py itself
    assert shared.result.reference == "head.py"
    assert not shared.failed
    verdicts = {(r.check, r.subject): r.verdict for r in report.results}
    for role in ROLES:
        assert verdicts[("perf.step-time", role)] == "pass"
        assert verdicts[("perf.op-count", role)] == "fail"
        assert verdicts[("perf.host-syncs", role)] == ("fail" if CUDA else "n/a")


def test_step_time_evidence(shared_report: tuple[Any, Report]) -> None:
    _, report = shared_report
    for role in ROLES:
        result = report.result("perf.step-time", role)
        assert result is not None
        (device,) = result.evidence["devices"]
        assert device["device"] == "cpu"
        assert device["threads"] == 1
        assert device["per_op_overhead_s"] > 0
        assert device["flop_rate"] > 0
        assert [(r["kind"], r["batch"]) for r in device["rows"]] == [
            (k, p.batch) for p in TINY.points for k in ("train", "forward")
        ]
        for row in device["rows"]:
            assert row["subject"]["n"] == row["reference"]["n"] == TINY.repeats
            assert row["ratio"] > 0
            assert math.isfinite(row["subject"]["median"])
            assert row["ops"] > 0
            assert row["flops"] > 0
            assert row["floor_s"] == max(row["flop_floor_s"], row["overhead_floor_s"])
            assert row["bound"] in ("flops", "overhead")
            assert row["distance"] > 0
        assert result.evidence["num_heads"] == perf.NUM_HEADS
        assert result.evidence["dropout"] == 0.0
    baseline = report.result("perf.step-time", "baseline")
    assert baseline is not None
    (device,) = baseline.evidence["devices"]
    assert device["reference_is_subject"] is True  # head.py is the run's reference: ratio 1 by definition
    assert all(r["ratio"] == 1.0 and r["subject"] == r["reference"] for r in device["rows"])


def test_op_count_evidence(shared_report: tuple[Any, Report]) -> None:
    _, report = shared_report
    for role in ROLES:
        result = report.result("perf.op-count", role)
        assert result is not None
        ev = result.evidence
        assert ev["num_classes"] == list(OP_COUNT_CLASSES)
        assert ev["ops"] == sorted(set(ev["ops"]))  # grows with every doubling
        assert ev["exponent"] > 1.0
        assert ev["quadratic"][2] > 0
        assert ev["quadratic_ops_at_largest"] >= 1.0
        assert "graph_breaks" not in ev  # measured once, by compile.graph-breaks
        assert "grow faster than linearly with num_classes" in result.summary("en")


# --- the checks through the runner, each subject alone -------------------------------------------


def test_op_count_is_constant_for_a_vectorised_head(subject: LoadSubject, check: RunCheck) -> None:
    """(test_checks runs the verdicts in both slots; this reads the evidence.)"""
    result = check("perf.op-count", subject("perf_vectorised"))
    assert result.verdict == "pass"
    assert len(set(result.evidence["ops"])) == 1
    linear = check("perf.op-count", subject("perf_vectorised:PerClassLoop"))
    assert linear.verdict == "pass"
    assert "grow linearly" in linear.summary("en")
    assert linear.evidence["ops"] == sorted(set(linear.evidence["ops"]))


@pytest.mark.parametrize("role", ROLES)
def test_a_raising_forward_is_an_error_before_any_timing(subject: LoadSubject, check: RunCheck, role: str) -> None:
    for check_id in ("perf.step-time", "perf.op-count"):
        result = check(check_id, subject("forward_raises"), role)
        assert result.verdict == "error"
        assert "forward is broken on purpose" in result.summary("en")


def test_the_check_times_the_subject_against_a_second_head_py(references: dict[str, Subject], tiny_config: Any) -> None:
    """In a report, head.py in a slot is measured against another copy: its ratio is near 1, not 1 by fiat."""
    found = by_id("perf.step-time")
    assert found is not None
    from headaudit.runner import run_check

    result = run_check(found, references["baseline"], "baseline", seed=0, profile=active_profile())
    assert result.verdict == "pass"
    (device,) = result.evidence["devices"]
    assert device["reference_is_subject"] is False
    assert len(device["rows"]) == 2 * len(TINY.points)


def test_timing_devices() -> None:
    assert perf.timing_devices() == (("cpu", "cuda") if CUDA else ("cpu",))


# --- judges on hand-made measurements (the CUDA numbers need no GPU here) ------------------------


def _stats(seconds: float) -> SampleStats:
    return SampleStats(5, seconds, seconds, seconds, seconds, 0.0, seconds, seconds)


def _row(kind: str, batch: int, ratio: float | None, bound: str | None = "flops") -> perf.Timing:
    far = None if bound is None else 2.0
    return perf.Timing(kind, batch, 7, 256, _stats(1e-3), _stats(1e-3), ratio, 100, 10**6, 1e-4, 1e-4, 1e-4, far, bound)


def _device(rows: tuple[perf.Timing, ...], device: str = "cpu") -> perf.DeviceTiming:
    return perf.DeviceTiming(device, "x", 1, "quick", 3, 1, 1e-6, "add", 1e11, 512, False, rows)


def _judge(check_id: str, measurement: Any) -> tuple[str, str]:
    found = by_id(check_id)
    assert found is not None
    finding = found.judge(measurement)
    from headaudit.messages import render

    return finding.verdict, render(finding.message, "en")


def test_step_time_judge() -> None:
    both = (_row("train", 8, 0.9), _row("forward", 8, 1.1, "overhead"), _row("train", 64, 1.2))
    verdict, text = _judge("perf.step-time", perf.StepTimeMeasurement((_device(both), _device(both, "cuda:0")), 8, 0))
    assert verdict == "pass"
    assert text.count("training step 0.90-1.20× head.py") == 2
    assert "cuda:0:" in text
    assert "FLOP-bound at some points and overhead-bound at others" in text
    no_floor = (_row("train", 8, 1.0, None), _row("forward", 8, 1.0, None))
    assert (
        "the limit could not be measured"
        in _judge("perf.step-time", perf.StepTimeMeasurement((_device(no_floor),), 8, 0))[1]
    )
    missing = (_row("train", 8, None), _row("forward", 8, 1.0))
    assert _judge("perf.step-time", perf.StepTimeMeasurement((_device(missing),), 8, 0))[0] == "error"
    assert _judge("perf.step-time", perf.StepTimeMeasurement((_device(()),), 8, 0))[0] == "error"
    assert _judge("perf.step-time", perf.StepTimeMeasurement((), 8, 0))[0] == "error"


def _ops(ops: tuple[int, ...], quadratic: tuple[float, float, float] | None = None) -> perf.OpCountMeasurement:
    classes = OP_COUNT_CLASSES[: len(ops)]
    at_largest = None if quadratic is None else quadratic[2] * max(classes) ** 2
    costs = perf.per_class_costs(classes, ops)
    return perf.OpCountMeasurement(64, 64, classes, ops, 1.0, 1.0, 0.9, (), quadratic, at_largest, costs)


def test_op_count_judge() -> None:
    verdict, text = _judge("perf.op-count", _ops((1122, 1914, 4362, 12714), (618.0, 90.0, 9.0)))
    assert verdict == "fail"
    assert "one more class costs 198 operators at 4-8 classes but 522 at 16-32" in text
    assert "c = 9" in text
    assert "72 % of the 12714 operators at 32 classes" in text
    linear = _judge("perf.op-count", _ops((877, 957, 1117, 1437)))
    assert linear[0] == "pass"
    assert "one more class costs about 20 operators" in linear[1]
    # a one-operator step anywhere is not growth: the cost per class moves by less than one
    for stepped in ((878, 957, 1117, 1437), (877, 957, 1118, 1437), (877, 957, 1117, 1438)):
        assert _judge("perf.op-count", _ops(stepped))[0] == "pass", stepped
    # while a cost per class that rises by one operator is
    assert _judge("perf.op-count", _ops((877, 957, 1117, 1437 + 16)))[0] == "fail"
    assert "do not depend on num_classes" in _judge("perf.op-count", _ops((812,) * 4))[1]
    assert _judge("perf.op-count", _ops((10, 20)))[0] == "error"


def test_host_syncs_judge_on_cuda_numbers() -> None:
    def m(count: int | None) -> perf.HostSyncMeasurement:
        return perf.HostSyncMeasurement("cuda:0", 32, 7, count, "sync debug mode")

    assert _judge("perf.host-syncs", m(None))[0] == "n/a"
    assert _judge("perf.host-syncs", m(0)) == (
        "pass",
        "no host sync in a training step on cuda:0 (batch 32, 7 classes)",
    )
    verdict, text = _judge("perf.host-syncs", m(14))
    assert verdict == "fail"
    assert "14 times on cuda:0" in text


def _result(**changes: Any) -> BenchResult:
    env = Environment("cuda:0", "NVIDIA Test GPU", 16, "2.13.0", "3.11", "Linux x86_64", "12.4")
    fields: dict[str, Any] = {
        "schema_version": 1,
        "mode": "quick",
        "seed": 0,
        "reference": "head.py",
        "subjects": ("head.py", "subject"),
        "environment": env,
        "limit": None,
        "times": (),
        "counts": (),
        "scaling": {},
        "graph_breaks": {},
        "host_syncs": {"subject": HostSyncs(14, 'torch.cuda.set_sync_debug_mode("warn"), warnings counted')},
        "distances": (),
        "errors": {},
        "elapsed_s": 1.0,
    }
    return BenchResult(**{**fields, **changes})


def test_host_syncs_read_from_a_cuda_result() -> None:
    measured = perf.host_syncs_from(_result(), "subject", TINY)
    assert (measured.device, measured.count, measured.batch) == ("cuda:0", 14, TINY.sync_point.batch)
    raised = _result(host_syncs={"subject": HostSyncs(None, "the step raised", "RuntimeError: boom")})
    with pytest.raises(SubjectRaised, match="boom"):
        perf.host_syncs_from(raised, "subject", TINY)


def test_what_the_bench_recorded_is_the_subject_s_exception() -> None:
    failed = _result(errors={"subject": "train step at B4-C4-E32: RuntimeError: boom in forward"})
    for read in (lambda r: perf.timing_from(r, "subject", TINY), lambda r: perf.op_count_from(r, "subject")):
        with pytest.raises(SubjectRaised) as info:
            read(failed)
        assert info.value.where == "train step at B4-C4-E32"
        assert info.value.detail == "RuntimeError: boom in forward"


def test_importable_puts_the_subject_module_back_for_dynamo_only() -> None:
    loaded = load_subject(str(SUBJECTS_DIR / "perf_vectorised.py"))
    name = loaded.module.__name__
    assert name not in sys.modules
    with importable([loaded]):
        assert sys.modules[name] is loaded.module
    assert name not in sys.modules


def test_run_bench_runs_only_the_stages_asked_for() -> None:
    result = run_bench(reference_factories(), reference="head.py", config=TINY, stages=("scaling",))
    assert result.limit is None
    assert result.times == ()
    assert result.distances == ()
    assert result.graph_breaks == {}
    assert result.host_syncs == {}
    assert result.compiled == ()
    assert set(result.scaling) == {"head.py", "head_optimal.py"}
    with pytest.raises(ConfigError, match="unknown bench stages"):
        run_bench(reference_factories(), reference="head.py", config=TINY, stages=("warp",))  # type: ignore[arg-type]


# --- the section ------------------------------------------------------------------------------------


def test_section_in_english(shared_report: tuple[Any, Report]) -> None:
    _, report = shared_report
    md = "\n".join(render_performance(report, "en"))
    for heading in ("## Performance", "### Step time on cpu", "### Operators per training step", "### Graph breaks"):
        assert heading in md
    assert "### Host syncs per training step" in md
    assert "The baseline is the bundled head.py itself" in md
    assert "measured in this run (every subject)" in md  # one limit: one run
    assert "No recorded CUDA result exists with this installation" in md
    table = md.split("### Step time on cpu")[1].split("**Counts")[0]
    rows = [line for line in table.splitlines() if line.startswith("| training step") or line.startswith("| forward")]
    assert len(rows) == 2 * len(TINY.points)
    assert all("| 1.000× |" in row for row in rows)  # the baseline column: head.py against itself
    ops_table = md.split("### Operators per training step")[1].split("### Graph breaks")[0]
    assert "| C = 4 | C = 8 | C = 16 | C = 32 | one more class costs (first → last interval) |" in ops_table
    assert "·C², " in ops_table
    assert len(re.findall(r"```json\n", md)) == 3  # one evidence block per check, nothing else
    for result in report.results:
        assert result.summary("en") in md
    assert not _CJK.search(md)


def test_section_in_chinese(shared_report: tuple[Any, Report]) -> None:
    _, report = shared_report
    md = "\n".join(render_performance(report, "zh"))
    for heading in (
        "## 性能",
        "### cpu 上的单步耗时",
        "### 每个训练步的算子数",
        "### 图中断",
        "### 已记录的 CUDA 结果",
    ):
        assert heading in md
    prose = re.sub(r"```.*?```", "", md, flags=re.S)
    prose = re.sub(r"`[^`]*`", "", prose)
    english = catalogue("en")
    leftovers = [t for t in english.values() if not placeholders(t) and len(t.split()) >= 2 and t in prose]
    assert not leftovers


def test_bench_markdown_names_the_subjects(shared_report: tuple[Any, Report]) -> None:
    _, report = shared_report
    md = render_bench_markdown(report, "en")
    assert md.startswith("# headaudit bench: performance of the hot path")
    assert "- baseline: `headaudit:reference/head.py` (`Head`)" in md
    assert "- candidate: `headaudit:reference/head_optimal.py` (`HeadOptimal`)" in md


def test_renderer_does_not_import_torch() -> None:
    code = "import sys, headaudit.render.performance, headaudit.bench.recorded; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT).returncode == 0


# --- recorded results -----------------------------------------------------------------------------


def test_recorded_results_are_cited_from_the_files(shared_report: tuple[Any, Report], tmp_path: Path) -> None:
    shared, report = shared_report
    gpu = Environment("cuda:0", "NVIDIA Test GPU", 16, "2.13.0", "3.11.7", "Linux x86_64", "12.4")
    recorded = dataclasses.replace(shared.result, environment=gpu, host_syncs={"head.py": HostSyncs(14, "warn")})
    name = result_filename("cuda:0", gpu.device_name, date(2030, 1, 2))
    (tmp_path / name).write_text(recorded.to_json(), encoding="utf-8")
    (tmp_path / "notes.json").write_text("{}", encoding="utf-8")
    found = read_recorded(tmp_path)
    assert [(r.file, r.date, r.problem is None) for r in found] == [
        (name, "2030-01-02", True),
        ("notes.json", None, False),
    ]
    cited = dataclasses.replace(report, extra={"performance": section_extra(recorded_dir=tmp_path)})
    for lang in ("en", "zh"):
        md = "\n".join(render_performance(cited, lang))
        assert "`NVIDIA Test GPU`" in md
        assert "CUDA 12.4" in md
        assert "2030-01-02" in md
        assert "`notes.json`" in md
        assert "No recorded CUDA result" not in md
    assert "head.py`: 14 host syncs per training step" in "\n".join(render_performance(cited, "en"))
    assert read_recorded(tmp_path / "absent") == ()


# --- charts -------------------------------------------------------------------------------------------


def test_chart_data_pairs_each_subject_with_the_head_py_of_its_run(
    shared_report: tuple[Any, Report], references: dict[str, Subject]
) -> None:
    _, report = shared_report
    data = chart_result(report, references)
    assert data is not None
    assert data.subjects == ("baseline (head.py)", "candidate (head_optimal.py)", "head.py (candidate's run)")
    assert set(data.scaling) == {"baseline (head.py)", "candidate (head_optimal.py)"}
    assert {row.point for row in data.times} == set(TINY.points)


@pytest.mark.skipif(not plots_available(), reason=NO_MATPLOTLIB)
def test_section_links_the_charts(shared_report: tuple[Any, Report], references: Any, tmp_path: Path) -> None:
    from headaudit.bench.plots import write_plots

    _, report = shared_report
    data = chart_result(report, references)
    assert data is not None
    written = write_plots(data, tmp_path / "plots")
    assert [p.name for p in written] == list(PLOT_FILES)
    extra = section_extra(written, relative_to=tmp_path, recorded_dir=tmp_path / "none")
    md = "\n".join(render_performance(dataclasses.replace(report, extra={"performance": extra}), "en"))
    assert "![Operators per training step against num_classes](plots/ops-per-step.png)" in md
    assert "![Training-step time against batch size](plots/step-time-vs-batch.png)" in md
    assert "compare a subject with the head.py of its own run" in md


# --- the command line -----------------------------------------------------------------------------------


def test_headaudit_bench_quick_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's command as a user runs it: quick mode (its grid, counts and limit), both
    references and the control, ratios from one run, here in Chinese with charts and the
    JSON written. Run in this process with three timing repeats instead of fifteen: what is
    asserted is the run's shape and the section, not the precision of its timings (the
    README's figures come from `headaudit bench` itself)."""
    quick = BenchConfig.quick()
    monkeypatch.setattr(BenchConfig, "quick", classmethod(lambda cls: dataclasses.replace(quick, repeats=3)))
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    code = main(["bench", "--lang", "zh", "--plots", "charts", "--json", "bench.json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert out.err == ""
    result = BenchResult.from_json((tmp_path / "bench.json").read_text(encoding="utf-8"))
    assert result.subjects == ("head.py", "head_optimal.py", "head_fixed.py")  # the control is the third
    assert result.mode == "quick"
    assert result.environment.threads == 1
    assert {row.ratios["head.py"] for row in result.times} == {1.0}
    assert all(row.ratios["head_optimal.py"] and row.ratios["head_fixed.py"] for row in result.times)
    assert set(result.scaling) == {"head.py", "head_optimal.py", "head_fixed.py"}
    assert sorted({row.point.batch for row in result.times}) == [1, 8, 32, 64]
    at_one = [c for c in result.counts if c.point.batch == 1 and c.kind == "train"]
    assert len(at_one) == 3  # every head at batch 1, where the FLOPs say whether the work is equal
    assert result.compiled == ()  # opt-in (--compiled); the section says how to get it
    assert "`headaudit bench --compiled`" in out.out
    assert "（等量计算）" in out.out
    assert "## 性能" in out.out
    assert "| `perf.op-count` | ❌ 不通过 | ❌ 不通过 | ✅ 通过 |" in out.out
    assert "| 对照 | `HeadOptimal` |" not in out.out  # bench lists subjects as lines
    assert (
        "- 对照：`headaudit:reference/head_fixed.py`" in out.out
        or "- 对照: `headaudit:reference/head_fixed.py`" in out.out
    )
    assert "候选：相对 head.py 的倍数（p10）" in out.out
    left = {"bench.json"}
    if plots_available():  # the subprocess runs this interpreter, with this matplotlib or without
        left.add("charts")
        assert sorted(p.name for p in (tmp_path / "charts").iterdir()) == sorted(PLOT_FILES)
        assert "](charts/ops-per-step.png)" in out.out
        assert "所有曲线都来自上文同一次交替运行" in out.out
    assert {p.name for p in tmp_path.iterdir()} == left  # nothing else left behind


def test_bench_without_matplotlib(
    tmp_path: Path, tiny_config: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("headaudit.bench.plots.plots_available", lambda: False)
    head = str(ROOT / "reference" / "head.py")  # head.py in both slots: one head in the run
    assert main(["bench", "--candidate", head, "--control", "none", "--plots", str(tmp_path / "charts")]) == 0
    out = capsys.readouterr().out
    assert "matplotlib is not installed: `pip install 'headaudit[plots]'` adds them" in out
    assert "![" not in out
    assert not (tmp_path / "charts").exists()


@pytest.mark.skipif(not plots_available(), reason=NO_MATPLOTLIB)
def test_report_plots_link_relative_paths(
    tmp_path: Path, tiny_config: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    # without the control (a third op-count series to measure): the links do not depend on it
    assert main(["report", "--only", "perf.op-count", "--control", "none", "--plots", "charts"]) == 0
    out = capsys.readouterr().out
    assert "![Operators per training step against num_classes](charts/ops-per-step.png)" in out
    assert "step-time-vs-batch.png" not in out  # nothing was timed: no batch chart
    assert (tmp_path / "charts" / "ops-per-step.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_plots_without_matplotlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("headaudit.bench.plots.plots_available", lambda: False)
    assert main(["report", "--only", "perf.host-syncs", "--plots", "charts", "--lang", "zh"]) == 0
    out = capsys.readouterr().out
    assert "未安装 matplotlib" in out
    assert list(tmp_path.iterdir()) == []


def test_the_control_is_a_third_subject_of_the_performance_section_only(
    tiny_config: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bundled head_fixed.py is measured by the perf checks and nowhere else: a column
    in the Performance tables, none in the other sections, ``only`` in the JSON.

    The tiny config (:data:`TINY`, same num_classes series) keeps the op-count series cheap:
    whether the control is a subject, and where it shows, does not depend on the sizes. One
    run: the Markdown is rendered from its JSON report, as ``report`` renders its own."""
    from headaudit.render.json import parse_json
    from headaudit.render.markdown import render_markdown

    assert main(["report", "--only", "perf.op-count,forward.contract", "--format", "json"]) == 0
    text = capsys.readouterr().out
    data = json.loads(text)
    control = [s for s in data["subjects"] if s["role"] == "control"]
    assert [(s["path"], s["only"]) for s in control] == [("headaudit:reference/head_fixed.py", "performance")]
    assert {(r["check"], r["subject"]) for r in data["results"] if r["subject"] == "control"} == {
        ("perf.op-count", "control")
    }
    ops = next(r for r in data["results"] if r["check"] == "perf.op-count" and r["subject"] == "control")
    assert ops["verdict"] == "pass"  # its measured counts, flat in num_classes
    assert len(set(ops["evidence"]["ops"])) == 1, ops["evidence"]
    md = render_markdown(parse_json(text), "en")
    assert md.count("| check | baseline | candidate | control |") == 1  # the Performance table only
    assert "| check | baseline | candidate |\n" in md  # the contracts table keeps two columns
    assert "The control is measured in the Performance section only" in md
    perf_part = md[md.index("## Performance") :]
    assert "- **control** ✅ pass" in perf_part
    assert "- **control**" not in md[: md.index("## Performance")]


@pytest.mark.parametrize(
    "args",
    [
        ["--control", "none"],  # left out on request
        ["--candidate", str(ROOT / "reference" / "head_fixed.py")],  # already a subject: not twice
        ["--no-bench", "--only", "forward.contract,perf.op-count"],  # no performance section to be in
    ],
)
def test_no_control_where_it_would_not_be_a_third_subject(
    args: list[str], tiny_config: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """(The tiny config: which subjects are measured does not depend on the bench's sizes.)"""
    only = [] if "--only" in args else ["--only", "perf.op-count"]
    assert main(["report", *only, *args, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["role"] for s in data["subjects"]] == ["baseline", "candidate"]
    assert all(s["only"] is None for s in data["subjects"])


def test_a_named_control_is_loaded_like_any_subject(tiny_config: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """(The tiny config: how the control is loaded does not depend on the bench's sizes.)"""
    vectorised = str(ROOT / "tests" / "subjects" / "perf_vectorised.py")
    assert main(["report", "--only", "perf.op-count", "--control", vectorised, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    control = next(s for s in data["subjects"] if s["role"] == "control")
    assert control["path"].endswith("perf_vectorised.py")
    assert "--control" in data["environment"]["args"]


def test_no_bench_drops_the_performance_checks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--only", "ema.isolation,perf.host-syncs", "--no-bench", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["id"] for c in data["checks"]] == ["ema.isolation"]
    assert "performance" not in data["extra"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["report", "--only", "perf.op-count", "--no-bench"], "--no-bench leaves none of the checks"),
        (["report", "--only", "perf.op-count", "--plots", str(ROOT / "pyproject.toml")], "is a file"),
        (["bench", "--json", str(ROOT / "no" / "such" / "dir" / "b.json")], "not a file in an existing folder"),
        (["bench", "--lang", "fr"], "invalid choice"),
        (["report", "--only", "perf.op-count", "--control", "does/not/exist.py"], "does not exist"),
        *([] if CUDA else [(["bench", "--device", "cuda"], "is_available() is False")]),
    ],
)
def test_bad_bench_input_is_one_line_and_exit_2(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert needle in captured.err
    assert len(captured.err.strip().splitlines()) == 1


# --- on a GPU -------------------------------------------------------------------------------------------


@pytest.mark.skipif(not CUDA, reason=NO_CUDA)
def test_step_time_is_measured_on_cuda_too(references: dict[str, Subject], tiny_config: Any) -> None:
    found = by_id("perf.step-time")
    assert found is not None
    from headaudit.runner import run_check

    result = run_check(found, references["candidate"], "candidate", seed=0, profile=active_profile())
    assert result.verdict == "pass"
    assert [d["device"].split(":")[0] for d in result.evidence["devices"]] == ["cpu", "cuda"]


@pytest.mark.skipif(not CUDA, reason=NO_CUDA)
def test_host_syncs_are_counted_on_cuda(subject: LoadSubject, check: RunCheck, references: dict[str, Subject]) -> None:
    result = check("perf.host-syncs", references["candidate"])
    assert result.verdict == "fail"
    assert result.evidence["count"] >= result.evidence["num_classes"]  # an .item() per class at least
    assert check("perf.host-syncs", subject("perf_vectorised")).verdict == "pass"


def test_the_section_shows_graph_breaks_as_compile_graph_breaks_measured_them(reference_report: Report) -> None:
    """One measurement, one number: the section's table is compile.graph-breaks' result."""
    from headaudit.render.performance import render_performance

    lines = "\n".join(render_performance(reference_report, "en"))
    for role in ROLES:
        result = reference_report.result("compile.graph-breaks", role)
        assert result is not None
        trace = result.evidence["traces"][0]
        assert f"| {trace['graphs']} | {trace['breaks']} |" in lines


# --- the equal-work rows and the compiled training step -----------------------------------------

COMPILED = dataclasses.replace(
    TINY,
    points=(GridPoint.of(1, 4, 32), GridPoint.of(4, 4, 32)),
    trace_breaks=False,
    compiled_points=(GridPoint.of(1, 4, 32),),
    compile_backend="aot_eager",  # forward and backward traced as inductor gets them, without C++ compiles
)


@pytest.fixture(scope="module")
def compiled_run() -> tuple[dict[str, Subject], Any]:
    """One bench of a head without graph breaks, one with, one whose compile raises (and head.py)."""
    subjects = {
        "baseline": load_subject(str(SUBJECTS_DIR / "sync_free_head.py:SyncFreeHead"), "baseline"),
        "candidate": load_subject(str(SUBJECTS_DIR / "sync_free_head.py:LoggingHead"), "candidate"),
        "control": load_subject(str(SUBJECTS_DIR / "compile_refuses.py:CompileRefuses"), "control"),
    }
    return subjects, run_shared(subjects, seed=0, profile=active_profile(), config=COMPILED)


@pytest.mark.parametrize("swap", [False, True], ids=["as-given", "slots-swapped"])
def test_compiled_and_equal_work_rows_for_each_head_in_either_slot(
    compiled_run: tuple[dict[str, Subject], Any], swap: bool
) -> None:
    """Batch 1 and the compiled row appear for every head, whichever slot it sits in: a head
    without graph breaks is timed compiled, one with breaks is n/a naming the first, one whose
    compile raises is an error row while its eager rows stand (the check still passes)."""
    subjects, shared = compiled_run
    assert not shared.result.errors
    assert not shared.failed
    roles = dict(subjects)
    if swap:
        roles = {"baseline": subjects["candidate"], "candidate": subjects["baseline"], "control": subjects["control"]}
    report = run_audit(roles, shared_checks(shared), seed=0, profile=active_profile())
    by_file = {"SyncFreeHead": "timed", "LoggingHead": "n/a", "CompileRefuses": "error"}
    for role, subject in roles.items():
        result = report.result("perf.step-time", role)
        assert result is not None
        assert result.verdict == "pass", (role, result)
        (device,) = result.evidence["devices"]
        assert {row["batch"] for row in device["rows"]} == {1, 4}
        for row in device["rows"]:
            assert row["reference_flops"] > 0
            assert row["flops"] > 0
            assert row["equal_work"] == perf.equal_work(row["flops"], row["reference_flops"])
        (compiled,) = device["compiled"]
        assert (compiled["batch"], compiled["num_classes"], compiled["emb_dim"]) == (1, 4, 32)
        status = by_file[subject.head_cls.__name__]
        assert compiled["status"] == status, (role, compiled)
        if status == "timed":
            assert compiled["graph_breaks"] == 0
            assert compiled["compile_s"] > 0
            assert compiled["compiled"]["n"] == COMPILED.repeats
            assert compiled["eager"]["n"] == COMPILED.repeats
            assert compiled["speedup"] > 0
            assert compiled.get("ratio") is None
        elif status == "n/a":
            assert compiled["graph_breaks"] > 0
            assert "Tensor.item()" in compiled["reason"]
            assert "sync_free_head.py:" in compiled["reason"]
            assert compiled.get("compiled") is None
        else:
            assert "Observed exception" in compiled["error"]
            assert compiled.get("compiled") is None
    assert BenchResult.from_json(shared.result.to_json()) == shared.result  # the compiled rows round-trip
    (reference,) = [c for c in shared.result.compiled if c.subject == "head.py"]
    assert reference.status == "n/a"
    assert reference.graph_breaks


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_section_shows_the_compiled_rows_and_which_rows_are_equal_work(
    compiled_run: tuple[dict[str, Subject], Any], lang: str
) -> None:
    subjects, shared = compiled_run
    report = run_audit(subjects, shared_checks(shared), seed=0, profile=active_profile())
    text = "\n".join(render_performance(report, lang))
    words = {
        "en": ("Training step under torch.compile on cpu", "n/a: 2 graph breaks (first: `Unsupported Tensor.item()",
               "error: `Unsupported: Observed exception`", "Equal work:", "(equal work)"),
        "zh": ("cpu 上经 torch.compile 编译的训练步", "不适用：2 个图中断（第一个：`Unsupported Tensor.item()",
               "错误：`Unsupported: Observed exception`", "等量计算：", "（等量计算）"),
    }[lang]  # fmt: skip
    for word in words:
        assert word in text, word
    assert "--compiled`" not in text  # it was measured: no hint how to get it
    if lang == "zh":
        assert "the training step under torch.compile" not in text


def test_the_compiled_row_is_in_the_check_s_sentence(compiled_run: tuple[dict[str, Subject], Any]) -> None:
    subjects, shared = compiled_run
    report = run_audit(subjects, shared_checks(shared), seed=0, profile=active_profile())
    sentences = {role: report.result("perf.step-time", role).summary("en") for role in subjects}  # type: ignore[union-attr]
    assert "under torch.compile at batch 1 is" in sentences["baseline"]
    assert "no compiled row at batch 1: the training forward has 2 graph breaks" in sentences["candidate"]
    assert "under torch.compile at batch 1 raised: Unsupported: Observed exception" in sentences["control"]
