"""The report's Performance section (CHECKS.md section 4): a pure function of a Report.

Registered as ``GROUP_RENDERERS["performance"]`` in :mod:`headaudit.render.markdown`, it
shows, after the verdict table of the ``perf.*`` checks and before their blocks:

- the step times per device: medians (IQR) and p10 ratios against head.py;
- the counts beside every time (FLOPs and operators per step), the limit measured in
  the same run (per-operator overhead, matmul FLOP rate) and each subject's distance
  from ``max(FLOP floor, overhead floor)``;
- operators per training step at each class count with the fitted exponent, R^2 and
  the quadratic term; graph breaks; host syncs per step (the check's own sentence where
  they were not measured);
- recorded results and charts, from ``Report.extra["performance"]`` (written by the CLI,
  see :func:`headaudit.perfrun.section_extra`): ``recorded`` (summaries of the files
  under ``benchmarks/results/`` at run time), ``charts`` (``{"chart", "path"}`` of the
  PNGs the CLI wrote; paths relative to where the Markdown is read) and
  ``charts_unavailable`` (charts were asked for but matplotlib is missing).

Every number comes from the checks' evidence (field names documented in
:mod:`headaudit.checks.perf`) or from ``extra``; every sentence from the catalogue
(``report.performance.*``). Nothing here imports torch or measures anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from headaudit.bench.grid import EQUAL_WORK
from headaudit.messages import Msg, render
from headaudit.model import Report
from headaudit.render._blocks import _check_block, _role, _role_table_head, _roles, _verdict, cell

__all__ = ["STEP_TIME", "render_bench_markdown", "render_performance"]

STEP_TIME, OP_COUNT, HOST_SYNCS = "perf.step-time", "perf.op-count", "perf.host-syncs"
GRAPH_BREAKS = "compile.graph-breaks"
GROUP = "performance"


def _t(key: str, lang: str, **params: Any) -> str:
    return render(Msg(f"report.performance.{key}", params), lang)


def _evidence(report: Report, check_id: str, role: str) -> Mapping[str, Any] | None:
    """The evidence of a measured result (``None`` where the check did not measure)."""
    result = report.result(check_id, role)
    if result is None or result.verdict in ("n/a", "error") or not isinstance(result.evidence, Mapping):
        return None
    return result.evidence


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _ms(seconds: Any, digits: int = 2) -> str:
    value = _num(seconds)
    return "-" if value is None else f"{value * 1e3:.{digits}f}"


def _times(value: Any) -> str:
    ratio = _num(value)
    return "-" if ratio is None else f"{ratio:.3f}×"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return [*out, ""]


# --- step time --------------------------------------------------------------------------


def _devices(report: Report, roles: Sequence[str]) -> list[str]:
    order: list[str] = []
    for role in roles:
        ev = _evidence(report, STEP_TIME, role)
        for device in ev.get("devices", []) if ev else []:
            if device.get("device") not in order:
                order.append(device.get("device"))
    return order


def _device(report: Report, role: str, device: str) -> Mapping[str, Any] | None:
    ev = _evidence(report, STEP_TIME, role)
    return next((d for d in (ev or {}).get("devices", []) if d.get("device") == device), None)


def _key(row: Mapping[str, Any]) -> tuple[str, int, int, int]:
    return (str(row.get("kind")), int(row.get("batch", 0)), int(row.get("num_classes", 0)), int(row.get("emb_dim", 0)))


def _rows(report: Report, roles: Sequence[str], device: str) -> list[tuple[tuple[str, int, int, int], dict[str, Any]]]:
    """Every timed (kind, batch, classes, emb_dim) on ``device``, with each role's row."""
    merged: dict[tuple[str, int, int, int], dict[str, Any]] = {}
    for role in roles:
        found = _device(report, role, device)
        for row in (found or {}).get("rows", []):
            merged.setdefault(_key(row), {})[role] = row
    kinds = {"train": 0, "forward": 1}
    return sorted(merged.items(), key=lambda item: (kinds.get(item[0][0], 2), item[0][3], item[0][2], item[0][1]))


