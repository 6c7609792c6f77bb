"""What every section of the Markdown report is built from; it imports none of them.

- labels: :func:`cell` (text safe in a table cell), a check's verdict, a claim's
  verdict and a subject's role, each with its mark, in the report's language;
- :func:`_role_table_head`: the head of a table with a column per subject;
- :func:`_check_block`: a check's block (method, the verdict and summary per subject,
  the evidence, the command that reproduces it), with :func:`check_details`, the extra
  lines a check shows there: for ``host.loss-dict`` the matrix host variant x head class
  x mode per subject, and the call sites its source has.

:mod:`headaudit.render.markdown` and the section renderers (:mod:`~headaudit.render.summary`,
:mod:`~headaudit.render.missed`, :mod:`~headaudit.render.contracts`,
:mod:`~headaudit.render.performance`) import these; this module imports none of them.
Pure functions of a Report: no torch, nothing re-run.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from headaudit.messages import Msg, msg_from_dict, render
from headaudit.model import ClaimResult, Report, Result
from headaudit.render.glance import anchor

Json = Any

_MARK: dict[str, str] = {"pass": "✅", "fail": "❌", "warn": "⚠️", "n/a": "➖", "error": "⛔"}
_CLAIM_MARK: dict[str, str] = {
    "confirmed": "✅",
    "caveats": "⚠️",
    "refuted": "❌",
    "partly-measured": "◐",
    "not-judged": "➖",
}
_MATRIX_CHECK = "host.loss-dict"
_MODES = ("train", "eval", "eval-no-target")
_CELL_MARK = {
    "works": "✅",
    "loses-breakdown": "⚠️",
    "raises": "❌",
    "runs": "⚠️",
    "undecided": "➖",
    "unrunnable": "➖",
    "unavailable": "➖",
}


def _t(key: str, lang: str, **params: object) -> str:
    return render(Msg(f"report.{key}", params), lang)


def _e(key: str, lang: str, **params: object) -> str:
    return render(Msg(f"report.engineering.{key}", params), lang)


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell: pipes escaped, line breaks as <br>."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def _verdict(verdict: str, lang: str) -> str:
    return f"{_MARK[verdict]} {render(Msg('verdict.' + verdict.replace('/', '-')), lang)}"


def _role(role: str, lang: str) -> str:
    return render(Msg(f"role.{role}"), lang) if role in ("baseline", "candidate", "control") else role


def _claim_label(result: ClaimResult, lang: str) -> str:
    return f"{_CLAIM_MARK[result.verdict]} {render(Msg(f'claim.label.{result.verdict}'), lang)}"


def _command(report: Report, only: Iterable[str] | None) -> str:
    env = report.environment
    prefix = "" if env.profile == "ci" else f"HYPOTHESIS_PROFILE={env.profile} "
    words = ["headaudit", "report"]
    if only is not None:
        words += ["--only", ",".join(only)]
    words += ["--seed", str(env.seed), *env.args]
    return f"`{prefix}{shlex.join(words)}`"


def _roles(report: Report, group: str | None = None) -> list[str]:
    """The roles with a column in a table of ``group``'s checks (``None``: every check).

    A subject measured in one group only (``SubjectInfo.only``) has a column in that
    group's tables and nowhere else."""
    return [s.role for s in report.subjects if s.only is None or s.only == group]


def _role_table_head(roles: list[str], lang: str) -> list[str]:
    return [
        f"| {_t('check', lang)} | " + " | ".join(_role(r, lang) for r in roles) + " |",
        "|---|" + "---|" * len(roles),
    ]


def _evidence_json(results: list[Result]) -> str:
    body = ",\n".join(f'"{r.subject}": {json.dumps(r.evidence, ensure_ascii=False, sort_keys=True)}' for r in results)
    return "{\n" + body + "\n}"


def _check_block(report: Report, check_id: str, lang: str) -> list[str]:
    info = report.check(check_id)
    results = [r for r in report.results if r.check == check_id]
    if info is None:
        return []
    lines = [
        f'<a id="{anchor(check_id)}"></a>',
        "",
        f"#### `{check_id}`: {info.title(lang)}",
        "",
        f"*{_t('method', lang)}*: {info.method(lang)}",
        "",
    ]
    for r in results:
        lines.append(f"- **{_role(r.subject, lang)}** {_verdict(r.verdict, lang)}: {r.summary(lang)}")
    lines += check_details(report, check_id, lang)
    lines += ["", f"<details><summary>{_t('evidence', lang)}</summary>", "", "```json", _evidence_json(results), "```"]
    for r in results:
        if r.output:
            lines += ["", f"{_t('output', lang)} ({_role(r.subject, lang)}):", "", "```text", r.output, "```"]
    lines += ["", "</details>", "", f"{_t('reproduce', lang)}: {_command(report, [check_id])}", ""]
    return lines


