"""Spread independent tasks over worker processes, and get their results back in order.

``headaudit report --jobs N`` runs its (check, subject) pairs, and the mutation score its
mutants, through :func:`spread`. The design follows pytest-xdist's "load" scheduling
reduced to what the audit needs:

- the workers are forked (``fork`` start method), so they inherit everything the parent
  loaded: the subjects, the hosts, the registry. A task is a plain callable of the
  parent's; only its index goes to a worker, and only its result comes back (pickled);
- each worker takes one task at a time, so a slow task never holds back a queue of others
  (dynamic dispatch), and the results are put back in the order of the tasks, never in
  the order they finished: what the caller assembles does not depend on which worker ran
  what, nor on how many there were;
- a worker that ends in the middle of a task (the subject called ``os._exit``, crashed
  the interpreter or was killed) costs only that task: :func:`spread` asks the caller's
  ``ended`` for its result, starts a fresh worker and goes on. So does a task that runs
  past ``deadline`` seconds: its worker is killed. The task's own time limit, inside the
  worker, should have ended it first (:func:`grace` later); this is the watchdog for a
  subject that ignores it.

Workers run torch single-threaded: a forked child must not enter the parent's OpenMP
thread pool, and the audit's pairs run single-threaded anyway (:func:`headaudit.runner.run_check`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Generic, Literal, TypeVar

__all__ = ["Ended", "WorkerFailed", "can_fork", "grace", "spread", "usable_cores"]

T = TypeVar("T")


def grace(timeout: float) -> float:
    """Seconds a pair may run past its own ``timeout`` before the watchdog kills its worker:
    its time limit fires inside the worker, and the rest of the pair (judging, sending the
    result) takes far less; a tenth more and 5 s cover a loaded machine."""
    return 5.0 + 0.1 * timeout


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one): ``--jobs``'s default."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def can_fork() -> bool:
    """Whether worker processes can be forked here (not on Windows; macOS has it)."""
    return "fork" in multiprocessing.get_all_start_methods()


@dataclass(frozen=True)
class Ended:
    """How a task ended without a result: its worker ``exited`` (``code``: the exit status,
    or minus the signal that killed it) or ran past the deadline (``timeout``)."""

    kind: Literal["exited", "timeout"]
    code: int | None = None

    def describe(self) -> str:
        """``exit code 3`` or ``signal 11 (SIGSEGV)``: how the worker ended, in words."""
        if self.code is not None and self.code < 0:
            try:
                name = f" ({signal.Signals(-self.code).name})"
            except ValueError:
                name = ""
            return f"signal {-self.code}{name}"
        return f"exit code {self.code}"


class WorkerFailed(RuntimeError):
    """A task raised in a worker: a bug of the audit itself (its tasks never raise)."""


def _serve(conn: Connection, tasks: Sequence[Callable[[], Any]]) -> None:
    """A worker's loop: run the task whose index arrives, send back ``(ok, value)``."""
    import torch

    torch.set_num_threads(1)  # before any op: never enter the OpenMP pool inherited over fork
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    while True:
        try:
            index = conn.recv()
        except EOFError:
            return
        if index is None:
            return
        try:
            reply: tuple[bool, Any] = (True, tasks[index]())
        except BaseException:  # sent to the parent, which raises it
            reply = (False, traceback.format_exc())
        try:
            conn.send(reply)
        except Exception:  # a result that does not pickle is the caller's bug, not the subject's end
            conn.send((False, traceback.format_exc()))


@dataclass(eq=False)
class _Worker(Generic[T]):
    process: Any  # multiprocessing's ForkProcess
    conn: Connection
    task: int | None = None
    started: float = 0.0

    def stop(self, kill: bool = False) -> None:
        if kill and self.process.is_alive():
            self.process.kill()
        else:
            with contextlib.suppress(OSError):
                self.conn.send(None)
        self.process.join(timeout=None if kill else 5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def spread(
    tasks: Sequence[Callable[[], T]],
    *,
    jobs: int,
    deadline: float | None,
    ended: Callable[[int, Ended], T],
    started: Callable[[int], None] | None = None,
) -> list[T]:
    """Run every task in worker processes (at most ``jobs`` at once); their results in task order.

    ``deadline`` bounds one task's wall time (None: unbounded); ``ended(index, how)`` gives
    the result of a task whose worker ended or was killed before it answered.
    ``started(index)`` is told each task as it is handed out (the caller's progress line).
    A task that raises is a bug of the caller: :class:`WorkerFailed`, with its traceback.
    Needs the ``fork`` start method (:func:`can_fork`).
    """
    context = multiprocessing.get_context("fork")
    results: dict[int, T] = {}
    queue = deque(range(len(tasks)))
    workers: list[_Worker[T]] = []

    def start() -> _Worker[T]:
        ours, theirs = context.Pipe()
        process = context.Process(target=_serve, args=(theirs, tasks))  # not daemonic: a head may fork its own
        sys.stdout.flush()
        sys.stderr.flush()
        process.start()
        theirs.close()
        return _Worker(process, ours)

    try:
        while queue or any(w.task is not None for w in workers):
            while queue and (len(workers) < jobs or any(w.task is None for w in workers)):
                idle = next((w for w in workers if w.task is None), None) or start()
                if idle not in workers:
                    workers.append(idle)
                idle.task, idle.started = queue.popleft(), time.monotonic()
                if started is not None:
                    started(idle.task)
                idle.conn.send(idle.task)
            busy = [w for w in workers if w.task is not None]
            left = None if deadline is None else min(w.started + deadline for w in busy) - time.monotonic()
            wait([obj for w in busy for obj in (w.conn, w.process.sentinel)], None if left is None else max(0, left))
            for worker in busy:
                assert worker.task is not None
                reply: tuple[bool, Any] | None = None
                if worker.conn.poll():
                    try:
                        reply = worker.conn.recv()
                    except (EOFError, OSError):
                        reply = None
                if reply is not None:
                    ok, value = reply
                    if not ok:
                        raise WorkerFailed(f"task {worker.task} raised in a worker process:\n{value}")
                    results[worker.task] = value
                    worker.task = None
                    continue
                late = deadline is not None and time.monotonic() >= worker.started + deadline
                if not worker.process.is_alive() or late:
                    if late and worker.process.is_alive():
                        how = Ended("timeout")
                        worker.stop(kill=True)
                    else:
                        worker.process.join()
                        how = Ended("exited", worker.process.exitcode)
                        worker.conn.close()
                    results[worker.task] = ended(worker.task, how)
                    workers.remove(worker)  # a fresh one is forked when a task waits
    finally:
        for worker in workers:
            worker.stop(kill=worker.task is not None)
    return [results[i] for i in range(len(tasks))]
