"""The section "Findings the original report missed": a pure function of the Report.

Every check of the group ``missed`` (whatever area defines it) is one finding: its
severity (from the check record), its measured verdict on each subject with the one-line
summary, a paragraph on why it matters for long-tailed training, and the check's usual
block (method, evidence, the command that reproduces it). The paragraph is built from
catalogue templates (``report.missed.*``) whose parameters are numbers read from this
run's evidence: the share of simulated batches that miss a class, the factor by which the
cluster loss shrinks, counts of host reads, loops and graph breaks. A check this module
has no builder for gets its measured summaries, after a context sentence where the
catalogue has one (``report.missed.context.<check id>``).

No torch; nothing is re-run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from headaudit.messages import Msg, has, render
from headaudit.model import Report, Result
from headaudit.render._blocks import _check_block, _role, _roles, _verdict, cell

__all__ = ["render_missed", "why"]

Json = Any
_Builder = Callable[[Result], list[Msg]]


def _t(key: str, lang: str, **params: object) -> str:
    return render(Msg(f"report.missed.{key}", params), lang)


def _role_msg(role: str) -> Msg | str:
    return Msg(f"role.{role}") if role in ("baseline", "candidate") else role


def _number(value: Json) -> float:
    """A frozen evidence number as a float (``"nan"``/``"inf"`` included)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _mode(label: str) -> Msg:
    if label == "own":
        return Msg("weights.mode.own")
    return Msg("weights.mode.setting", {"setting": label})


# --- one builder per finding: the measured numbers that say why it matters --------------


def _absent(r: Result) -> list[Msg]:
    ev: Mapping[str, Json] = r.evidence
    role = _role_msg(r.subject)
    modes = ev.get("modes") or []
    if r.verdict == "pass":
        compared = sum(
            len(m.get("direct", [])) + sum(s.get("measured", 0) for s in m.get("simulation", [])) for m in modes
        )
        return [Msg("report.missed.why.absent.unaffected", {"role": role, "count": compared})]
    if r.verdict != "fail":
        return []
    out = []
    for mode in modes:
        sizes = [
            Msg(
                "report.missed.why.absent.size",
                {
                    "batch": s["batch"],
                    "median": _number(s["median"]),
                    "p10": _number(s["p10"]),
                    "p90": _number(s["p90"]),
                },
            )
            for s in mode.get("simulation", [])
            if s.get("measured")
        ]
        if sizes:
            out.append(
                Msg("report.missed.why.absent.shrink", {"role": role, "mode": _mode(mode["mode"]), "sizes": sizes})
            )
    data = ev.get("data") or []
    sims = [s for m in modes for s in m.get("simulation", []) if s.get("measured")]
    if data and sims:
        smallest = min(data, key=lambda d: d["batch"])
        at_smallest = [s for s in sims if s["batch"] == smallest["batch"]] or sims
        lowest = min(at_smallest, key=lambda s: _number(s["median"]))
        spread = min(_number(s["lowest"]) for s in sims)
        params = {
            "share": _number(smallest["missing_share"]),
            "batch": smallest["batch"],
            "median": _number(lowest["median"]),
            "spread": 1.0 / spread if spread > 0 else float("inf"),
        }
        out.append(Msg("report.missed.why.absent.consequence", params))
    return out


def _absent_data(results: list[Result]) -> list[Msg]:
    """The data-set sentence: how often long-tailed batches miss a class (same for every head)."""
    for r in results:
        data = r.evidence.get("data") if isinstance(r.evidence, Mapping) else None
        if data:
            shares = [
                Msg("report.missed.why.absent.share", {"share": _number(d["missing_share"]), "batch": d["batch"]})
                for d in data
            ]
            counts = ", ".join(str(n) for n in r.evidence.get("data_counts", []))
            seed = r.evidence.get("seed", "?")
            return [Msg("report.missed.why.absent.data", {"shares": shares, "counts": counts, "seed": seed})]
    return []


