"""Growth exponents: how a count scales with a size (operators per step against classes).

A straight line through ``(log size, log count)`` by least squares gives the exponent of
the best power law ``count ~ a * size ** k``. Over a short range, a count that is
``linear + quadratic`` (a loop over classes plus a loop nested in it) fits an exponent
between 1 and 2 that rises with the range; so the fit also reports the slopes between
successive points and the coefficient of an explicit quadratic fit, which together show
whether a quadratic term is there.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from headaudit.bench.results import GrowthFit

__all__ = ["fit_growth"]


def fit_growth(sizes: Sequence[float], counts: Sequence[float]) -> GrowthFit:
    """Fit ``counts ~ coefficient * sizes ** exponent`` by least squares in log-log space.

    Needs at least two distinct sizes and positive values (a zero count has no
    logarithm: it raises ``ValueError`` rather than fitting something else). ``r2`` is
    ``1 - SS_res / SS_tot`` of the log-log line, ``1.0`` when all counts are equal (the
    constant fits exactly). ``quadratic`` is set from three sizes on.
    """
    if len(sizes) != len(counts):
        raise ValueError(f"sizes and counts differ in length: {len(sizes)} != {len(counts)}")
    if len(set(sizes)) < 2:
        raise ValueError(f"need at least two distinct sizes to fit a growth exponent, got {list(sizes)!r}")
    if any(s <= 0 for s in sizes) or any(c <= 0 for c in counts):
        raise ValueError(f"sizes and counts must be positive, got {list(sizes)!r} and {list(counts)!r}")
    x = np.log(np.asarray(sizes, dtype=np.float64))
    y = np.log(np.asarray(counts, dtype=np.float64))
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    ss_res = float(np.sum(residual**2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 if ss_tot == 0.0 else 1.0 - ss_res / ss_tot
    order = np.argsort(x, kind="stable")
    local = tuple(float((y[j] - y[i]) / (x[j] - x[i])) for i, j in itertools.pairwise(order) if x[j] != x[i])
    quadratic: tuple[float, float, float] | None = None
    if len(set(sizes)) >= 3:
        s = np.asarray(sizes, dtype=np.float64)
        design = np.stack([np.ones_like(s), s, s**2], axis=1)
        coef, *_ = np.linalg.lstsq(design, np.asarray(counts, dtype=np.float64), rcond=None)
        quadratic = (float(coef[0]), float(coef[1]), float(coef[2]))
    return GrowthFit(
        exponent=float(slope),
        coefficient=float(math.exp(intercept)),
        r2=r2 if math.isfinite(r2) else None,
        local_exponents=local,
        quadratic=quadratic,
    )
