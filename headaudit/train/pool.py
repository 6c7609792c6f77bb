"""Spread (head, seed) runs over the audit's worker processes (:func:`headaudit.parallel.spread`).

Each task is ``(HeadSpec, seed)``; with the session's data and config it is all a run needs
(:func:`headaudit.train.loop.run_one` is a pure function of picklable inputs). The workers
are the audit's own: forked, so they start at once with the modules already imported;
results come back in task order whatever the workers' speed, so the numbers do not depend
on the number of workers; a worker that a subject ends (``os._exit``, a crash) costs that
run alone, an ``error`` saying how it ended. Progress lines name each run as it starts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from headaudit.parallel import Ended, can_fork, spread
from headaudit.train.data import TrainData
from headaudit.train.loop import HeadSpec, SeedRun, TrainConfig, run_one

__all__ = ["run_all"]


def run_all(
    tasks: Sequence[tuple[HeadSpec, int]],
    data: TrainData,
    config: TrainConfig,
    *,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
) -> list[SeedRun]:
    """Every task's run, in task order; ``workers`` <= 1 (or no ``fork``) runs them in this process."""

    def started(index: int) -> None:
        if progress:
            head, seed = tasks[index]
            progress(f"training {head.role} seed {seed} ({index + 1}/{len(tasks)})")

    def train(index: int) -> SeedRun:
        head, seed = tasks[index]
        return run_one(head, data, config, seed)

    if workers <= 1 or len(tasks) <= 1 or not can_fork():
        serial: list[SeedRun] = []
        for index in range(len(tasks)):
            started(index)
            serial.append(train(index))
        return serial

    def ended(index: int, how: Ended) -> SeedRun:
        head, seed = tasks[index]
        return SeedRun(head.role, seed, "error", f"the subject ended the worker process ({how.describe()})")

    calls = [functools.partial(train, index) for index in range(len(tasks))]
    return spread(calls, jobs=min(workers, len(tasks)), deadline=None, ended=ended, started=started)
