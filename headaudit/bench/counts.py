"""Counts that do not depend on the machine: operators, FLOPs, graph breaks, host syncs.

For a small head these decide the time (BENCH.md, "The limit"): every eager operator
costs a few microseconds of host overhead whatever its size, and every device-to-host
read stalls the launch queue. Counting them is exact and free of noise, so the tests
and the report can assert on them where they must never assert on a time.

- :func:`count_ops`: a :class:`OpCounter` (a ``TorchDispatchMode``) sees every ATen
  operator after autograd and decomposition of composite ops: views, in-place ops,
  the backward's ops (the autograd engine carries the mode into its threads), and
  ``aten._local_scalar_dense`` for each ``.item()``. ``torch.profiler``'s ``aten::``
  events count differently (they also list the composite ops that a dispatch mode
  sees only decomposed, e.g. ``aten::linear`` above ``aten::addmm``); the two are not
  comparable with each other, only within one method.
- :func:`count_flops`: ``torch.utils.flop_counter.FlopCounterMode``: matmul,
  convolution and attention FLOPs of forward and backward; elementwise ops count zero.
- :func:`graph_breaks`: ``torch._dynamo.explain``; never raises, an error comes back
  as :attr:`GraphBreaks.error`.
- :func:`host_syncs`: ``torch.cuda.set_sync_debug_mode("warn")`` and the warnings it
  emits, counted by :func:`count_sync_warnings` (a pure function, tested on CPU);
  ``n/a`` on a CPU device.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from headaudit.bench.results import BreakReason, GraphBreaks, HostSyncs

__all__ = [
    "SYNC_WARNING",
    "OpCount",
    "OpCounter",
    "count_flops",
    "count_ops",
    "count_sync_warnings",
    "graph_breaks",
    "host_syncs",
    "shorten_reason",
]

#: The text c10 emits for each synchronising CUDA call in sync debug mode "warn"
#: (``c10/cuda/CUDAFunctions.cpp``: ``warn_or_error_on_sync``); Python sees it with a
#: "(Triggered internally at ...)" suffix.
SYNC_WARNING = "called a synchronizing CUDA operation"


class OpCounter(TorchDispatchMode):
    """Counts ATen operators by name (``"aten.add"``, overloads merged) while active::

    with OpCounter() as counter:
        step()
    counter.total, counter.counts.most_common(5)
    """

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: Any = (),
        kwargs: Any = None,
    ) -> Any:
        self.counts[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class OpCount:
    """The result of :func:`count_ops`: the per-operator ``counts`` and their ``total``."""

    counts: Counter[str]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def top(self, k: int = 8) -> tuple[tuple[str, int], ...]:
        """The ``k`` most frequent operators, ties broken by name (stable output)."""
        ranked = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))
        return tuple(ranked[:k])


def count_ops(step: Callable[[], object], *, warmup: int = 1) -> OpCount:
    """Operators dispatched by one call of ``step`` (after ``warmup`` uncounted calls,
    which take one-time work such as lazy initialisation out of the count)."""
    for _ in range(warmup):
        step()
    with OpCounter() as counter:
        step()
    return OpCount(counter.counts)


def count_flops(step: Callable[[], object], *, warmup: int = 0) -> int:
    """FLOPs of one call of ``step`` as ``FlopCounterMode`` counts them."""
    for _ in range(warmup):
        step()
    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


# -- graph breaks ------------------------------------------------------------------------


def shorten_reason(reason: str, limit: int = 100) -> str:
    """One line of a dynamo break reason: its first line, plus the operator named in
    backticks in its explanation if there is one (``Dynamic shape operator
    (aten.nonzero.default)``), cut to ``limit`` characters."""
    lines = [line.strip() for line in reason.strip().splitlines() if line.strip()]
    if not lines:
        return "(no reason given)"
    head = lines[0]
    for line in lines[1:]:
        if line.startswith("Explanation:"):
            match = re.search(r"`(aten\.[\w.]+)`", line)
            if match and match.group(1) not in head:
                head = f"{head} ({match.group(1)})"
            break
    return head if len(head) <= limit else head[: limit - 3] + "..."


@contextmanager
def _quiet_dynamo() -> Iterator[None]:
    """Silence dynamo's log warnings and Python warnings (each break logs a page)."""
    logger = logging.getLogger("torch._dynamo")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def graph_breaks(fn: Callable[..., Any], *args: Any, num_classes: int, batch: int) -> GraphBreaks:
    """Run ``torch._dynamo.explain(fn)(*args)`` and summarise its graph breaks.

    Give the training forward with labels (what ``torch.compile`` would trace; the
    backward is traced by AOTAutograd from the forward graphs, and ``loss.backward()``
    inside ``fn`` would only add a break of the harness's own). Reasons are grouped by
    (shortened reason, innermost user frame); ``num_classes`` and ``batch`` are recorded
    because the per-class loops unroll, so the break count grows with classes.

    Dynamo's caches are reset before and after. If dynamo fails, the result carries
    ``error`` with the exception type and message instead of raising.
    """
    try:
        import torch._dynamo as dynamo
    except Exception as exc:  # a broken or missing dynamo install is a result, not a crash
        error = f"torch._dynamo unavailable: {type(exc).__name__}: {exc}"
        return GraphBreaks(num_classes, batch, None, None, (), error)
    dynamo.reset()
    try:
        with _quiet_dynamo():
            explained = dynamo.explain(fn)(*args)
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return GraphBreaks(num_classes, batch, None, None, (), f"dynamo.explain raised {type(exc).__name__}: {message}")
    finally:
        dynamo.reset()
    grouped: Counter[tuple[str, str | None, int | None]] = Counter()
    for reason in explained.break_reasons:
        frame = reason.user_stack[-1] if reason.user_stack else None
        key = (
            shorten_reason(str(reason.reason)),
            None if frame is None else str(frame.filename),
            None if frame is None else frame.lineno,
        )
        grouped[key] += 1
    reasons = tuple(BreakReason(r, file, line, count) for (r, file, line), count in grouped.items())
    return GraphBreaks(num_classes, batch, int(explained.graph_count), int(explained.graph_break_count), reasons)


