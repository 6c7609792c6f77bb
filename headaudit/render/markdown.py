"""The Markdown report, in English or Chinese: a pure function of a Report.

Sections follow the hand-written report's order (一 theory, 二 engineering, 三 summary,
四 usage advice; those two and the host files in :mod:`headaudit.render.summary`), then
the groups and reproducibility. Each claim of the original report gets a subsection with what it
said, the measured verdict, every check's verdict per subject with its evidence, and a
command that reproduces it. Every sentence comes from the language's catalogue; nothing
here imports torch or re-runs a check. The pieces this module shares with the section
renderers (labels, the verdict table head, a check's block) are in
:mod:`headaudit.render._blocks`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath

from headaudit.claims import CLAIMS, SECTIONS, Claim
from headaudit.messages import Msg, render
from headaudit.model import ClaimResult, Report, Result
from headaudit.render._blocks import (
    _check_block,
    _claim_label,
    _command,
    _role,
    _role_table_head,
    _roles,
    _t,
    _verdict,
    cell,
)
from headaudit.render.contracts import render_contracts
from headaudit.render.glance import glance
from headaudit.render.missed import render_missed
from headaudit.render.mutation import render_mutation
from headaudit.render.performance import render_performance
from headaudit.render.summary import further_checks, host_files, summary_sections
from headaudit.render.training import training_section

__all__ = ["GROUP_RENDERERS", "GROUP_SECTIONS", "cell", "group_section", "render_markdown"]


def _claim_block(report: Report, claim: Claim, result: ClaimResult, lang: str) -> list[str]:
    ran = [c for c in claim.checks if report.check(c)]
    roles = _roles(report)
    lines = [
        f"### {claim.ref} {render(claim.title(), lang)}",
        "",
        f"- **{_t('original', lang)}**: {render(Msg(f'claim.{claim.ref}.original'), lang)}: "
        f"{render(Msg(f'claim.{claim.ref}.says'), lang)}",
        f"- **{_t('measured', lang)}**: {_claim_label(result, lang)}: {render(result.message, lang)} "
        f"{_t('judged_on', lang, role=_role(result.subject, lang))}",
        "",
        *_role_table_head(roles, lang),
    ]
    for check_id in dict.fromkeys(ran):
        cells = []
        for role in roles:
            r = report.result(check_id, role)
            cells.append(_verdict(r.verdict, lang) if r else "")
        lines.append(f"| `{check_id}` | " + " | ".join(cells) + " |")
    lines.append("")
    for check_id in dict.fromkeys(ran):
        lines += _check_block(report, check_id, lang)
    return lines


def _examples_cell(r: Result | None, lang: str) -> str:
    if r is None:
        return ""
    if r.search is not None:
        s = r.search
        return _t("examples_cell", lang, examples=s.examples, explicit=s.explicit, shrinks=s.shrinks, budget=s.budget)
    if r.verdict in ("n/a", "error"):
        return _t("not_run", lang)
    return _t("no_search", lang)


def _detection(report: Report, lang: str) -> str:
    data = report.environment.detection
    checks = [c.id for c in report.checks if c.search]
    if not isinstance(data, dict) or not checks:
        return _t("detection_none", lang)
    rates = []
    for check_id in checks:
        entry = data.get("checks", {}).get(check_id)
        if entry:
            rates.append(Msg("report.detection_rate", {"check": check_id, **entry}))
    return _t("detection", lang, seeds=data.get("seeds", "?"), profile=data.get("profile", "?"), rates=rates)


def _reproducibility(report: Report, lang: str) -> list[str]:
    env = report.environment
    roles = _roles(report)
    maps = ", ".join(f"`{k}={v}`" for k, v in env.maps)
    lines = [
        f"## {_t('repro', lang)}",
        "",
        f"- headaudit {env.tool_version}; {env.python}; torch {env.torch}; hypothesis {env.hypothesis}",
        f"- {_t('device', lang, device=env.device, threads=env.threads)}",
        "- "
        + _t(
            "seeding",
            lang,
            seed=env.seed,
            profile=env.profile,
            factor=f"{env.example_factor:g}",
            timeout="-" if env.timeout is None else f"{env.timeout:g}",
        ),
        f"- {_t('maps', lang, maps=maps) if maps else _t('no_maps', lang)}",
        f"- {_detection(report, lang)}",
        f"- {_t('command', lang)}: {_command(report, None)}",
        f"- {_t('cache', lang)}",
    ]
    for s in report.subjects:
        lines.append(f"- {_role(s.role, lang)}: `{s.path}` sha256 `{s.sha256}`")
    lines += ["", f"{_t('examples', lang)}:", "", *_role_table_head(roles, lang)]
    for c in report.checks:
        cells = [_examples_cell(report.result(c.id, role), lang) for role in roles]
        lines.append(f"| `{c.id}` | " + " | ".join(cells) + " |")
    return [*lines, "", *render_mutation(report, lang)]


def _subjects(report: Report, lang: str) -> list[str]:
    lines = [
        f"## {_t('subjects', lang)}",
        "",
        f"| {_t('role', lang)} | {_t('class', lang)} | {_t('path', lang)} | sha256 |",
        "|---|---|---|---|",
    ]
    for s in report.subjects:
        lines.append(f"| {_role(s.role, lang)} | `{s.head_class}` | `{cell(s.path)}` | `{s.sha256[:16]}…` |")
    lines.append("")
    for s in report.subjects:
        if s.only is not None:
            section = render(Msg(f"section.{s.only}"), lang)
            lines += [_t("measured_only", lang, role=_role(s.role, lang), section=section), ""]
    for s in report.subjects:
        if s.load_output:
            lines += [_t("printed", lang, role=_role(s.role, lang), text=""), "", "```text", s.load_output, "```", ""]
    return lines


GroupRenderer = Callable[[Report, str], list[str]]

#: Report sections after the claims, in CHECKS.md's order: the check group each shows.
GROUP_SECTIONS: tuple[str, ...] = ("missed", "contracts", "performance", "training")

#: A group with its own renderer; the others get :func:`group_section`.
GROUP_RENDERERS: dict[str, GroupRenderer] = {
    "missed": render_missed,
    "contracts": render_contracts,
    "performance": render_performance,
    "training": training_section,
}


def group_section(report: Report, group: str, lang: str) -> list[str]:
    """A section for the checks of ``group``: verdicts per subject, then each check's block."""
    ids = [c.id for c in report.checks if c.group == group]
    if not ids:
        return []
    roles = _roles(report)
    lines = [f"## {render(Msg(f'section.{group}'), lang)}", "", *_role_table_head(roles, lang)]
    for check_id in ids:
        cells = [_verdict(r.verdict, lang) if (r := report.result(check_id, role)) else "" for role in roles]
        lines.append(f"| `{check_id}` | " + " | ".join(cells) + " |")
    lines.append("")
    for check_id in ids:
        lines += _check_block(report, check_id, lang)
    return lines


