"""Timers, interleaved repeats and robust statistics (BENCH.md).

A :data:`Timer` is ``timer(fn, number) -> seconds per call``: it runs ``fn`` ``number``
times and returns the mean time of one call over that window.

- :func:`cpu_timer`: ``time.perf_counter`` around the loop, garbage collection paused.
  Use it inside :func:`intra_op_threads` ``(1)``: on shared 2-core machines two threads
  lower the median but multiply the spread.
- :class:`CudaEventTimer`: CUDA events around the loop, read after synchronising.
  ``perf_counter`` alone is wrong on CUDA: kernel launches return as soon as the
  kernel is queued, so the host clock measures the launches, not the work, and the
  work still queued from one sample is billed to whichever sample next waits for the
  device. Events are timestamps written by the device itself when it reaches them in
  the stream; the timer synchronises before the start (nothing of the previous sample
  is pending) and waits for the end event before reading the elapsed time. Like
  Triton's ``do_bench`` it flushes the L2 cache before each sample (outside the timed
  window) so one sample does not inherit a warm cache from the one before.
- :func:`cuda_sync_perf_counter`: ``perf_counter`` after ``torch.cuda.synchronize()``;
  pass ``--benchmark-timer=headaudit.bench.timers.cuda_sync_perf_counter`` to
  pytest-benchmark so its readings wait for the device (on a machine without CUDA it
  is plain ``perf_counter``).

:func:`interleaved` takes the samples: subjects one call at a time in the order
A B B A A B ... so slow drifts of the machine (frequency, other processes) hit every
subject alike; :func:`ratio` compares the p10 of two sample lists, which BENCH.md found
stable to 1-2 % where absolute medians drift 4-12 %.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch

from headaudit.bench.results import SampleStats

__all__ = [
    "CudaEventTimer",
    "Timer",
    "cpu_timer",
    "cuda_sync_perf_counter",
    "interleaved",
    "interleaving_order",
    "intra_op_threads",
    "quantile",
    "ratio",
    "summarize",
    "synchronised",
]

#: ``timer(fn, number) -> seconds per call``; ``fn``'s return value is ignored.
Timer = Callable[[Callable[[], object], int], float]


@contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def intra_op_threads(threads: int) -> Iterator[int]:
    """Set ``torch.set_num_threads(threads)`` for the block, restore the old count after;
    yields the count in force (what a result should record)."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def cpu_timer(fn: Callable[[], object], number: int = 1) -> float:
    """Seconds per call of ``fn`` over ``number`` calls, by ``perf_counter``, GC paused."""
    if number < 1:
        raise ValueError(f"number must be >= 1, got {number!r}")
    with _gc_paused():
        start = time.perf_counter()
        for _ in range(number):
            fn()
        end = time.perf_counter()
    return (end - start) / number


def cuda_sync_perf_counter() -> float:
    """``time.perf_counter()`` read after the current CUDA device has finished its work.

    A drop-in ``--benchmark-timer`` for pytest-benchmark (it calls the timer before and
    after each round). Without an initialised CUDA context it is plain ``perf_counter``,
    so the option is harmless on a CPU machine.
    """
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter()


def synchronised(fn: Callable[[], object], number: int = 1) -> Callable[[], None]:
    """A closure running ``fn`` ``number`` times then waiting for the device.

    For pytest-benchmark on CUDA with its default timer: one benchmark iteration is
    ``number`` steps plus one synchronisation, so the round's ``perf_counter`` reading
    covers the device work (and the sync is amortised over ``number`` steps).
    """

    def run() -> None:
        for _ in range(number):
            fn()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()

    return run


class CudaEventTimer:
    """A :data:`Timer` for CUDA: events around ``number`` calls, L2 flushed before each.

    ``device`` is the CUDA device the events and the flush buffer live on (the current
    one by default). ``flush_bytes`` is the size of the buffer zeroed before each sample
    (256 MiB, larger than any current L2); ``0`` turns flushing off.
    """

    def __init__(self, device: str | torch.device | None = None, *, flush_bytes: int = 256 * 2**20) -> None:
        if not torch.cuda.is_available():
            raise RuntimeError("CudaEventTimer needs a CUDA device and torch.cuda.is_available() is False")
        self.device = torch.device("cuda") if device is None else torch.device(device)
        self.flush_bytes = flush_bytes
        self._flush: torch.Tensor | None = None

    def __call__(self, fn: Callable[[], object], number: int = 1) -> float:
        if number < 1:
            raise ValueError(f"number must be >= 1, got {number!r}")
        with torch.cuda.device(self.device):
            if self.flush_bytes > 0:
                if self._flush is None:
                    self._flush = torch.empty(self.flush_bytes // 4, dtype=torch.int32, device=self.device)
                self._flush.zero_()
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(self.device)
            with _gc_paused():
                start.record()
                for _ in range(number):
                    fn()
                end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3 / number


def interleaving_order(names: Sequence[str], rounds: int) -> list[str]:
    """The call order of :func:`interleaved`: even rounds forwards, odd rounds backwards
    (``A B`` then ``B A``), so each subject runs first and last equally often."""
    order: list[str] = []
    for r in range(rounds):
        order.extend(names if r % 2 == 0 else list(reversed(names)))
    return order


def interleaved(
    fns: Mapping[str, Callable[[], object]],
    repeats: int,
    warmup: int = 1,
    *,
    timer: Timer = cpu_timer,
    number: int = 1,
) -> dict[str, list[float]]:
    """Time every function ``repeats`` times, one sample at a time, interleaved.

    ``warmup`` rounds run first in the same order and are dropped (the first calls load
    libraries, allocate and fill caches). Each sample is ``timer(fn, number)``, seconds
    per call. Returns the samples per name, in the order they were taken.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got repeats={repeats!r}, warmup={warmup!r}")
    names = list(fns)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(warmup + repeats):
        for name in names if r % 2 == 0 else reversed(names):
            seconds = timer(fns[name], number)
            if r >= warmup:
                samples[name].append(seconds)
    return samples


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile with linear interpolation between order statistics (numpy's
    default method). Raises ``ValueError`` on an empty sequence or ``q`` outside [0, 1]."""
    if not values:
        raise ValueError("quantile of an empty sequence")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q!r}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(samples: Sequence[float]) -> SampleStats:
    """p10, median, quartiles, IQR, min and max of ``samples`` (all ``None`` when empty).

    Non-finite samples are dropped first (a failed timer must not turn the summary
    into NaN); ``n`` counts the samples kept.
    """
    kept = [float(s) for s in samples if math.isfinite(s)]
    if not kept:
        return SampleStats(0, None, None, None, None, None, None, None)
    q25, q75 = quantile(kept, 0.25), quantile(kept, 0.75)
    return SampleStats(
        n=len(kept),
        p10=quantile(kept, 0.10),
        median=quantile(kept, 0.5),
        q25=q25,
        q75=q75,
        iqr=q75 - q25,
        min=min(kept),
        max=max(kept),
    )


def ratio(subject: Sequence[float] | SampleStats, reference: Sequence[float] | SampleStats) -> float | None:
    """``p10(subject) / p10(reference)``: below 1 means the subject is faster.

    Accepts raw samples or their :class:`SampleStats`; ``None`` when either side has no
    samples or the reference's p10 is not positive.
    """
    s = subject if isinstance(subject, SampleStats) else summarize(subject)
    r = reference if isinstance(reference, SampleStats) else summarize(reference)
    if s.p10 is None or r.p10 is None or r.p10 <= 0.0:
        return None
    return s.p10 / r.p10