# --- the host matrix -------------------------------------------------------------------------


def _cell_text(c: Mapping[str, Json], lang: str, static: Mapping[str, Json] | None = None) -> str:
    """A matrix cell: what ran, or (``static``) what the source predicts for a cell not run here."""
    shown = static if static is not None and c.get("outcome") in ("unavailable", "unrunnable") else c
    outcome = str(shown.get("outcome"))
    if outcome == "loses-breakdown":
        text = _e(f"short.lost_{shown.get('lost_in')}", lang, lost=list(shown.get("lost", [])))
    else:
        text = _e(f"short.{outcome}", lang, detail=shown.get("detail") or "", lost=list(shown.get("lost", [])))
    if shown is not c:
        text = _e("short.from_source", lang, text=text, line=shown.get("line") or "-")
    return f"{_CELL_MARK.get(outcome, '')} {cell(text)}"


def _call_line(host: Mapping[str, Json], site: Mapping[str, Json], lang: str) -> str:
    raising: dict[str, list[Msg]] = {}
    for p in site.get("predictions", []):
        if p.get("outcome") == "raises":
            raising.setdefault(str(p["head"]), []).append(Msg(f"report.engineering.mode.{p['mode']}"))
    predicted: list[Msg] | Msg = [
        Msg("report.engineering.calls.raises", {"head": h, "modes": m}) for h, m in raising.items()
    ]
    if not predicted and site.get("usage") != "unpack":
        predicted = Msg("report.engineering.calls.kept")  # a dispatch on it: the walk of forward decides
    guards = [f"`{c}`" for c in site.get("conditions", [])] or "-"
    return "- " + _e(
        "calls.line",
        lang,
        host=Msg(f"report.engineering.variant.{host['variant']}"),
        line=site["line"],
        source=site["source"],
        arity=site.get("arity") if site.get("arity") is not None else "-",
        starred=Msg("report.engineering.calls.starred") if site.get("starred") else "",
        guards=guards,
        predicted=predicted or Msg("report.engineering.calls.none"),
    )


def _matrix(report: Report, lang: str) -> list[str]:
    lines: list[str] = []
    for role in _roles(report):
        r = report.result(_MATRIX_CHECK, role)
        evidence = r.evidence if r is not None and isinstance(r.evidence, Mapping) else {}
        hosts = evidence.get("hosts") or []
        if not hosts:
            continue
        lines += ["", f"**{_e('matrix.heading', lang, role=_role(role, lang))}**", ""]
        modes = " | ".join(render(Msg(f"report.engineering.mode.{m}"), lang) for m in _MODES)
        lines += [f"| {_e('matrix.host', lang)} | {_e('matrix.head', lang)} | {modes} |", "|---|---|" + "---|" * 3]
        for host in hosts:
            label = render(Msg(f"report.engineering.variant.{host['variant']}"), lang)
            for head in evidence.get("head_classes", []):
                cells = {c["mode"]: c for c in host.get("cells", []) if c.get("head") == head}
                static = {c["mode"]: c for c in host.get("static", []) if c.get("head") == head}
                row = " | ".join(_cell_text(cells[m], lang, static.get(m)) if m in cells else "" for m in _MODES)
                lines.append(f"| {label} (`{cell(host['path'])}`) | `{head}` | {row} |")
        lines.append("")
        instances = evidence.get("instances")
        if isinstance(instances, Mapping) and "msg" in instances:
            lines += [f"*{render(msg_from_dict(instances['msg']), lang)}*", ""]
        lines += [_e("calls.heading", lang), ""]
        for host in hosts:
            for site in host.get("calls", []):
                lines.append(_call_line(host, site, lang))
            if not host.get("calls"):
                lines.append(
                    "- " + _e("calls.no_calls", lang, host=Msg(f"report.engineering.variant.{host['variant']}"))
                )
            if host.get("runtime"):
                lines.append(
                    "- "
                    + _e(
                        "calls.unavailable",
                        lang,
                        host=Msg(f"report.engineering.variant.{host['variant']}"),
                        detail=host["runtime"],
                    )
                )
    return lines


def check_details(report: Report, check_id: str, lang: str) -> list[str]:
    """Extra lines for a check's block (the matrix of ``host.loss-dict``; nothing for others)."""
    if check_id == _MATRIX_CHECK:
        return _matrix(report, lang)
    return []