def _mode(mode: Any, lang: str) -> str:
    return _t(f"mode_{mode}", lang) if mode in ("quick", "full") else str(mode)


def _kind(kind: str, lang: str) -> str:
    return _t(f"kind_{kind}", lang) if kind in ("train", "forward") else kind


def _intro(report: Report, roles: Sequence[str], lang: str) -> list[str]:
    lines = []
    for device in _devices(report, roles):
        first = next(d for role in roles if (d := _device(report, role, device)) is not None)
        lines.append(
            "- "
            + _t(
                "measured_on",
                lang,
                device=device,
                name=first.get("device_name", "?"),
                threads=first.get("threads", "?"),
                mode=_mode(first.get("mode"), lang),
                warmup=first.get("warmup", "?"),
                number=first.get("number", "?"),
            )
        )
    if lines:
        lines.append("- " + _t("how", lang))
    for role in roles:
        ev = _evidence(report, STEP_TIME, role)
        if any(d.get("reference_is_subject") for d in (ev or {}).get("devices", [])):
            lines.append("- " + _t("reference_is_subject", lang, role=_role(role, lang)))
    lines.append("- " + _t("counts_how", lang))
    return [*lines, ""]


def _step_tables(report: Report, roles: Sequence[str], lang: str) -> list[str]:
    lines: list[str] = []
    for device in _devices(report, roles):
        lines += [f"### {_t('step_times', lang, device=device)}", ""]
        head = [_t("step", lang), _t("batch", lang), _t("classes", lang), "emb_dim"]
        for role in roles:
            r = _role(role, lang)
            head += [_t("median", lang, role=r), _t("ratio", lang, role=r), _t("work", lang, role=r)]
        rows = []
        for (kind, batch, classes, emb), by_role in _rows(report, roles, device):
            cells = [_kind(kind, lang), str(batch), str(classes), str(emb)]
            for role in roles:
                row = by_role.get(role)
                stats = (row or {}).get("subject", {})
                iqr = _ms(stats.get("iqr"))
                cells += [
                    f"{_ms(stats.get('median'))} ({iqr})" if row else "-",
                    _times((row or {}).get("ratio")),
                    _work(row or {}, lang),
                ]
            rows.append(cells)
        lines += _table(head, rows)
        lines += [_t("equal_work_how", lang, tolerance=100 * EQUAL_WORK), ""]
        lines += _compiled(report, roles, device, lang)
        lines += _limit(report, roles, device, lang)
    return lines


def _work(row: Mapping[str, Any], lang: str) -> str:
    """The subject's FLOPs over head.py's at this row, marked where they are equal work."""
    flops, theirs = _num(row.get("flops")), _num(row.get("reference_flops"))
    if flops is None or theirs is None or theirs <= 0:
        return "-"
    return _t("work_equal" if row.get("equal_work") else "work_more", lang, ratio=flops / theirs)


def _compiled(report: Report, roles: Sequence[str], device: str, lang: str) -> list[str]:
    """The training step under torch.compile, or how to get it where it was not asked for."""
    found = {role: list(d.get("compiled") or []) for role in roles if (d := _device(report, role, device))}
    if not any(found.values()):
        return [_t("compiled_missing", lang), ""]
    first = next(row for rows in found.values() for row in rows)
    where = {"batch": first.get("batch"), "classes": first.get("num_classes"), "emb": first.get("emb_dim")}
    head = [
        _t("compiled_subject", lang),
        _t("batch", lang),
        _t("compiled_median", lang),
        _t("compiled_eager", lang),
        _t("compiled_speedup", lang),
        _t("compiled_ratio", lang),
        _t("compiled_seconds", lang),
    ]
    rows = []
    for role, entries in found.items():
        for entry in entries:
            cells = [_role(role, lang), str(entry.get("batch", "?"))]
            status = entry.get("status")
            if status == "timed":
                compiled, eager = entry.get("compiled") or {}, entry.get("eager") or {}
                seconds = _num(entry.get("compile_s"))
                cells += [
                    f"{_ms(compiled.get('median'))} ({_ms(compiled.get('iqr'))})",
                    f"{_ms(eager.get('median'))} ({_ms(eager.get('iqr'))})",
                    _times(entry.get("speedup")),
                    _times(entry.get("ratio")),
                    "-" if seconds is None else f"{seconds:.1f}",
                ]
            else:
                if status == "n/a":
                    reason, breaks = entry.get("reason"), entry.get("graph_breaks", "?")
                    key = "compiled_na" if reason else "compiled_na_no_reason"
                    shown = _t(key, lang, breaks=breaks, reason=reason or "")
                else:
                    shown = _t("compiled_error", lang, error=entry.get("error") or "?")
                cells += [shown, "-", "-", "-", "-"]
            rows.append(cells)
    title = f"**{_t('compiled_title', lang, device=device)}**"
    return [title, "", _t("compiled_how", lang, **where), "", *_table(head, rows)]


