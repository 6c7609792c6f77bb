"""The host's call site of the head (claim 2.1): does ``main_model.forward`` only lose ``loss_dict``?

The original report says the host "only loses the loss breakdown" (severity low). The
check measures, for each head class of the subject's file, what the host under audit
(``--host``, default the host as quoted) does in training and in eval, and runs the
report's suggested fix and a fix that unpacks by the head's actual return in the same
matrix (:mod:`headaudit.checks._hosting`), so that section 四 of the report recommends
only an edit verified here. The static side reads the host's source: every
``self.head(...)`` call of the host class (its unpack arity and guards), and its
``forward`` walked for each head class's measured return in each mode
(:func:`headaudit.astscan.follow`): a dispatch on ``len(head_output)`` or ``isinstance``
is evaluated, each unpack and index in the arm taken is checked, and the loss-dict keys
that reach the return are read. Each cell the host could not run here (it does not
import, or its forward needs what only its constructor sets) is judged from that walk.

Verdict, on the host under audit: ``fail`` when a cell raises (measured, or predicted
from the source for a cell that could not run); ``pass`` when every cell is measured or
decided from the source and none raises, the lost breakdown named; ``n/a`` when a cell is
neither, naming what its source does not give. What the two fixes do is evidence (the
report's advice reads it), not part of the verdict: the claim is about the host. Costs
about 0.1 s per subject (3 hosts x 2 classes x 3 modes, tiny heads).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from headaudit.advice import HostFixAdvice, cell_messages
from headaudit.checks._hosting import (
    HEAD_CLASS_NEEDS,
    CallSite,
    Cell,
    HeadReturn,
    StaticCell,
    call_sites,
    forward_source,
    head_classes,
    head_returns,
    run_matrix,
    static_cells,
)
from headaudit.context import Context
from headaudit.messages import Msg
from headaudit.model import Finding
from headaudit.registry import Check

__all__ = ["CHECKS", "ORDER", "HostEvidence", "LossDictMeasurement", "cell_msgs", "static_msgs"]


@dataclass(frozen=True)
class HostEvidence:
    """One host variant: where it is, whether it ran here, its call sites and its cells."""

    variant: str  # host (under audit), suggested (the report's fix), fixed (unpacks by the return)
    path: str
    host_class: str
    sha256: str
    runtime: str | None  # None: imported and run; else why it could not be imported
    calls: tuple[CallSite, ...]
    cells: tuple[Cell, ...]
    forward_source: str | None
    static: tuple[StaticCell, ...] = ()  # every cell predicted from the source (judged where not run)


@dataclass(frozen=True)
class LossDictMeasurement:
    head_classes: tuple[str, ...]
    returns: tuple[HeadReturn, ...]
    hosts: tuple[HostEvidence, ...]
    instances: Msg  # how host instances were made (no constructor run)

    def host(self, variant: str) -> HostEvidence:
        return next(h for h in self.hosts if h.variant == variant)


def _measure(ctx: Context) -> LossDictMeasurement:
    classes = head_classes(ctx)
    returns = head_returns(ctx, classes)
    cells = run_matrix(ctx, classes, ctx.hosts.variants())
    hosts = tuple(
        HostEvidence(
            variant=variant,
            path=file.display,
            host_class=file.class_name,
            sha256=file.sha256,
            runtime=file.unavailable,
            calls=call_sites(file, returns),
            cells=tuple(c for c in cells if c.host == variant),
            forward_source=forward_source(file) if variant == "fixed" else None,  # shown in the advice
            static=static_cells(variant, file, returns),
        )
        for variant, file in ctx.hosts.variants()
    )
    return LossDictMeasurement(tuple(c.__name__ for c in classes), returns, hosts, Msg("host.loss-dict.instances", {}))


def cell_msgs(cells: list[Cell]) -> list[Msg]:
    """Cells as sentences, one per host, head class and outcome (listing the modes)."""
    return cell_messages([dataclasses.asdict(c) for c in cells])


def _raising(h: HostEvidence) -> list[Cell]:
    return [c for c in h.cells if c.outcome == "raises"]


def _fixes(m: LossDictMeasurement) -> dict[str, Any]:
    """What the report's suggested fix and the verified fix did (for every message)."""
    suggested = _raising(m.host("suggested"))
    fixed = m.host("fixed")
    fixed_ok = bool(fixed.cells) and all(HostFixAdvice.works(dataclasses.asdict(c)) for c in fixed.cells)
    return {
        "suggested": (
            Msg("host.loss-dict.suggested_raises", {"count": len(suggested), "cells": cell_msgs(suggested)})
            if suggested
            else Msg("host.loss-dict.suggested_works", {})
        ),
        "fixed": Msg("host.loss-dict.fixed_works" if fixed_ok else "host.loss-dict.fixed_fails", {}),
    }


_RAN = ("works", "loses-breakdown", "raises")