def _cb(r: Result) -> list[Msg]:
    ev: Mapping[str, Json] = r.evidence
    role = _role_msg(r.subject)
    cb = ev.get("class_balanced")
    message = r.message.params["message"] if r.message.id == "common.computed_in" else r.message
    kind = message.id.rsplit(".", 1)[-1]
    if kind == "no_mode":
        other = (ev.get("others") or [{}])[0]
        params = {"role": role, "batch": _number(other.get("batch_max_relative_difference"))}
        return [Msg("report.missed.why.cb.none", params)]
    if kind == "inert":
        return [Msg("report.missed.why.cb.inert", {"role": role}), Msg("report.missed.why.cb.consequence")]
    if cb is None or kind not in ("pass", "warn", "fail"):
        return []
    params = {
        "role": role,
        "largest": ev.get("largest_batch_count", "?"),
        "batch": _number(cb["batch_max_relative_difference"]),
        "dataset": _number(cb["dataset_relative_difference"]),
    }
    if r.verdict == "pass":
        return [Msg("report.missed.why.cb.differs", params)]
    beta = ev.get("cb_beta")
    if isinstance(beta, (int, float)) and beta < 1:
        params["horizon"] = 1.0 / (1.0 - float(beta))
        params["beta"] = beta
        return [Msg("report.missed.why.cb.inverse_beta", params), Msg("report.missed.why.cb.consequence")]
    return [Msg("report.missed.why.cb.inverse", params), Msg("report.missed.why.cb.consequence")]


def _sites(r: Result) -> list[Mapping[str, Json]]:
    sites = r.evidence.get("sites") if isinstance(r.evidence, Mapping) else None
    return list(sites or [])


def _syncs(r: Result) -> list[Msg]:
    sites = _sites(r)
    role = _role_msg(r.subject)
    if r.verdict != "fail" or not sites:
        return []
    kinds: dict[str, int] = {}
    for s in sites:
        kinds[s["kind"]] = kinds.get(s["kind"], 0) + 1
    params = {
        "role": role,
        "count": len(sites),
        "functions": len({s["function"] for s in sites}),
        "kinds": [Msg(f"static.kind.{k}", {"count": n}) for k, n in kinds.items()],
    }
    return [Msg("report.missed.why.syncs", params)]


def _loops(r: Result) -> list[Msg]:
    sites = _sites(r)
    if r.verdict != "fail" or not sites:
        return []
    deepest = max(sites, key=lambda s: s.get("depth") or 0)
    params = {
        "role": _role_msg(r.subject),
        "count": len(sites),
        "depth": deepest.get("depth") or 1,
        "function": deepest["function"],
    }
    return [Msg("report.missed.why.loops", params)]


def _writes(r: Result) -> list[Msg]:
    sites = _sites(r)
    if r.verdict not in ("fail", "warn") or not sites:
        return []
    params = {
        "role": _role_msg(r.subject),
        "on_path": sum(bool(s.get("on_forward_path")) for s in sites),
        "off_path": sum(not s.get("on_forward_path") for s in sites),
        "functions": [f"`{f}`" for f in sorted({s["function"] for s in sites})],
    }
    return [Msg("report.missed.why.writes", params)]


def _breaks(r: Result) -> list[Msg]:
    traces = r.evidence.get("traces") if isinstance(r.evidence, Mapping) else None
    if r.verdict != "fail" or not traces:
        return []
    first = traces[0]
    where = sorted({f"{s['file']}:{s['line']}" for s in first.get("sites", []) if s.get("in_subject")})
    params = {
        "role": _role_msg(r.subject),
        "breaks": first.get("breaks"),
        "graphs": first.get("graphs"),
        "classes": first.get("num_classes"),
        "distinct": len(first.get("sites", [])),
        "places": len(where),
    }
    out = [Msg("report.missed.why.breaks", params)]
    more = [t for t in traces[1:] if t.get("breaks") is not None]
    if more:
        out.append(
            Msg("report.missed.why.breaks_more", {"classes": more[0]["num_classes"], "breaks": more[0]["breaks"]})
        )
    return out


