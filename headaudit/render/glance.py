"""The "At a glance" block: what a reader who stops after the subjects table must know.

Three lines of counts and a few lines of results, all read from the Report: the original
report's claims counted by measured verdict, the findings it missed counted by severity,
and the most severe results on the subject under audit, each linked to its details.
Pure: no torch, nothing re-run.
"""

from __future__ import annotations

from collections import Counter

from headaudit.messages import Msg, render
from headaudit.model import CLAIM_VERDICTS, Report, Result

__all__ = ["anchor", "glance"]

_SEVERITY_ORDER = ("high", "medium", "low")
_SHOWN = 5
_VERDICT_RANK = {"fail": 0, "error": 1, "warn": 2}


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
    worst = sorted(
        (r for r in report.results if r.subject == role and r.verdict in _VERDICT_RANK),
        key=lambda r: (_SEVERITY_ORDER.index(severity.get(r.check, "low")), _VERDICT_RANK[r.verdict]),
    )[:_SHOWN]
    if worst:
        lines.append("- " + render(Msg("report.glance.worst", {"role": Msg(f"role.{role}")}), lang))
        lines += [f"  - {_line(r, severity.get(r.check, 'low'), lang)}" for r in worst]
    return [*lines, ""]


def _line(result: Result, severity: str, lang: str) -> str:
    mark = {"fail": "❌", "error": "⛔", "warn": "⚠️"}[result.verdict]
    params = {
        "mark": mark,
        "link": f"[`{result.check}`](#{anchor(result.check)})",
        "severity": Msg(f"report.glance.severity.{severity}"),
        "summary": result.summary(lang).replace("\n", " "),
    }
    return render(Msg("report.glance.line", params), lang)
