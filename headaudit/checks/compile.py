"""Graph breaks of the training step under ``torch.compile`` (missed by the original report).

The training forward with labels (what ``torch.compile`` traces for a step; the backward
is traced from its graphs) of a small head, 4 classes as in CHECKS.md, runs once eagerly
(so an exception of the subject is reported as its own) and then under
``torch._dynamo.explain`` through :func:`headaudit.bench.counts.graph_breaks`, which resets
dynamo's caches before and after. Each distinct break reason is shortened, stripped of
memory addresses, and mapped back to ``file:line`` of the frame it happened
in (the subject file, or another file the head calls into), with the source line.

``pass``: one graph or more and no break; ``fail``: breaks, counted, with their reasons;
``error``: dynamo could not run (why), or traced nothing.

Cost: about 2-4 s per subject (dynamo tracing), plus dynamo's import once per process; a
second trace at more classes would double it (at 8 classes the references break exactly
as often as at 4), so :data:`CLASS_COUNTS` holds one count.
"""

from __future__ import annotations

import linecache
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from headaudit.bench.counts import graph_breaks
from headaudit.bench.step import covering_labels
from headaudit.context import Context
from headaudit.messages import Msg
from headaudit.model import Finding
from headaudit.registry import Check
from headaudit.sandbox import call_subject
from headaudit.subjects import display_path, importable

__all__ = ["CHECKS", "ORDER", "normalise_reason"]

#: Class counts traced; the verdict is read at the first (CHECKS.md measures 4 classes).
CLASS_COUNTS: tuple[int, ...] = (4,)
_EMB, _BATCH, _PATCHES = 16, 8, 4
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
_OBJECT_ID = re.compile(r"\b(id|ID)[=:\s]+\d+")


def normalise_reason(reason: str) -> str:
    """A break reason without the parts that change from run to run (memory addresses, ids)."""
    return _OBJECT_ID.sub(r"\1=…", _ADDRESS.sub("0x…", reason))


@dataclass(frozen=True)
class BreakSite:
    """One distinct (reason, place) of graph breaks."""

    reason: str
    count: int
    file: str | None  # shown like the report shows subject paths
    line: int | None
    source: str | None
    in_subject: bool


@dataclass(frozen=True)
class Trace:
    num_classes: int
    batch: int
    graphs: int | None
    breaks: int | None
    sites: tuple[BreakSite, ...]
    error: str | None = None


@dataclass(frozen=True)
class CompileMeasurement:
    traces: tuple[Trace, ...]
    file: str


def _site(ctx: Context, reason: str, file: str | None, line: int | None, count: int) -> BreakSite:
    path = Path(file).resolve() if file else None
    source = linecache.getline(str(path), line).strip() if path is not None and line else ""
    return BreakSite(
        reason=normalise_reason(reason),
        count=count,
        file=display_path(path) if path is not None else None,
        line=line,
        source=source or None,
        in_subject=path is not None and path == ctx.subject.path.resolve(),
    )


def _trace(ctx: Context, num_classes: int) -> Trace:
    torch.manual_seed(ctx.seed + num_classes)
    head = ctx.build(num_classes=num_classes, emb_dim=_EMB, train=True)
    gen = ctx.generator(33_000 + num_classes)
    pool = torch.randn(_BATCH, _PATCHES, _EMB, generator=gen)
    img = torch.randn(_BATCH, _EMB, generator=gen)
    labels = covering_labels(_BATCH, num_classes, gen)
    forward = ctx.get(head, "forward")
    call_subject("forward", forward, pool, img, labels)  # eagerly first: the subject's own errors are its own
    with importable([ctx.subject]):  # dynamo imports, by name, the module of every function it traces
        found = graph_breaks(forward, pool, img, labels, num_classes=num_classes, batch=_BATCH)
    merged: dict[tuple[str, str | None, int | None], int] = {}
    for r in found.reasons:
        key = (normalise_reason(r.reason), r.file, r.line)
        merged[key] = merged.get(key, 0) + r.count
    sites = tuple(_site(ctx, reason, file, line, count) for (reason, file, line), count in merged.items())
    error = normalise_reason(found.error) if found.error else None
    return Trace(num_classes, _BATCH, found.graph_count, found.graph_break_count, sites, error)


def _measure(ctx: Context) -> CompileMeasurement:
    traces = []
    for num_classes in CLASS_COUNTS:
        trace = _trace(ctx, num_classes)
        traces.append(trace)
        if trace.error is not None:
            break
    return CompileMeasurement(tuple(traces), ctx.subject.display)


def _judge(m: CompileMeasurement) -> Finding:
    first = m.traces[0]
    if first.error is not None:
        return Finding("error", Msg("compile.graph-breaks.error", {"detail": first.error}))
    if not first.graphs or first.breaks is None:
        return Finding("error", Msg("compile.graph-breaks.nothing", {"classes": first.num_classes}))
    if first.breaks == 0:
        clean = {"classes": first.num_classes, "graphs": first.graphs}
        return Finding("pass", Msg("compile.graph-breaks.pass", clean))
    reasons = [
        Msg(
            "compile.graph-breaks.reason",
            {"reason": s.reason, "where": f"{s.file}:{s.line}" if s.file else "?", "count": s.count},
        )
        for s in first.sites
    ]
    params: dict[str, Any] = {
        "breaks": first.breaks,
        "graphs": first.graphs,
        "classes": first.num_classes,
        "distinct": len(first.sites),
        "reasons": reasons,
    }
    return Finding("fail", Msg("compile.graph-breaks.fail", params))


ORDER = 330

CHECKS: tuple[Check[Any], ...] = (
    Check(
        id="compile.graph-breaks",
        catalogue=3,
        measure=_measure,
        judge=_judge,
        needs=("forward",),
        severity="medium",
    ),
)
