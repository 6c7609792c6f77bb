"""The engineering half of the Markdown report: host files, 三 and 四.

- :func:`host_files`: the host files the run used (path, class, sha256, whether they
  imported here), after the subjects;
- :func:`further_checks`: the checks of a catalogue section that no claim covers
  (section 二's shapes, dtype and bad-input checks), so that every check is shown;
- :func:`summary_sections`: section 三 (3.1 theory claims, 3.2 engineering claims, both
  as claim | original report says | measured verdict | evidence, and 3.3 a conclusion
  counted from the claim verdicts) and section 四 (the original's recommended configuration
  with what the checks found about it, and a host edit only where this run verified it;
  :mod:`headaudit.advice`).

The host matrix, shown in the block of ``host.loss-dict``, is with the rest of a check's
block in :mod:`headaudit.render._blocks`. Pure functions of a Report: no torch, nothing
re-run. Every sentence is in the catalogues (``report.engineering.*``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from headaudit.advice import (
    HostFixAdvice,
    cell_messages,
    judge_checkpoint,
    judge_configuration,
    judge_host_fix,
    role_msg,
)
from headaudit.claims import CLAIMS, Claim
from headaudit.messages import Msg, render
from headaudit.model import CLAIM_VERDICTS, ClaimResult, Report
from headaudit.render._blocks import (
    _MATRIX_CHECK,
    _check_block,
    _claim_label,
    _e,
    _role,
    _role_table_head,
    _roles,
    _verdict,
    cell,
)
from headaudit.render.training import training_advice

__all__ = ["further_checks", "host_files", "summary_sections"]

Json = Any
_SECTION_GROUPS = {2: "engineering"}  # the sections that can hold checks no claim names


def _code(text: str) -> str:
    return f"`{text}`"


# --- host files ----------------------------------------------------------------------------


def host_files(report: Report, lang: str) -> list[str]:
    """The host files table (only when a check of the engineering section ran)."""
    hosts = report.extra.get("hosts") if isinstance(report.extra, Mapping) else None
    if not hosts or not any(c.group == "engineering" or c.id == _MATRIX_CHECK for c in report.checks):
        return []
    lines = [
        f"### {_e('hosts.heading', lang)}",
        "",
        f"| {_e('hosts.variant', lang)} | {_e('hosts.class', lang)} | {_e('hosts.path', lang)} | sha256 | "
        f"{_e('hosts.runtime', lang)} |",
        "|---|---|---|---|---|",
    ]
    for h in hosts:
        runtime = (
            _e("hosts.imported", lang)
            if not h.get("unavailable")
            else _e("hosts.unavailable", lang, detail=h["unavailable"])
        )
        variant = render(Msg(f"report.engineering.variant.{h['variant']}"), lang)
        lines.append(f"| {variant} | `{h['class']}` | `{cell(h['path'])}` | `{h['sha256'][:16]}…` | {cell(runtime)} |")
    lines += ["", _e("hosts.note", lang), ""]
    for h in hosts:
        if h.get("load_output"):
            lines += [_e("hosts.printed", lang, path=h["path"]), "", "```text", h["load_output"], "```", ""]
    return lines


# --- checks no claim covers ------------------------------------------------------------------


def further_checks(report: Report, section: int, lang: str) -> list[str]:
    """A subsection for the checks of ``section``'s group that no claim of it names."""
    group = _SECTION_GROUPS.get(section)
    claimed = {c for claim in CLAIMS for c in claim.checks}
    ids = [c.id for c in report.checks if c.group == group and c.id not in claimed]
    if not ids:
        return []
    last = max((c.ref for c in CLAIMS if c.section == section), default=f"{section}.0")
    number = f"{section}.{int(last.split('.')[1]) + 1}"
    roles = _roles(report)
    lines = [
        f"### {number} {_e('further.heading', lang)}",
        "",
        _e("further.intro", lang),
        "",
        *_role_table_head(roles, lang),
    ]
    for check_id in ids:
        cells = [_verdict(r.verdict, lang) if (r := report.result(check_id, role)) else "" for role in roles]
        lines.append(f"| `{check_id}` | " + " | ".join(cells) + " |")
    lines.append("")
    for check_id in ids:
        lines += _check_block(report, check_id, lang)
    return lines