def _limit(report: Report, roles: Sequence[str], device: str, lang: str) -> list[str]:
    lines = [f"**{_t('limit_title', lang)}**", ""]
    limits: dict[str, tuple[float | None, float | None, Any]] = {}
    for role in roles:
        found = _device(report, role, device)
        if found is not None:
            limits[role] = (_num(found.get("per_op_overhead_s")), _num(found.get("flop_rate")), found.get("matmul_n"))
    one_run = len(limits) > 1 and len(set(limits.values())) == 1  # headaudit bench: every subject in one run
    for role, (overhead, rate, n) in list(limits.items())[: 1 if one_run else None]:
        who = _t("this_run", lang) if one_run else _t("role_run", lang, role=_role(role, lang))
        if overhead is None or rate is None:
            lines.append(f"- {_t('limit_missing', lang, run=who)}")
            continue
        lines.append(f"- {_t('limit', lang, run=who, overhead=overhead * 1e6, rate=rate / 1e9, n=n or '?')}")
    lines.append("")
    head = [_t("step", lang), _t("batch", lang), _t("classes", lang)]
    for role in roles:
        r = _role(role, lang)
        head += [_t("flops", lang, role=r), _t("ops", lang, role=r), _t("floor", lang, role=r), _t("far", lang, role=r)]
    rows = []
    for (kind, batch, classes, _emb), by_role in _rows(report, roles, device):
        cells = [_kind(kind, lang), str(batch), str(classes)]
        for role in roles:
            row = by_role.get(role) or {}
            flops, ops, far = _num(row.get("flops")), row.get("ops"), _num(row.get("distance"))
            bound = row.get("bound")
            floor = _ms(row.get("floor_s"), 3)
            cells += [
                "-" if flops is None else f"{flops / 1e9:.3f} G",
                "-" if ops is None else str(ops),
                floor if bound not in ("flops", "overhead") else f"{floor} ({_t(f'bound_{bound}', lang)})",
                "-" if far is None else f"{far:.2f}×",
            ]
        rows.append(cells)
    return [*lines, *_table(head, rows)]


# --- counts -------------------------------------------------------------------------------


def _op_table(report: Report, roles: Sequence[str], lang: str) -> list[str]:
    measured = {role: ev for role in roles if (ev := _evidence(report, OP_COUNT, role)) is not None}
    if not measured:
        return []
    first = next(iter(measured.values()))
    classes = sorted({int(c) for ev in measured.values() for c in ev.get("num_classes", [])})
    head = [_t("subject", lang), *(f"C = {c}" for c in classes), _t("cost", lang), _t("exponent", lang), "R²"]
    head.append(_t("quadratic", lang))
    rows = []
    for role, ev in measured.items():
        ops = dict(zip(ev.get("num_classes", []), ev.get("ops", []), strict=False))
        quad, at_largest = ev.get("quadratic"), _num(ev.get("quadratic_ops_at_largest"))
        counted = ev.get("ops") or [0]
        if isinstance(quad, list) and len(quad) == 3 and at_largest is not None and at_largest >= 1.0:
            share = 100.0 * at_largest / max(float(counted[-1]), 1.0)
            term = _t("quadratic_term", lang, c=quad[2], share=share, largest=max(classes))
        else:
            term = _t("quadratic_none", lang)
        exponent, r2 = _num(ev.get("exponent")), _num(ev.get("r2"))
        costs = [v for v in ev.get("per_class_costs", []) if _num(v) is not None]
        rows.append(
            [
                _role(role, lang),
                *(str(ops.get(c, "-")) for c in classes),
                f"{costs[0]:.3g} → {costs[-1]:.3g}" if costs else "-",
                "-" if exponent is None else f"{exponent:.2f}",
                "-" if r2 is None else f"{r2:.3f}",
                term,
            ]
        )
    intro = _t("ops_how", lang, batch=first.get("batch", "?"), emb=first.get("emb_dim", "?"))
    return [f"### {_t('ops_title', lang)}", "", intro, "", *_table(head, rows)]


