"""The Performance part around the checks: ``headaudit bench``'s one run, charts, recorded results.

- :func:`run_shared` measures the bundled ``head.py`` and every subject in ONE
  :func:`headaudit.bench.run_bench` (all stages), so the subjects' ratios come from one
  interleaved loop and the run is one :class:`~headaudit.bench.results.BenchResult`
  (what ``headaudit bench --json`` writes). A subject that is the bundled head.py itself
  (same bytes, same class) is that reference rather than a second copy.
- :func:`shared_checks` gives the ``perf.*`` checks with ``measure`` replaced by reading
  that run (:func:`headaudit.checks.perf.timing_from` and friends); run through
  :func:`headaudit.runner.run_audit` they give the results a report would, with the
  runner's guards, so ``headaudit bench`` renders the same Performance section.
- :func:`chart_result` assembles, from a report's ``perf.*`` evidence, the
  :class:`BenchResult` that :func:`headaudit.bench.plots.write_plots` draws (each
  subject's numbers come from its own check run).
- :func:`section_extra` is what the CLI puts in ``Report.extra["performance"]``: chart
  paths, the note that charts were asked for without matplotlib, recorded results.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from headaudit.bench.grid import BenchConfig
from headaudit.bench.recorded import recorded_summaries
from headaudit.bench.results import (
    SCHEMA_VERSION,
    BenchResult,
    Environment,
    GridPoint,
    GrowthFit,
    OpScaling,
    SampleStats,
    StepTimes,
)
from headaudit.bench.run import run_bench
from headaudit.bench.step import HeadFactory
from headaudit.build import Built, SettingNotApplied
from headaudit.checks import perf
from headaudit.context import Context
from headaudit.model import Report
from headaudit.profiles import Profile
from headaudit.registry import Check
from headaudit.sandbox import SubjectRaised
from headaudit.subjects import Subject, importable

__all__ = ["CHART_KEYS", "Shared", "chart_result", "perf_checks", "run_shared", "section_extra", "shared_checks"]

#: The chart each file of :data:`headaudit.bench.plots.PLOT_FILES` shows (the renderer's title keys).
CHART_KEYS = {"ops-per-step.png": "ops", "step-time-vs-batch.png": "batch"}

Progress = Callable[[str], None]


def perf_checks() -> tuple[Check[Any], ...]:
    """The registered checks of the Performance section, in registry order."""
    from headaudit.checks import REGISTRY

    return tuple(c for c in REGISTRY if c.group == "performance")


@dataclass(frozen=True)
class Shared:
    """One bench run of several subjects, and how to find each subject in it."""

    result: BenchResult
    config: BenchConfig
    names: Mapping[int, str]  # id(subject) -> its name in the run
    built: Mapping[int, Built]  # id(subject) -> its smoke head (heads, dropout read back)
    failed: Mapping[int, BaseException]  # id(subject) -> what preparing it raised


def _same_file(subject: Subject, reference: Subject) -> bool:
    return subject.sha256 == reference.sha256 and subject.head_cls.__name__ == reference.head_cls.__name__


def _name(subject: Subject, taken: set[str]) -> str:
    for name in (
        PurePosixPath(subject.display).name,
        subject.display,
        f"{subject.display}:{subject.head_cls.__name__}",
    ):
        if name not in taken:
            return name
    return f"{subject.display}#{len(taken)}"


def run_shared(
    subjects: Mapping[str, Subject],
    *,
    seed: int,
    profile: Profile,
    config: BenchConfig,
    device: str = "cpu",
    progress: Progress | None = None,
) -> Shared:
    """Prepare every subject (smoke step, as the checks do) and run them with head.py once.

    A subject whose preparation raises (:class:`SubjectRaised`, or a setting that did not
    take effect) is left out of the run and keeps its exception for its results.
    """
    reference = perf.reference_subject()
    reference_factory, reference_built = perf.prepare(perf.reference_context(seed, profile))
    factories: dict[str, HeadFactory] = {perf.REFERENCE: reference_factory}
    names: dict[int, str] = {}
    built: dict[int, Built] = {}
    failed: dict[int, BaseException] = {}
    for subject in subjects.values():
        if _same_file(subject, reference):
            names[id(subject)], built[id(subject)] = perf.REFERENCE, reference_built
            continue
        try:
            factory, smoke = perf.prepare(Context(subject, seed, profile, frozenset(), {}))
        except (SubjectRaised, SettingNotApplied) as exc:
            failed[id(subject)] = exc
            continue
        name = _name(subject, set(factories))
        factories[name], names[id(subject)], built[id(subject)] = factory, name, smoke
    try:
        with importable([reference, *subjects.values()]):
            result = run_bench(
                factories, reference=perf.REFERENCE, device=device, seed=seed, config=config, progress=progress
            )
    except SystemExit as exc:  # a subject that exits mid-run: every result of the run is lost with it
        raised = SubjectRaised("the bench", exc)
        return Shared(_empty(config, seed, device), config, {}, {}, {id(s): raised for s in subjects.values()})
    return Shared(result, config, names, built, failed)


def _empty(config: BenchConfig, seed: int, device: str) -> BenchResult:
    env = Environment(device, "?", 0, "?", "?", "?", None)
    return BenchResult(
        SCHEMA_VERSION, config.mode, seed, perf.REFERENCE, (), env, None, (), (), {}, {}, {}, (), {}, 0.0
    )


def shared_checks(shared: Shared, checks: Sequence[Check[Any]] | None = None) -> tuple[Check[Any], ...]:
    """The ``perf.*`` checks with ``measure`` reading ``shared`` instead of running a bench."""

    def reader(check_id: str) -> Callable[[Context], Any]:
        def measure(ctx: Context) -> Any:
            key = id(ctx.subject)
            if key in shared.failed:
                raise shared.failed[key]
            name = shared.names[key]
            if check_id == "perf.step-time":
                smoke = shared.built[key]
                timing = perf.timing_from(shared.result, name, shared.config)
                return perf.StepTimeMeasurement((timing,), smoke.sizes[2], smoke.settings.get("dropout_rate"))
            if check_id == "perf.op-count":
                return perf.op_count_from(shared.result, name)
            return perf.host_syncs_from(shared.result, name, shared.config)

        return measure

    chosen = checks if checks is not None else perf_checks()
    return tuple(dataclasses.replace(c, measure=reader(c.id)) for c in chosen)


# --- charts -----------------------------------------------------------------------------------


def _stats(data: Any) -> SampleStats | None:
    if not isinstance(data, Mapping):
        return None
    numbers = {
        f.name: float(v) if isinstance(v := data.get(f.name), (int, float)) else None
        for f in dataclasses.fields(SampleStats)
        if f.name != "n"
    }
    return SampleStats(n=int(data.get("n") or 0), **numbers)


def chart_result(report: Report, subjects: Mapping[str, Subject]) -> BenchResult | None:
    """A :class:`BenchResult` of the report's perf evidence, for the charts (or ``None``).

    Each subject was timed in its own run beside head.py, and absolute times drift
    between runs (BENCH.md), so every run's head.py is drawn too, as
    ``head.py (<role>'s run)``: a subject is compared with the head.py of its own run.
    A subject that is the bundled head.py itself is not drawn twice. Subjects are named
    ``role (file)``; rows are the first device's (the CPU). Only what the charts draw
    is filled in (medians and quartiles, operator series).
    """
    reference = perf.reference_subject()
    series: list[str] = []
    rows: dict[tuple[str, GridPoint], dict[str, SampleStats]] = {}
    scaling: dict[str, OpScaling] = {}
    env: Environment | None = None
    for info in report.subjects:
        name = f"{info.role} ({PurePosixPath(info.path).name})"
        own = f"{perf.REFERENCE} ({info.role}'s run)"
        is_reference = info.role in subjects and _same_file(subjects[info.role], reference)
        step = report.result("perf.step-time", info.role)
        devices = step.evidence.get("devices", []) if step and step.verdict == "pass" else []
        ops = report.result("perf.op-count", info.role)
        counted = ops.evidence if ops and ops.verdict in ("pass", "fail") and isinstance(ops.evidence, Mapping) else {}
        if devices:
            first = devices[0]
            env = env or Environment(
                str(first.get("device")),
                str(first.get("device_name")),
                int(first.get("threads", 0)),
                report.environment.torch,
                report.environment.python,
                "",
                None,
            )
            for row in first.get("rows", []):
                point = GridPoint.of(int(row["batch"]), int(row["num_classes"]), int(row["emb_dim"]))
                cell = rows.setdefault((str(row["kind"]), point), {})
                for label, key in ((name, "subject"), (own, "reference")):
                    if key == "reference" and (is_reference or first.get("reference_is_subject")):
                        continue
                    stats = _stats(row.get(key))
                    if stats is not None:
                        cell[label] = stats
                        if label not in series:
                            series.append(label)
        if counted.get("num_classes"):
            exponent = counted.get("exponent")
            fit = (
                GrowthFit(float(exponent), float(counted.get("coefficient") or 0.0), None, (), None)
                if isinstance(exponent, (int, float))
                else None
            )
            scaling[name] = OpScaling(
                int(counted.get("batch", 0)),
                int(counted.get("emb_dim", 0)),
                tuple(int(c) for c in counted["num_classes"]),
                tuple(int(o) for o in counted.get("ops", [])),
                fit,
            )
            if name not in series:
                series.append(name)
    if not series:
        return None
    times = tuple(
        StepTimes("train" if kind == "train" else "forward", point, 1, stats, {}, {})
        for (kind, point), stats in rows.items()
    )
    environment = env or Environment("cpu", "?", 0, report.environment.torch, report.environment.python, "", None)
    return BenchResult(
        SCHEMA_VERSION, "quick", report.environment.seed, series[0], tuple(series), environment, None, times, (),
        scaling, {}, {}, (), {}, 0.0,
    )  # fmt: skip


# --- what the section shows besides the checks ------------------------------------------------


def section_extra(
    charts: Sequence[Path] = (),
    *,
    charts_unavailable: bool = False,
    one_run: bool = False,
    relative_to: Path | None = None,
    recorded_dir: Path | None = None,
) -> dict[str, Any]:
    """``Report.extra["performance"]``: charts written (paths relative to ``relative_to``,
    where the Markdown is meant to be read), whether charts were asked for without
    matplotlib, whether every series comes from one run (``headaudit bench``), and the
    summaries of the recorded results found now."""
    base = (relative_to or Path.cwd()).resolve()
    listed = []
    for path in charts:
        shown = PurePosixPath(Path(os.path.relpath(path.resolve(), base)).as_posix())
        listed.append({"chart": CHART_KEYS.get(path.name, path.stem), "path": str(shown)})
    return {
        "charts": listed,
        "charts_unavailable": charts_unavailable,
        "charts_one_run": one_run,
        "recorded": recorded_summaries(recorded_dir),
    }
