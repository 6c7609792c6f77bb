"""Strategies, tolerances and helpers shared by the check modules.

A :class:`Layout` is a prototype configuration (classes, rows per class, valid rows per
class); :func:`layouts` generates them within the bounds CHECKS.md sets
(``num_classes`` 2-8, ``max_prototypes`` 1-6, per-class counts 0..max).

Tolerances are relative to the magnitudes involved and to the precision the compared
value was computed in: :func:`tolerance` (given the compared tensors, or the precision
:func:`computed_in` found for them) is the one rule, in :mod:`headaudit.precision`
(re-exported here); every check states the tolerance it used in its evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import strategies as st

from headaudit.adapters import Head, set_counts
from headaudit.context import Context
from headaudit.messages import Msg
from headaudit.precision import coarsest, computed_in, dtype_name, tolerance

__all__ = [
    "Layout",
    "coarsest",
    "computed_in",
    "dtype_name",
    "head_for_layout",
    "layouts",
    "pairs",
    "row_classes",
    "tolerance",
]


@dataclass(frozen=True)
class Layout:
    num_classes: int
    max_prototypes: int
    counts: tuple[int, ...]

    @property
    def valid_rows(self) -> list[int]:
        m = self.max_prototypes
        return [c * m + j for c, k in enumerate(self.counts) for j in range(k)]

    @property
    def rows(self) -> int:
        return self.num_classes * self.max_prototypes

    def describe(self) -> Msg:
        return Msg(
            "common.layout",
            {"classes": self.num_classes, "max_prototypes": self.max_prototypes, "counts": list(self.counts)},
        )

    def as_evidence(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "max_prototypes": self.max_prototypes, "counts": list(self.counts)}


@st.composite
def layouts(draw: st.DrawFn, min_classes_with_rows: int = 0, min_rows: int = 0) -> Layout:
    """Prototype layouts; at least ``min_classes_with_rows`` classes own a valid row."""
    num_classes = draw(st.integers(2, 8))
    per_class = draw(st.integers(1, 6))
    counts = draw(st.lists(st.integers(0, per_class), min_size=num_classes, max_size=num_classes))
    # Repair instead of filtering, so shrinking stays smooth: give the first classes a row.
    for c in range(min(min_classes_with_rows, num_classes)):
        counts[c] = max(counts[c], 1)
    short = min_rows - sum(counts)
    c = 0
    while short > 0 and c < num_classes:
        add = min(per_class - counts[c], short)
        counts[c] += add
        short -= add
        c += 1
    return Layout(num_classes, per_class, tuple(counts))


def head_for_layout(ctx: Context, layout: Layout, emb_dim: int, **settings: Any) -> tuple[Head, Layout]:
    """A seeded eval-mode head with exactly ``layout``'s valid rows.

    Returns the layout actually built: a head that fixes ``max_prototypes`` itself (the
    compatibility ``Head``) gets the counts clipped to its own maximum, and the evidence
    shows that layout, not the one asked for.
    """
    torch.manual_seed(ctx.seed)
    head = ctx.build(
        num_classes=layout.num_classes,
        emb_dim=emb_dim,
        num_prototypes=1,
        max_prototypes=layout.max_prototypes,
        **settings,
    )
    per_class = int(ctx.get(head, "proto_manager.max_prototypes"))
    built = Layout(layout.num_classes, per_class, tuple(min(k, per_class) for k in layout.counts))
    set_counts(ctx, head, built.counts)
    return head, built


def row_classes(layout: Layout) -> dict[int, int]:
    """Valid row index -> owning class."""
    return {row: row // layout.max_prototypes for row in layout.valid_rows}


def pairs(rows: Sequence[int]) -> list[tuple[int, int]]:
    return [(a, b) for i, a in enumerate(rows) for b in rows[i + 1 :]]