_BUILDERS: dict[str, _Builder] = {
    "weights.absent-classes": _absent,
    "weights.cb-vs-inverse": _cb,
    "static.host-syncs": _syncs,
    "static.class-loops": _loops,
    "static.data-writes": _writes,
    "compile.graph-breaks": _breaks,
}

#: Why each finding matters for long-tailed training, in general terms (after the numbers).
_CLOSING: dict[str, str] = {
    "weights.absent-classes": "",
    "weights.cb-vs-inverse": "",
    "static.host-syncs": "report.missed.why.syncs_matter",
    "static.class-loops": "report.missed.why.loops_matter",
    "static.data-writes": "report.missed.why.writes_matter",
    "compile.graph-breaks": "report.missed.why.breaks_matter",
}


def why(report: Report, check_id: str) -> list[Msg]:
    """The sentences of a finding's "why it matters" paragraph, from this run's results."""
    results = [r for r in report.results if r.check == check_id]
    builder = _BUILDERS.get(check_id)
    sentences: list[Msg] = []
    if builder is None:
        context = f"report.missed.context.{check_id}"
        if has(context):
            sentences.append(Msg(context))
        for r in results:
            sentences.append(Msg("report.missed.why.measured", {"role": _role_msg(r.subject), "summary": r.message}))
        return sentences
    if check_id == "weights.absent-classes":
        sentences += _absent_data(results)
    affected = False
    for r in results:
        found = builder(r)
        if found:
            affected = True
            sentences += found
        else:
            sentences.append(Msg("report.missed.why.measured", {"role": _role_msg(r.subject), "summary": r.message}))
    closing = _CLOSING.get(check_id)
    if affected and closing:
        sentences.append(Msg(closing))
    return sentences


# --- the section ----------------------------------------------------------------------


def _severity(severity: str, lang: str) -> str:
    return _t(f"severity.{severity}", lang)


def _insert(block: list[str], before: str, lines: list[str]) -> list[str]:
    """``lines`` inserted before the first line of ``block`` starting with ``before`` (else appended)."""
    at = next((i for i, line in enumerate(block) if line.startswith(before)), len(block))
    return [*block[:at], *lines, *block[at:]]


def _finding(report: Report, check_id: str, lang: str) -> list[str]:
    info = report.check(check_id)
    block = _check_block(report, check_id, lang)
    if info is None or not block:
        return block
    block = _insert(block, "- **", [f"- **{_t('severity_label', lang)}**: {_severity(info.severity, lang)}"])
    paragraph = ("" if lang == "zh" else " ").join(render(m, lang) for m in why(report, check_id))
    if paragraph:
        block = _insert(block, "<details>", [f"**{_t('why_heading', lang)}** {paragraph}", ""])
    return block


def render_missed(report: Report, lang: str) -> list[str]:
    """The section's Markdown lines (empty when no check of the group ran)."""
    ids = [c.id for c in report.checks if c.group == "missed"]
    if not ids:
        return []
    roles = _roles(report)
    lines = [
        f"## {render(Msg('section.missed'), lang)}",
        "",
        _t("intro", lang),
        "",
        f"| {_t('finding', lang)} | {_t('severity_label', lang)} | " + " | ".join(_role(r, lang) for r in roles) + " |",
        "|---|---|" + "---|" * len(roles),
    ]
    for check_id in ids:
        info = report.check(check_id)
        assert info is not None
        cells = [_verdict(r.verdict, lang) if (r := report.result(check_id, role)) else "" for role in roles]
        title = cell(info.title(lang))
        lines.append(f"| `{check_id}` {title} | {_severity(info.severity, lang)} | " + " | ".join(cells) + " |")
    lines.append("")
    for check_id in ids:
        lines += _finding(report, check_id, lang)
    return lines