def render_markdown(report: Report, lang: str = "en") -> str:
    """The whole report as Markdown in ``lang`` (``en`` or ``zh``)."""
    candidate = next((s for s in report.subjects if s.role == "candidate"), report.subjects[-1])
    lines = [
        f"# {_t('title', lang, candidate=PurePosixPath(candidate.path).name)}",
        "",
        f"> {_t('intro', lang, version=report.environment.tool_version)}",
        "",
        *_subjects(report, lang),
        *host_files(report, lang),
        *glance(report, lang),
    ]
    for section, heading in SECTIONS.items():
        claims = [(c, report.claim(c.ref)) for c in CLAIMS if c.section == section]
        ran = [(c, r) for c, r in claims if r is not None and any(report.check(i) for i in c.checks)]
        further = further_checks(report, section, lang)
        if not ran and not further:
            continue
        lines += [f"## {render(Msg(heading), lang)}", ""]
        for claim, result in ran:
            assert result is not None
            lines += _claim_block(report, claim, result, lang)
        skipped = [c for c, r in claims if (c, r) not in ran]
        if skipped:
            names = ", ".join(f"{c.ref} {render(c.title(), lang)}" for c in skipped)
            lines += [f"*{_t('not_judged', lang, claims=names)}*", ""]
        lines += further
    lines += summary_sections(report, lang)
    for group in GROUP_SECTIONS:
        renderer = GROUP_RENDERERS.get(group)
        lines += renderer(report, lang) if renderer else group_section(report, group, lang)
    lines += _reproducibility(report, lang)
    return "\n".join(lines).rstrip("\n") + "\n"
