"""The precision a subject actually computed in, and the one tolerance rule built on it.

A head can compute in a coarser dtype than the tensors it returns: under
``torch.autocast`` its matrix products run in bfloat16 or float16 while normalisation and
the values handed back stay float32; with bfloat16 parameters everything rounds at
bfloat16. Comparing such a head at float32's rounding blames it for its precision, not
for what it computes. So every call into a subject (:func:`headaudit.sandbox.call_subject`)
runs under a :class:`~torch.overrides.TorchFunctionMode` that notes the floating dtype of
every tensor the subject's torch calls produce (after autocast has chosen it), and
:func:`tolerance`, the only tolerance rule of the checks, widens to the coarsest dtype
the subject was seen computing in during the current check, or to the compared value's
own dtype when that is bfloat16 or float16. A check whose measured effect falls below
that resolution has learnt nothing (:func:`is_reduced` tells it so): it says so, it does
not fail the head.

The rule: ``ulps`` units of the compared dtype's epsilon, times ``max(1, magnitude)``
(64 ulps covers the rounding of a few dozen float32 operations; a real defect moves a
value by orders of magnitude more); when the subject computed in a dtype coarser than
float32 (bfloat16, float16), at least :data:`REDUCED_ROUNDINGS` units of that dtype's
epsilon times the magnitude. Reduced-precision kernels accumulate in float32 and round
once per operation, so a correct head's error is about one unit at the value's
magnitude; eight leave room for a chain of them and still catch a wrong formula, which
moves a value by tens of percent.

Recording is per check: the runner opens :func:`recording` around a check's measurement,
and :func:`computed_dtypes` says what was seen (named in the evidence).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

__all__ = [
    "REDUCED_ROUNDINGS",
    "amplified",
    "coarsest",
    "computed_dtypes",
    "dtype_name",
    "is_reduced",
    "observing",
    "recording",
    "reduced_dtypes",
    "tolerance",
]

#: Units of a reduced-precision dtype's epsilon (times the magnitude) that a correct head
#: computing in it may be off by.
REDUCED_ROUNDINGS = 8.0

_FLOAT32_EPS = torch.finfo(torch.float32).eps


class _Seen:
    """The floating dtypes a subject produced during one check, and whether a call is open."""

    def __init__(self) -> None:
        self.dtypes: set[torch.dtype] = set()
        self.depth = 0


_CURRENT: ContextVar[_Seen | None] = ContextVar("headaudit_precision", default=None)


class _Recorder(TorchFunctionMode):
    def __init__(self, seen: _Seen) -> None:
        super().__init__()
        self.seen = seen

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        _note(out, self.seen.dtypes)
        return out


def _note(value: object, into: set[torch.dtype]) -> None:
    if isinstance(value, torch.Tensor):
        if value.is_floating_point():
            into.add(value.dtype)
    elif isinstance(value, (tuple, list)):
        for item in value:
            _note(item, into)


@contextlib.contextmanager
def recording() -> Iterator[None]:
    """Record, for the duration, the dtypes subjects compute in (one check's measurement)."""
    token = _CURRENT.set(_Seen())
    try:
        yield
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def observing() -> Iterator[None]:
    """Around one call into the subject: note the dtypes its torch calls produce.

    Nested calls share the outer observation; outside :func:`recording` it does nothing,
    and it never runs while ``torch.compile`` traces.
    """
    seen = _CURRENT.get()
    if seen is None or seen.depth or torch.compiler.is_compiling():
        yield
        return
    seen.depth += 1
    try:
        with _Recorder(seen):
            yield
    finally:
        seen.depth -= 1


def computed_dtypes() -> tuple[torch.dtype, ...]:
    """The floating dtypes the subject produced in this check, coarsest first."""
    seen = _CURRENT.get()
    if seen is None:
        return ()
    return tuple(sorted(seen.dtypes, key=lambda d: -torch.finfo(d).eps))


def reduced_dtypes() -> tuple[torch.dtype, ...]:
    """Those of :func:`computed_dtypes` coarser than float32 (bfloat16, float16), coarsest first."""
    return tuple(d for d in computed_dtypes() if torch.finfo(d).eps > _FLOAT32_EPS)


def is_reduced(dtype: torch.dtype) -> bool:
    """Whether a value of ``dtype`` gets the reduced-precision rule in this check."""
    own = dtype.is_floating_point and torch.finfo(dtype).eps > _FLOAT32_EPS
    return own or bool(reduced_dtypes())


def tolerance(dtype: torch.dtype, magnitude: float = 1.0, ulps: float = 64.0) -> float:
    """How far a value of ``dtype`` and about ``magnitude`` may be off (the rule above).

    ``ulps`` applies at float32 or finer; a value that is itself bfloat16 or float16, or
    that the subject computed under autocast in one, gets the reduced-precision rule.
    """
    eps = torch.finfo(dtype).eps if dtype.is_floating_point else torch.finfo(torch.float64).eps
    scale = max(1.0, abs(magnitude))
    reduced = [d for d in (dtype,) if d.is_floating_point and torch.finfo(d).eps > _FLOAT32_EPS]
    reduced += reduced_dtypes()
    if not reduced:
        return float(ulps * eps * scale)
    coarse = max(torch.finfo(d).eps for d in reduced)
    return float(max(ulps * _FLOAT32_EPS, REDUCED_ROUNDINGS * coarse) * scale)


def amplified(dtype: torch.dtype, magnitude: float, condition: float, ulps: float = 64.0) -> float:
    """Tolerance on a quantity solved for from values of ``dtype`` (a least-squares fit).

    Two sources: the quantity's own rounding where it was computed (:func:`tolerance` at
    ``magnitude``, the reduced-precision rule included), and the rounding of the values
    it is read from, ``ulps`` of ``dtype``, amplified by the fit's ``condition`` number.
    """
    eps = torch.finfo(dtype).eps if dtype.is_floating_point else torch.finfo(torch.float64).eps
    read = ulps * eps * max(1.0, abs(condition)) * max(1.0, abs(magnitude))
    return float(max(tolerance(dtype, magnitude, ulps), read))


def coarsest(*dtypes: torch.dtype) -> torch.dtype:
    """The floating dtype with the largest epsilon among ``dtypes`` (the precision a result
    can be trusted to when its inputs or its computation had that precision): a float64
    head fed float32 inputs is compared at float32's rounding."""
    floating = [d for d in dtypes if d.is_floating_point] or [torch.float64]
    return max(floating, key=lambda d: torch.finfo(d).eps)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")
