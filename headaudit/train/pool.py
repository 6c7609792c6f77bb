"""Spread a session's tasks (runs and cluster measurements) over the audit's worker processes.

A :class:`Task` is a call of picklable inputs with a label for the progress line and the
result to give when its worker ends before answering. The workers are the audit's own
(:func:`headaudit.parallel.spread`): forked, so they start at once with the modules and the
loaded subjects already there; results come back in task order whatever the workers'
speed, so the numbers do not depend on the number of workers; a worker that a subject ends
(``os._exit``, a crash) costs that task alone, its ``ended`` result saying how it ended.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from headaudit.parallel import Ended, can_fork, spread

__all__ = ["Task", "run_tasks"]


@dataclass(frozen=True)
class Task:
    """One unit of a session: ``call()`` gives its result, ``ended(how)`` the result of a
    worker that ended first; ``label`` names it in the progress line."""

    label: str
    call: Callable[[], Any]
    ended: Callable[[Ended], Any]


def run_tasks(tasks: Sequence[Task], *, workers: int = 1, progress: Callable[[str], None] | None = None) -> list[Any]:
    """Every task's result, in task order; ``workers`` <= 1 (or no ``fork``) runs them in this process."""

    def started(index: int) -> None:
        if progress:
            progress(f"{tasks[index].label} ({index + 1}/{len(tasks)})")

    if workers <= 1 or len(tasks) <= 1 or not can_fork():
        serial: list[Any] = []
        for index, task in enumerate(tasks):
            started(index)
            serial.append(task.call())
        return serial
    calls = [task.call for task in tasks]
    return spread(
        calls,
        jobs=min(workers, len(tasks)),
        deadline=None,
        ended=lambda index, how: tasks[index].ended(how),
        started=started,
    )