# --- section 三 ------------------------------------------------------------------------------


def _judged(report: Report) -> list[tuple[Claim, ClaimResult]]:
    out = []
    for claim in CLAIMS:
        result = report.claim(claim.ref)
        if result is not None and any(report.check(c) for c in claim.checks):
            out.append((claim, result))
    return out


def _table(report: Report, rows: Sequence[tuple[Claim, ClaimResult]], lang: str) -> list[str]:
    lines = [
        f"| {_e('table.claim', lang)} | {_e('table.says', lang)} | {_e('table.verdict', lang)} | "
        f"{_e('table.evidence', lang)} |",
        "|---|---|---|---|",
    ]
    for claim, result in rows:
        decisive = [
            f"`{p.check}`: {r.summary(lang)}"
            for p in (*result.core, *result.caveats)
            if (r := report.result(p.check, result.subject)) is not None and r.verdict != "pass"
        ]
        evidence = "; ".join(decisive) or render(result.message, lang)
        title, says = render(claim.title(), lang), render(Msg(f"claim.{claim.ref}.original"), lang)
        lines.append(f"| {claim.ref} {cell(title)} | {cell(says)} | {_claim_label(result, lang)} | {cell(evidence)} |")
    return [*lines, ""]


def _conclusion(judged: Sequence[tuple[Claim, ClaimResult]], lang: str) -> list[str]:
    counts = Counter(r.verdict for _, r in judged)
    listed = [
        Msg("report.engineering.conclusion.count", {"n": counts[v], "label": Msg(f"claim.label.{v}")})
        for v in CLAIM_VERDICTS
        if counts[v]
    ]
    refuted = [
        Msg("report.engineering.conclusion.claim", {"ref": c.ref, "title": c.title()})
        for c, r in judged
        if r.verdict == "refuted"
    ]
    open_ = [
        Msg("report.engineering.conclusion.claim", {"ref": c.ref, "title": c.title()})
        for c, r in judged
        if r.verdict in ("partly-measured", "not-judged")
    ]
    lines = [
        f"### {_e('conclusion.heading', lang)}",
        "",
        f"- **{_e('conclusion.original_label', lang)}**: {_e('conclusion.original', lang)}",
        f"- **{_e('conclusion.measured_label', lang)}**: "
        + _e("conclusion.counts", lang, total=len(judged), counts=listed),
    ]
    if refuted:
        lines.append(f"- {_e('conclusion.refuted', lang, claims=refuted)}")
    if open_:
        lines.append(f"- {_e('conclusion.open', lang, claims=open_)}")
    key = "conclusion.does_not_hold" if refuted else "conclusion.unconfirmed" if open_ else "conclusion.holds"
    lines += [f"- **{_e(key, lang, n=len(refuted))}**", ""]
    return lines


# --- section 四 ------------------------------------------------------------------------------


def _configuration(report: Report, lang: str) -> list[str]:
    advice = judge_configuration(report)
    body = "\n".join(f"    {k}={v!r}," for k, v in advice.keywords.items())
    lines = [
        f"### {_e('advice.configuration', lang)}",
        "",
        _e("advice.configuration_original", lang),
        "",
        "```python",
        f"head = {advice.head_class}(\n{body}\n)",
        "```",
        "",
    ]
    if advice.subject is None:
        return [*lines, _e("advice.no_subject", lang, cls=advice.head_class), ""]
    role = _role(advice.subject, lang)
    if advice.recommended:
        return [*lines, f"**{_e('advice.configuration_ok', lang, role=role)}**", ""]
    lines += [
        f"**{_e('advice.configuration_not', lang, role=role, cls=advice.head_class)}**",
        "",
        f"| {_e('advice.what', lang)} | {_e('advice.measured', lang)} |",
        "|---|---|",
    ]
    claims = {c.ref: c for c in CLAIMS}
    for ref, verdict in advice.blocking_claims:
        title = render(claims[ref].title(), lang)
        label = render(Msg(f"claim.label.{verdict}"), lang)
        lines.append(f"| {_e('advice.claim', lang, ref=ref, title=title)} | {cell(label)} |")
    for check_id, verdict in advice.blocking_findings:
        r = report.result(check_id, advice.subject)
        summary = r.summary(lang) if r is not None else ""
        lines.append(f"| `{check_id}` | {_verdict(verdict, lang)}: {cell(summary)} |")
    return [*lines, ""]