# -- host syncs --------------------------------------------------------------------------


def count_sync_warnings(records: Iterable[warnings.WarningMessage | Warning | str]) -> int:
    """How many of ``records`` are sync-debug warnings (:data:`SYNC_WARNING`).

    Accepts what ``warnings.catch_warnings(record=True)`` collects, warning instances or
    plain messages; other warnings are ignored.
    """
    count = 0
    for record in records:
        text = str(record.message) if isinstance(record, warnings.WarningMessage) else str(record)
        if SYNC_WARNING in text:
            count += 1
    return count


def host_syncs(step: Callable[[], object], device: str | torch.device, *, warmup: int = 1) -> HostSyncs:
    """Device-to-host synchronisations in one call of ``step`` on ``device``.

    CUDA: ``torch.cuda.set_sync_debug_mode("warn")`` makes every synchronising call
    (``.item()``, ``bool(tensor)``, ``nonzero``, blocking copies to the host, explicit
    synchronisation) emit a warning; they are recorded with the "always" filter (the
    default filter would show each one once per code location) and counted. The mode
    is restored afterwards, even on an exception.

    CPU: ``count is None`` (n/a): the CPU build has no sync debug mode (the call
    raises there) and a CPU step has no device queue to wait for.
    """
    dev = torch.device(device)
    if dev.type != "cuda":
        return HostSyncs(None, f"n/a on {dev.type}: host syncs are measured on CUDA only")
    if not torch.cuda.is_available():
        return HostSyncs(None, "n/a: torch.cuda.is_available() is False")
    for _ in range(warmup):
        step()
    torch.cuda.synchronize(dev)
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step()
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    torch.cuda.synchronize(dev)
    return HostSyncs(count_sync_warnings(records), 'torch.cuda.set_sync_debug_mode("warn"), warnings counted')
