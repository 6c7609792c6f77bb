"""Means over seeds with 95 % t-intervals, and paired differences (same seed, same batches).

With ``n`` seeds the interval of a mean is ``mean +- t(0.975, n - 1) * sd / sqrt(n)`` (``sd``
the sample standard deviation). One seed has no interval: its half-width is None and every
verdict that needs one says so. Paired differences (head A minus head B, seed by seed) cancel
what the two runs share (backbone initialisation, batches, test split), so their interval is
narrower than the difference of two intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Interval", "interval", "paired", "t_quantile"]

#: ``t(0.975, df)`` for df 1-30 (the Student t quantile of a two-sided 95 % interval).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z975 = 1.959964


def t_quantile(df: int) -> float:
    """``t(0.975, df)``: the table for df <= 30, else the Cornish-Fisher expansion (error < 1e-3)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` seeds and the half-width of its 95 % interval (None for one seed)."""

    mean: float
    half_width: float | None
    n: int

    @property
    def low(self) -> float | None:
        return None if self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> float | None:
        return None if self.half_width is None else self.mean + self.half_width

    def to_dict(self) -> dict[str, float | int | None]:
        return {"mean": self.mean, "half_width": self.half_width, "low": self.low, "high": self.high, "n": self.n}


def interval(values: Sequence[float]) -> Interval:
    """The mean of ``values`` (one per seed) and its 95 % t-interval."""
    n = len(values)
    if n == 0:
        raise ValueError("no values to average")
    mean = math.fsum(values) / n
    if n == 1:
        return Interval(mean, None, 1)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return Interval(mean, t_quantile(n - 1) * sd / math.sqrt(n), n)


def paired(a: Sequence[float], b: Sequence[float]) -> Interval:
    """The mean of ``a[i] - b[i]`` (same seed) and its 95 % t-interval."""
    if len(a) != len(b):
        raise ValueError(f"paired values need the same seeds ({len(a)} vs {len(b)})")
    return interval([x - y for x, y in zip(a, b, strict=True)])