def _break_table(report: Report, roles: Sequence[str], lang: str) -> list[str]:
    """Graph breaks as ``compile.graph-breaks`` measured them in this run (one measurement, one number)."""
    measured = {
        role: trace
        for role in roles
        if (r := report.result(GRAPH_BREAKS, role)) is not None
        and isinstance(r.evidence, Mapping)
        and (trace := next(iter(r.evidence.get("traces") or []), None)) is not None
    }
    if not measured:
        return [f"### {_t('breaks_title', lang)}", "", _t("breaks_elsewhere", lang, check=f"`{GRAPH_BREAKS}`"), ""]
    head = [_t("subject", lang), _t("graphs", lang), _t("breaks", lang), _t("reasons", lang)]
    rows = []
    for role, trace in measured.items():
        reasons = [
            _t(
                "reason",
                lang,
                reason=f"`{site.get('reason')}`",
                count=site.get("count", 1),
                where=f"{site.get('file')}:{site.get('line')}" if site.get("line") else "?",
            )
            for site in trace.get("sites", [])
        ]
        rows.append(
            [_role(role, lang), str(trace.get("graphs", "-")), str(trace.get("breaks", "-")), "; ".join(reasons) or "-"]
        )
    first = next(iter(measured.values()))
    where = {"classes": first.get("num_classes", "?"), "batch": first.get("batch", "?")}
    intro = _t("breaks_how", lang, check=f"`{GRAPH_BREAKS}`", **where)
    return [f"### {_t('breaks_title', lang)}", "", intro, "", *_table(head, rows)]


def _sync_table(report: Report, roles: Sequence[str], lang: str) -> list[str]:
    results = [(role, r) for role in roles if (r := report.result(HOST_SYNCS, role)) is not None]
    if not results:
        return []
    rows = []
    for role, result in results:
        count = result.evidence.get("count") if isinstance(result.evidence, Mapping) else None
        shown = str(count) if isinstance(count, int) else render(Msg("verdict.n-a"), lang)
        rows.append([_role(role, lang), shown, result.summary(lang)])
    head = [_t("subject", lang), _t("syncs", lang), _t("measured", lang)]
    return [f"### {_t('syncs_title', lang)}", "", *_table(head, rows)]


# --- recorded results and charts ------------------------------------------------------------


def _extra(report: Report) -> Mapping[str, Any]:
    found = report.extra.get("performance") if isinstance(report.extra, Mapping) else None
    return found if isinstance(found, Mapping) else {}


