"""Strategies and helpers shared by the check modules.

A :class:`Layout` is a prototype configuration (classes, rows per class, valid rows
per class); :func:`layouts` generates them within the bounds CHECKS.md sets
(``num_classes`` 2-8, ``max_prototypes`` 1-6, per-class counts 0..max).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import strategies as st

from headaudit.adapters import Head, build_head, set_counts
from headaudit.context import Context
from headaudit.model import Text

__all__ = ["Layout", "describe", "fmt", "head_for_layout", "layouts", "pairs", "row_classes"]


@dataclass(frozen=True)
class Layout:
    num_classes: int
    max_prototypes: int
    counts: tuple[int, ...]

    @property
    def valid_rows(self) -> list[int]:
        m = self.max_prototypes
        return [c * m + j for c, k in enumerate(self.counts) for j in range(k)]

    def as_evidence(self) -> dict[str, object]:
        return {"num_classes": self.num_classes, "max_prototypes": self.max_prototypes, "counts": list(self.counts)}


def describe(layout: Layout) -> Text:
    counts = ", ".join(map(str, layout.counts))
    return Text(
        f"{layout.num_classes} classes, max_prototypes={layout.max_prototypes}, valid per class [{counts}]",
        f"{layout.num_classes} 个类别，max_prototypes={layout.max_prototypes}，每类有效原型数 [{counts}]",
    )


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


def head_for_layout(ctx: Context, layout: Layout, emb_dim: int, **extra: Any) -> tuple[Head, Layout]:
    """A seeded eval-mode head with exactly ``layout``'s valid rows.

    Returns the layout actually built: a head that fixes ``max_prototypes`` itself
    (the compatibility ``Head``) gets the counts clipped to its own maximum.
    """
    torch.manual_seed(ctx.seed)
    head = build_head(
        ctx.subject,
        num_classes=layout.num_classes,
        emb_dim=emb_dim,
        num_prototypes=1,
        max_prototypes=layout.max_prototypes,
        **extra,
    )
    per_class = int(head.proto_manager.max_prototypes)
    built = Layout(layout.num_classes, per_class, tuple(min(k, per_class) for k in layout.counts))
    set_counts(head, built.counts)
    return head, built


def row_classes(layout: Layout) -> dict[int, int]:
    """Valid row index -> owning class."""
    return {row: row // layout.max_prototypes for row in layout.valid_rows}


def fmt(x: float, digits: int = 4) -> str:
    """A number for prose: ``digits`` significant digits, ``nan``/``inf`` spelled out."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return f"{x:.{digits}g}"


def pairs(rows: Sequence[int]) -> list[tuple[int, int]]:
    return [(a, b) for i, a in enumerate(rows) for b in rows[i + 1 :]]
