"""The host's call site of the head (claim 2.1): does ``main_model.forward`` only lose ``loss_dict``?

The original report says the host "only loses the loss breakdown" (severity low). The
check measures, for each head class of the subject's file, what the host under audit
(``--host``, default the host as quoted) does in training and in eval, and runs the
report's suggested fix and a fix that unpacks by the head's actual return in the same
matrix (:mod:`headaudit.checks._hosting`), so that section 四 of the report recommends
only an edit verified here. The static side reads every ``self.head(...)`` call of the
host class from its source (its unpack arity and guards) and predicts each cell from the
head's measured return; it stands alone when the host cannot be imported here.

Verdict, on the host under audit: ``fail`` when a cell raises (or, without a runtime,
when an unguarded unpack cannot take what the head returns); ``pass`` when none does,
the lost breakdown named; ``n/a`` when neither side can decide. What the two fixes do is
evidence (the report's advice reads it), not part of the verdict: the claim is about the
host. Costs about 0.1 s per subject (3 hosts x 2 classes x 3 modes, tiny heads).
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
    call_sites,
    forward_source,
    head_classes,
    head_returns,
    run_matrix,
)
from headaudit.context import Context
from headaudit.messages import Msg
from headaudit.model import Finding
from headaudit.registry import Check

__all__ = ["CHECKS", "ORDER", "HostEvidence", "LossDictMeasurement", "cell_msgs"]


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


def _judge(m: LossDictMeasurement) -> Finding:
    host = m.host("host")
    fixes = _fixes(m)
    raising = _raising(host)
    if raising:
        params = {"count": len(raising), "total": len(host.cells), "cells": cell_msgs(raising), **fixes}
        return Finding("fail", Msg("host.loss-dict.fail", params))
    predicted = [
        (site, p) for site in host.calls for p in site.predictions if p.outcome == "raises" and p.reached is True
    ]
    ran = [c for c in host.cells if c.outcome in ("works", "loses-breakdown")]
    if predicted and len(ran) < len(host.cells):
        site, p = predicted[0]
        params = {
            "line": site.line,
            "arity": site.arity or 0,
            "head": p.head,
            "mode": Msg(f"report.engineering.mode.{p.mode}"),
            "returned": p.returned,
            "count": len(predicted),
            "why": host.runtime or Msg("host.loss-dict.unrunnable_why", {}),
            **fixes,
        }
        return Finding("fail", Msg("host.loss-dict.fail_static", params))
    if not ran:
        unrunnable = sorted({f"`{c.detail}`" for c in host.cells if c.outcome == "unrunnable"})
        if host.runtime is not None:
            return Finding("n/a", Msg("host.loss-dict.na_runtime", {"detail": host.runtime, "calls": len(host.calls)}))
        return Finding("n/a", Msg("host.loss-dict.na_unrunnable", {"names": unrunnable}))
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