def _recorded(report: Report, lang: str) -> list[str]:
    extra = _extra(report)
    if "recorded" not in extra:
        return []
    entries = [e for e in extra.get("recorded", []) if isinstance(e, Mapping)]
    lines = [f"### {_t('recorded_title', lang)}", ""]
    if not any(str(e.get("device", "")).startswith("cuda") for e in entries):
        lines += [_t("recorded_none", lang), ""]
    for entry in entries:
        file = f"`{entry.get('file')}`"
        if entry.get("problem"):
            problem = f"`{entry.get('problem')}`"
            lines += [f"- {_t('recorded_unreadable', lang, file=file, problem=problem)}", ""]
            continue
        date = entry.get("date") or _t("date_unknown", lang)
        lines += [
            "- "
            + _t(
                "recorded_entry",
                lang,
                file=file,
                name=f"`{entry.get('device_name')}`",
                device=entry.get("device", "?"),
                cuda=entry.get("cuda_version") or "-",
                torch=entry.get("torch_version", "?"),
                date=date,
                mode=_mode(entry.get("mode"), lang),
            ),
            "",
        ]
        subjects = [str(s) for s in entry.get("subjects", [])]
        reference = str(entry.get("reference", "?"))
        head = [_t("step", lang), _t("point", lang)]
        for name in subjects:
            head += [_t("median", lang, role=name), _t("ratio_vs", lang, role=name, reference=reference)]
        rows = []
        for row in entry.get("rows", []):
            cells = [_kind(str(row.get("kind")), lang), str(row.get("point"))]
            for name in subjects:
                cells += [_ms(row.get("median_s", {}).get(name)), _times(row.get("ratio", {}).get(name))]
            rows.append(cells)
        lines += _table(head, rows)
        syncs = entry.get("host_syncs", {})
        exponents = entry.get("exponent", {})
        facts = []
        for name in subjects:
            count, exponent = syncs.get(name), _num(exponents.get(name))
            if count is None and exponent is None:
                continue
            facts.append(
                _t(
                    "recorded_counts",
                    lang,
                    subject=f"`{name}`",
                    syncs="n/a" if count is None else count,
                    exponent="-" if exponent is None else exponent,
                )
            )
        if facts:
            lines += [f"- {fact}" for fact in facts] + [""]
    return lines


def _charts(report: Report, lang: str) -> list[str]:
    extra = _extra(report)
    charts = [c for c in extra.get("charts", []) if isinstance(c, Mapping) and c.get("path")]
    lines: list[str] = []
    if charts:
        lines += [f"### {_t('charts_title', lang)}", ""]
        lines += [_t("charts_one_run" if extra.get("charts_one_run") else "charts_own_runs", lang), ""]
        for chart in charts:
            title = _t(f"chart_{chart.get('chart')}", lang) if chart.get("chart") in ("ops", "batch") else ""
            lines += [f"![{title}]({chart['path']})", ""]
    if extra.get("charts_unavailable"):
        lines += [_t("charts_missing", lang), ""]
    return lines


# --- the section ----------------------------------------------------------------------------


def render_performance(report: Report, lang: str) -> list[str]:
    """The Performance section as Markdown lines (empty when no perf check ran)."""
    ids = [c.id for c in report.checks if c.group == GROUP]
    if not ids:
        return []
    roles = _roles(report, GROUP)
    lines = [f"## {render(Msg(f'section.{GROUP}'), lang)}", "", *_intro(report, roles, lang)]
    lines += _role_table_head(roles, lang)
    for check_id in ids:
        cells = [_verdict(r.verdict, lang) if (r := report.result(check_id, role)) else "" for role in roles]
        lines.append(f"| `{check_id}` | " + " | ".join(cells) + " |")
    lines.append("")
    lines += _step_tables(report, roles, lang)
    lines += _op_table(report, roles, lang)
    lines += _break_table(report, roles, lang)
    lines += _sync_table(report, roles, lang)
    lines += _recorded(report, lang)
    lines += _charts(report, lang)
    for check_id in ids:
        lines += _check_block(report, check_id, lang)
    return lines


def _subject_lines(report: Report, lang: str) -> list[str]:
    lines = []
    for s in report.subjects:
        lines.append(f"- {_role(s.role, lang)}: `{s.path}` (`{s.head_class}`), sha256 `{s.sha256[:16]}…`")
    return [*lines, ""]


def render_bench_markdown(report: Report, lang: str = "en") -> str:
    """What ``headaudit bench`` prints: a title, the subjects, the Performance section."""
    env = report.environment
    lines = [
        f"# {_t('bench_title', lang)}",
        "",
        f"> {_t('bench_intro', lang, version=env.tool_version, torch=env.torch, seed=env.seed)}",
        "",
        *_subject_lines(report, lang),
        *render_performance(report, lang),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"