def _not_run(host: HostEvidence) -> list[StaticCell | None]:
    """For each cell the host could not run here, the cell its source predicts (None: none)."""
    static = {(c.head, c.mode): c for c in host.static}
    return [static.get((c.head, c.mode)) for c in host.cells if c.outcome not in _RAN]


def _why_not_run(host: HostEvidence) -> Any:
    if host.runtime is not None:
        return host.runtime
    names = sorted({f"`{c.detail}`" for c in host.cells if c.outcome == "unrunnable"})
    return Msg("host.loss-dict.unrunnable_why", {"names": names})


def _modes(cells: list[StaticCell]) -> list[Msg]:
    return [Msg(f"report.engineering.mode.{c.mode}") for c in cells]


def _branches(cell: StaticCell) -> list[Msg]:
    out = []
    for branch in cell.branches:
        line, _, rest = branch.partition(": ")
        text, _, value = rest.rpartition(" -> ")
        if value in ("True", "False"):
            out.append(Msg(f"host.loss-dict.static.branch_{value.lower()}", {"line": int(line), "condition": text}))
    return out


def _operation(cell: StaticCell) -> Msg:
    kind, _, arg = cell.operation.partition(":")
    if kind == "unpack":
        starred = arg.endswith("+")
        return Msg(f"host.loss-dict.op.unpack{'_starred' if starred else ''}", {"arity": int(arg.rstrip("+"))})
    if kind == "index":
        return Msg("host.loss-dict.op.index", {"index": arg})
    if kind == "attribute":
        return Msg("host.loss-dict.op.attribute", {"name": arg})
    return Msg(f"host.loss-dict.op.{kind or 'raise'}", {})


def static_msgs(cells: list[StaticCell]) -> list[Msg]:
    """Predicted cells as sentences, one per head class and outcome (listing the modes)."""
    groups: dict[tuple[Any, ...], list[StaticCell]] = {}
    for c in cells:
        key = (c.head, c.outcome, c.detail, c.line, c.operation, c.lost, c.lost_in, c.returned, c.branches)
        groups.setdefault(key, []).append(c)
    out = []
    for group in groups.values():
        c = group[0]
        params: dict[str, Any] = {"head": c.head, "modes": _modes(group), "line": c.line or 0, "detail": c.detail}
        params |= {"returned": c.returned, "lost": list(c.lost), "branches": _branches(c) or "-"}
        if c.outcome == "raises":
            params["operation"] = _operation(c)
        msg_id = f"loses-breakdown_{c.lost_in}" if c.outcome == "loses-breakdown" else c.outcome
        out.append(Msg(f"host.loss-dict.static.{msg_id}", params))
    return out


def _judge(m: LossDictMeasurement) -> Finding:
    host = m.host("host")
    fixes = _fixes(m)
    raising = _raising(host)
    if raising:
        params = {"count": len(raising), "total": len(host.cells), "cells": cell_msgs(raising), **fixes}
        return Finding("fail", Msg("host.loss-dict.fail", params))
    not_run = _not_run(host)
    if not_run:  # judged from the source where it could not run
        predicted = [c for c in not_run if c is not None]
        total, why = len(host.cells), _why_not_run(host)
        base = {"why": why, "total": total, "read": len(not_run), **fixes}
        failing = [c for c in predicted if c.outcome == "raises"]
        if failing:
            params = {**base, "count": len(failing), "cells": static_msgs(failing)}
            return Finding("fail", Msg("host.loss-dict.fail_static", params))
        undecided = [c for c in predicted if c.outcome == "undecided"]
        if undecided or len(predicted) < len(not_run):
            params = {**base, "decided": total - len(undecided) - (len(not_run) - len(predicted))}
            params["undecided"] = static_msgs(undecided) or "-"
            msg_id = "na_runtime" if host.runtime is not None else "na_unrunnable"
            return Finding("n/a", Msg(f"host.loss-dict.{msg_id}", params))
        ran = [c for c in host.cells if c.outcome in _RAN]
        cells = cell_msgs([c for c in ran if c.outcome == "loses-breakdown"]) + static_msgs(predicted)
        params = {**base, "ran": len(ran), "cells": cells}
        return Finding("pass", Msg("host.loss-dict.pass_static", params))
    ran = [c for c in host.cells if c.outcome in ("works", "loses-breakdown")]
    lost = [c for c in host.cells if c.outcome == "loses-breakdown"]
    params = {"cells": len(ran), "lost": cell_msgs(lost) or "-", **fixes}
    return Finding("pass", Msg("host.loss-dict.pass", params))


ORDER = 210

CHECKS: tuple[Check[Any], ...] = (
    Check(
        id="host.loss-dict",
        catalogue=2,
        measure=_measure,
        judge=_judge,
        needs=(*HEAD_CLASS_NEEDS, "forward.labels"),
        severity="high",
    ),
)
