"""Spread (head, seed) runs over worker processes: a small fork-based pool.

Each task is ``(HeadSpec, seed)``; with the session's data and config it is all a run needs
(:func:`headaudit.train.loop.run_one` is a pure function of picklable inputs), so the runs
can move onto any pool later. Workers are forked (``multiprocessing.get_context("fork")``):
they start at once, with the modules already imported; each loads its subjects once. Results
come back in task order whatever the workers' speed, so the numbers do not depend on the
number of workers. Progress lines name each finished run.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence

from headaudit.train.data import TrainData
from headaudit.train.loop import HeadSpec, SeedRun, TrainConfig, run_one

__all__ = ["default_workers", "run_all"]

_Task = tuple[HeadSpec, TrainData, TrainConfig, int]


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _run(task: _Task) -> SeedRun:
    head, data, config, seed = task
    return run_one(head, data, config, seed)


def run_all(
    tasks: Sequence[tuple[HeadSpec, int]],
    data: TrainData,
    config: TrainConfig,
    *,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
) -> list[SeedRun]:
    """Every task's run, in task order; ``workers`` <= 1 runs them in this process."""
    jobs: list[_Task] = [(head, data, config, seed) for head, seed in tasks]
    out: list[SeedRun] = []

    def done(run: SeedRun) -> None:
        out.append(run)
        if progress:
            progress(f"trained {run.role} seed {run.seed} ({len(out)}/{len(jobs)}): {run.status}")

    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            done(_run(job))
        return out
    with multiprocessing.get_context("fork").Pool(min(workers, len(jobs))) as pool:
        for run in pool.imap(_run, jobs):
            done(run)
    return out
