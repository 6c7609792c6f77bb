"""Shared setup of the pytest-benchmark files: the grid, its marks, one thread on CPU.

Two ways to run them (BENCH.md):

- as tests, in CI: ``pytest benchmarks --benchmark-disable``; each body runs once and
  its count assertions still hold. Only the CI grid points (batch 8 and the equal-work
  batch 1, 7 classes, ``emb_dim`` 256) run; the other grid points, and the training step
  under ``torch.compile`` (minutes of compiling), are marked ``bench_full`` and skipped
  unless ``HEADAUDIT_BENCH_GRID=full``.
- for timing: ``HEADAUDIT_BENCH_GRID=full pytest benchmarks --benchmark-only
  --benchmark-json=out.json`` (no xdist: it disables benchmarks). On CUDA add
  ``--benchmark-timer=headaudit.bench.timers.cuda_sync_perf_counter`` if you change
  the CUDA targets to not synchronise themselves (they do; see ``test_step_time``).

Tests ask for the arguments ``bench_point`` (a :class:`~headaudit.bench.results.GridPoint`
of the grid) and ``bench_device`` (``"cpu"``, ``"cuda"``); :func:`pytest_generate_tests`
parametrizes them. CUDA parametrizations skip with the reason when
``torch.cuda.is_available()`` is false.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

from headaudit.bench.grid import CI_POINT, COMPILED_POINT, grid
from headaudit.bench.timers import intra_op_threads

FULL_GRID = os.environ.get("HEADAUDIT_BENCH_GRID", "").strip().lower() == "full"
CUDA_REASON = (
    "CUDA not available (torch.cuda.is_available() is False: a CPU build or no GPU); "
    "on a GPU machine run these or benchmarks/run_cuda.py"
)
FULL_REASON = "grid point outside the CI grid; set HEADAUDIT_BENCH_GRID=full to run the whole grid"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "bench_full: a benchmark grid point outside the CI grid (HEADAUDIT_BENCH_GRID=full)"
    )


def point_params() -> list[object]:
    """The issue's grid as ``pytest.param``s: ids like ``B8-C7-E256``; every point but
    the CI one marked ``bench_full`` and skipped unless the full grid is asked for."""
    params: list[object] = []
    for point in grid():
        marks = (
            []
            if point in (CI_POINT, COMPILED_POINT)
            else [pytest.mark.bench_full, pytest.mark.skipif(not FULL_GRID, reason=FULL_REASON)]
        )
        params.append(pytest.param(point, id=point.label, marks=marks))
    return params


def device_params() -> list[object]:
    """``cpu`` always; ``cuda`` skipped with :data:`CUDA_REASON` where it is absent."""
    return [
        pytest.param("cpu", id="cpu"),
        pytest.param("cuda", id="cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason=CUDA_REASON)),
    ]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[int]:
    """One intra-op thread while a benchmark runs (BENCH.md), the old count restored after."""
    with intra_op_threads(1) as threads:
        yield threads


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize any test that asks for ``bench_point`` (the grid) or ``bench_device``."""
    if "bench_point" in metafunc.fixturenames:
        metafunc.parametrize("bench_point", point_params())
    if "bench_device" in metafunc.fixturenames:
        metafunc.parametrize("bench_device", device_params())