def _cells_msg(cells: Sequence[Mapping[str, Json]], lang: str) -> str:
    return render(Msg("report.engineering.advice.cells", {"cells": cell_messages(cells)}), lang)


def _host_fix(report: Report, lang: str) -> list[str]:
    advice: HostFixAdvice = judge_host_fix(report)
    lines = [f"### {_e('advice.host', lang)}", ""]
    if not advice.ran:
        return [*lines, _e("advice.host_not_run", lang), ""]
    roles = [role_msg(r) for r in advice.ran]
    bad = advice.suggested_failures
    if bad:
        lines.append(
            _e("advice.suggested_fails", lang, count=len(bad), total=len(advice.suggested_cells))
            + " "
            + _cells_msg(bad, lang)
        )
    else:
        lines.append(_e("advice.suggested_works", lang, total=len(advice.suggested_cells)))
    lines.append("")
    if advice.recommended:
        lines += [
            f"**{_e('advice.fixed_ok', lang, total=len(advice.fixed_cells), roles=roles)}** "
            + _e("advice.fixed_file", lang, path=advice.fixed_path or "", sha=advice.fixed_sha256 or ""),
            "",
        ]
        if advice.fixed_source:
            lines += ["```python", advice.fixed_source.rstrip("\n"), "```", ""]
    else:
        failures = advice.fixed_failures
        lines += [_e("advice.fixed_not", lang, count=len(failures)) + " " + _cells_msg(failures, lang), ""]
    return lines


def _checkpoint(report: Report, lang: str) -> list[str]:
    advice = judge_checkpoint(report)
    if not advice:
        return []
    lines = [f"### {_e('advice.checkpoint', lang)}", ""]
    for a in advice:
        role = _role(a.role, lang)
        if a.loads:
            lines.append(f"- {_e('advice.checkpoint_loads', lang, role=role)}")
            continue
        parts = [_e("advice.checkpoint_fails", lang, role=role)]
        if a.renamed or a.other:
            renamed = [f"`{k}`" for k in a.renamed] or "-"
            other = [f"`{k}`" for k in a.other] or "-"
            parts.append(_e("advice.checkpoint_fixable", lang, renamed=renamed, other=other))
        if a.redesigned:
            parts.append(_e("advice.checkpoint_beyond_fix", lang, modules=[f"`{m}`" for m in a.redesigned]))
        lines.append("- " + ("" if lang == "zh" else " ").join(parts))
    return [*lines, ""]


def summary_sections(report: Report, lang: str) -> list[str]:
    """Sections 三 and 四 (empty when no claim was judged)."""
    judged = _judged(report)
    if not judged:
        return []
    lines = [f"## {render(Msg('report.summary'), lang)}", ""]
    for section, key in ((1, "table.theory"), (2, "table.engineering")):
        rows = [(c, r) for c, r in judged if c.section == section]
        if rows:
            lines += [f"### {_e(key, lang)}", "", *_table(report, rows, lang)]
    lines += _conclusion(judged, lang)
    lines += [f"## {_e('advice.heading', lang)}", ""]
    lines += _configuration(report, lang)
    lines += training_advice(report, lang)  # what the configuration changed in training (--train)
    lines += _host_fix(report, lang)
    lines += _checkpoint(report, lang)
    return lines
