"""Timing and counting for the Performance section (``perf.*`` checks, ``headaudit bench``).

What is measured and how follows ``shared/spec/BENCH.md``: a training step is
``zero_grad(set_to_none=True)``, forward with labels in train mode, ``backward``;
forward-only runs in eval mode. Subjects are compared by ratios of p10 times from calls
interleaved one by one in one process; beside every time stand the counts that do not
depend on the machine (operators, FLOPs, graph breaks, host syncs) and the machine's
limit measured in the same run. Typical use::

    from headaudit.bench import reference_factories, run_bench
    result = run_bench(reference_factories(), reference="head.py")
    result.to_json()

Modules: :mod:`~headaudit.bench.step` (inputs and step closures),
:mod:`~headaudit.bench.timers`, :mod:`~headaudit.bench.counts`,
:mod:`~headaudit.bench.limit`, :mod:`~headaudit.bench.fit`,
:mod:`~headaudit.bench.results` (frozen records, JSON; no torch),
:mod:`~headaudit.bench.grid` (no torch), :mod:`~headaudit.bench.run`,
:mod:`~headaudit.bench.plots` (matplotlib, optional), :mod:`~headaudit.bench.recorded`
(results saved under ``benchmarks/results/``, read for the report; no torch).

Names that need torch are imported on first use, so ``headaudit.bench.results`` and
``headaudit.bench.grid`` load without it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headaudit.bench.counts import count_flops, count_ops, count_sync_warnings, graph_breaks, host_syncs
    from headaudit.bench.fit import fit_growth
    from headaudit.bench.grid import BenchConfig, grid
    from headaudit.bench.limit import distance, floor, measure_limit
    from headaudit.bench.plots import plots_available, write_plots
    from headaudit.bench.results import SCHEMA_VERSION, BenchResult, GridPoint, result_filename
    from headaudit.bench.run import run_bench
    from headaudit.bench.step import HeadFactory, LossFn, head_factory, make_inputs, make_step, reference_factories
    from headaudit.bench.timers import (
        CudaEventTimer,
        cpu_timer,
        cuda_sync_perf_counter,
        interleaved,
        ratio,
        summarize,
    )

_LAZY = {
    "BenchConfig": "headaudit.bench.grid",
    "BenchResult": "headaudit.bench.results",
    "CudaEventTimer": "headaudit.bench.timers",
    "GridPoint": "headaudit.bench.results",
    "HeadFactory": "headaudit.bench.step",
    "LossFn": "headaudit.bench.step",
    "SCHEMA_VERSION": "headaudit.bench.results",
    "count_flops": "headaudit.bench.counts",
    "count_ops": "headaudit.bench.counts",
    "count_sync_warnings": "headaudit.bench.counts",
    "cpu_timer": "headaudit.bench.timers",
    "cuda_sync_perf_counter": "headaudit.bench.timers",
    "distance": "headaudit.bench.limit",
    "fit_growth": "headaudit.bench.fit",
    "floor": "headaudit.bench.limit",
    "graph_breaks": "headaudit.bench.counts",
    "grid": "headaudit.bench.grid",
    "head_factory": "headaudit.bench.step",
    "host_syncs": "headaudit.bench.counts",
    "interleaved": "headaudit.bench.timers",
    "make_inputs": "headaudit.bench.step",
    "make_step": "headaudit.bench.step",
    "measure_limit": "headaudit.bench.limit",
    "plots_available": "headaudit.bench.plots",
    "ratio": "headaudit.bench.timers",
    "reference_factories": "headaudit.bench.step",
    "result_filename": "headaudit.bench.results",
    "run_bench": "headaudit.bench.run",
    "summarize": "headaudit.bench.timers",
    "write_plots": "headaudit.bench.plots",
}

__all__ = [
    "SCHEMA_VERSION",
    "BenchConfig",
    "BenchResult",
    "CudaEventTimer",
    "GridPoint",
    "HeadFactory",
    "LossFn",
    "count_flops",
    "count_ops",
    "count_sync_warnings",
    "cpu_timer",
    "cuda_sync_perf_counter",
    "distance",
    "fit_growth",
    "floor",
    "graph_breaks",
    "grid",
    "head_factory",
    "host_syncs",
    "interleaved",
    "make_inputs",
    "make_step",
    "measure_limit",
    "plots_available",
    "ratio",
    "reference_factories",
    "result_filename",
    "run_bench",
    "summarize",
    "write_plots",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'headaudit.bench' has no attribute {name!r}")
