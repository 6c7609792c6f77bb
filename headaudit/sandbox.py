"""Keeping a subject from taking the audit down: its exceptions, its output, its time.

Three guards, used by the loader and the runner around everything a subject runs:

- :func:`call_subject` turns anything the subject raises (``SystemExit`` included, only
  ``KeyboardInterrupt`` and the audit's own :class:`CheckTimeout` pass through) into
  :class:`SubjectRaised`, which the runner reports as ``error`` with the subject's
  message: an exception of the subject is never a refutation.
- :func:`captured` redirects stdout and stderr at the file-descriptor level (so C-level
  writes are caught too) and records warnings, so nothing the subject prints can reach
  the report's stream; what it wrote is kept as evidence.
- :func:`time_limit` raises :class:`CheckTimeout` in the main thread after a budget, the
  way pytest-timeout's signal method does on POSIX (``SIGALRM`` with ``setitimer``). It
  derives from ``BaseException`` so a subject's ``except Exception`` cannot swallow it.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from headaudit.precision import observing

__all__ = [
    "OUTPUT_LIMIT",
    "CheckTimeout",
    "Output",
    "SubjectRaised",
    "call_subject",
    "captured",
    "describe_exception",
    "time_limit",
]

T = TypeVar("T")

#: Characters of captured output kept per (check, subject); the rest is counted.
OUTPUT_LIMIT = 2000


class CheckTimeout(BaseException):
    """A check ran past its time budget on one subject (``--timeout``)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"exceeded {seconds:g} s")
        self.seconds = seconds


#: The unique module names :func:`headaudit.subjects.import_file` gives a file (``headaudit_subject_<stem>_<digest>``).
_SYNTHETIC_MODULE = re.compile(r"\bheadaudit_subject_(\w+?)_[0-9a-f]{16}\b")


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` on one line (a multi-line message keeps its first line)."""
    text = str(exc).strip()
    if isinstance(exc, SystemExit):
        text = f"exit code {exc.code!r}" if not text or text == str(exc.code) else text
    text = _SYNTHETIC_MODULE.sub(r"\1", text)  # the file's own module name, not the loader's unique one
    first = text.splitlines()[0] if text else ""
    more = " ..." if len(text.splitlines()) > 1 else ""
    return f"{type(exc).__name__}: {first}{more}" if first else type(exc).__name__


class SubjectRaised(Exception):
    """The subject itself raised (or exited) while a check was measuring it."""

    def __init__(self, where: str, exc: BaseException) -> None:
        self.where = where
        self.exc = exc
        self.detail = describe_exception(exc)
        super().__init__(f"{where} raised {self.detail}")


def call_subject(where: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call into the subject; anything it raises becomes :class:`SubjectRaised`."""
    try:
        with observing():  # where its tensors come from sets the tolerances of their comparisons
            return fn(*args, **kwargs)
    except (SubjectRaised, CheckTimeout, KeyboardInterrupt):
        raise
    except BaseException as exc:  # SystemExit and GeneratorExit included: the subject must not end the run
        raise SubjectRaised(where, exc) from exc


@dataclass
class Output:
    """What was written to stdout/stderr and warned while a block ran."""

    text: str = ""
    warnings: list[str] = field(default_factory=list)

    def combined(self, limit: int = OUTPUT_LIMIT) -> str:
        parts = [self.text.rstrip("\n")] if self.text.strip() else []
        parts += [f"warning: {w}" for w in self.warnings]
        whole = "\n".join(parts)
        if len(whole) > limit:
            return whole[:limit] + f"\n... ({len(whole) - limit} more characters)"
        return whole


def _fd_ok(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def captured() -> Iterator[Output]:
    """Capture stdout, stderr (Python and file-descriptor level) and warnings into an Output."""
    out = Output()
    python_buffer = io.StringIO()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    fds = [fd for fd in (1, 2) if _fd_ok(fd)]
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = {fd: os.dup(fd) for fd in fds}
        old_out, old_err = sys.stdout, sys.stderr
        try:
            for fd in fds:
                os.dup2(sink.fileno(), fd)
            sys.stdout = sys.stderr = python_buffer
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    yield out
                finally:
                    out.warnings = [f"{w.category.__name__}: {w.message}" for w in caught]
        finally:
            sys.stdout, sys.stderr = old_out, old_err
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            raw = sink.read().decode("utf-8", errors="replace")
            out.text = python_buffer.getvalue() + raw


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`CheckTimeout` in this block after ``seconds`` (main thread, POSIX).

    Without ``SIGALRM`` (Windows) or off the main thread the block runs unlimited. A
    subject stuck inside one long C call is interrupted when that call returns.
    """
    usable = (
        seconds is not None
        and seconds > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return
    assert seconds is not None

    def _expire(_signum: int, _frame: object) -> None:
        raise CheckTimeout(seconds)

    previous = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
