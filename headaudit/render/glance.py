"""The "At a glance" block: what a reader who stops after the subjects table must know.

A few lines of counts and results, all read from the Report: the original report's claims
counted by measured verdict, the findings it missed counted by severity, how many
component contracts hold, every check whose verdict is worse on the candidate than on
the baseline (what a refactor broke: first, so it cannot hide behind the defects both
files share), and the other most severe results on the subject under audit, each linked
to its details. Pure: no torch, nothing re-run.
"""

from __future__ import annotations

from collections import Counter

from headaudit.messages import Msg, render
from headaudit.model import CLAIM_VERDICTS, Report, Result

__all__ = ["anchor", "glance"]

_SEVERITY_ORDER = ("high", "medium", "low")
_SHOWN = 5
_VERDICT_RANK = {"fail": 0, "error": 1, "warn": 2}
#: How bad a verdict is, for "worse on the candidate": n/a counts as pass (nothing was refuted).
_BADNESS = {"pass": 0, "n/a": 0, "warn": 1, "error": 2, "fail": 2}
_REGRESSIONS_SHOWN = 10


def anchor(check_id: str) -> str:
    """The HTML anchor of a check's details block (stable across languages)."""
    return "check-" + check_id.replace(".", "-")


def _subject(report: Report) -> str:
    return next((s.role for s in report.subjects if s.role == "candidate"), report.subjects[-1].role)


def glance(report: Report, lang: str) -> list[str]:
    """The block's Markdown lines (empty when nothing ran)."""
    if not report.results:
        return []
    role = _subject(report)
    lines = [f"## {render(Msg('report.glance.heading'), lang)}", ""]
    judged = Counter(c.verdict for c in report.claims)
    if report.claims:
        counts = [
            Msg("report.glance.count", {"n": judged[v], "label": Msg(f"claim.label.{v}")})
            for v in CLAIM_VERDICTS
            if judged[v]
        ]
        lines.append("- " + render(Msg("report.glance.claims", {"total": len(report.claims), "counts": counts}), lang))
    severity = {c.id: c.severity for c in report.checks}
    missed = [
        r
        for r in report.results
        if r.subject == role
        and r.verdict in ("fail", "warn")
        and (info := report.check(r.check))
        and info.group == "missed"
    ]
    if any(c.group == "missed" for c in report.checks):
        by_severity = Counter(severity[r.check] for r in missed)
        counts = [
            Msg("report.glance.count", {"n": by_severity[s], "label": Msg(f"report.glance.severity.{s}")})
            for s in _SEVERITY_ORDER
            if by_severity[s]
        ]
        key = "report.glance.missed" if counts else "report.glance.missed_none"
        lines.append("- " + render(Msg(key, {"total": len(missed), "counts": counts}), lang))
    contracts = [r for r in report.results if r.subject == role and _group(report, r) == "contracts"]
    if contracts:
        held = sum(r.verdict == "pass" for r in contracts)
        params = {"held": held, "total": len(contracts), "role": Msg(f"role.{role}")}
        lines.append("- " + render(Msg("report.glance.contracts", params), lang))
    order = {c.id: i for i, c in enumerate(report.checks)}
    worse = sorted(_regressions(report), key=lambda r: order.get(r.check, len(order)))
    if worse or (role == "candidate" and any(s.role == "baseline" for s in report.subjects)):
        key = "report.glance.worse" if worse else "report.glance.worse_none"
        lines.append("- " + render(Msg(key, {"n": len(worse)} if worse else {}), lang))
        lines += [f"  - {_line(r, severity.get(r.check, 'low'), lang)}" for r in worse[:_REGRESSIONS_SHOWN]]
        if len(worse) > _REGRESSIONS_SHOWN:
            more = Msg("report.glance.more", {"n": len(worse) - _REGRESSIONS_SHOWN})
            lines.append(f"  - {render(more, lang)}")
    shown = {r.check for r in worse}
    worst = sorted(
        (r for r in report.results if r.subject == role and r.verdict in _VERDICT_RANK and r.check not in shown),
        key=lambda r: (_SEVERITY_ORDER.index(severity.get(r.check, "low")), _VERDICT_RANK[r.verdict]),
    )[:_SHOWN]
    if worst:
        key = "report.glance.worst_other" if shown else "report.glance.worst"
        lines.append("- " + render(Msg(key, {"role": Msg(f"role.{role}")}), lang))
        lines += [f"  - {_line(r, severity.get(r.check, 'low'), lang)}" for r in worst]
    return [*lines, ""]


def _group(report: Report, result: Result) -> str:
    info = report.check(result.check)
    return info.group if info else ""


def _regressions(report: Report) -> list[Result]:
    """The candidate's results whose verdict is worse than the baseline's on the same check."""
    if not {"baseline", "candidate"} <= {s.role for s in report.subjects}:
        return []
    out = []
    for r in report.results:
        if r.subject != "candidate" or _group(report, r) == "performance":
            continue
        before = report.result(r.check, "baseline")
        if before is not None and _BADNESS[r.verdict] > _BADNESS[before.verdict]:
            out.append(r)
    return out


def _line(result: Result, severity: str, lang: str) -> str:
    mark = {"fail": "❌", "error": "⛔", "warn": "⚠️"}[result.verdict]
    params = {
        "mark": mark,
        "link": f"[`{result.check}`](#{anchor(result.check)})",
        "severity": Msg(f"report.glance.severity.{severity}"),
        "summary": result.summary(lang).replace("\n", " "),
    }
    return render(Msg("report.glance.line", params), lang)
