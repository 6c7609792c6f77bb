"""The section "Component contracts": a pure function of the Report.

One row per contract (every check of the group ``contracts``, whatever area defines it)
with the verdict on each subject and the measured one-line evidence; then the head's
interface as ``forward.contract`` recorded it (constructor, forward's returns per mode,
``forward_features``' returns, loss-dict keys, parameters and buffers), side by side per
subject with what only one of them has; then each contract's usual block (method,
evidence, the command that reproduces it). Labels are catalogue entries
(``report.contracts.*``). No torch; nothing is re-run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from headaudit.messages import Msg, render
from headaudit.model import Report
from headaudit.render._blocks import _check_block, _role, _roles, _verdict, cell

__all__ = ["render_contracts", "structure_text"]

Json = Any
_INTERFACE_CHECK = "forward.contract"
_MODES = ("eval", "eval_labels", "train", "train_labels")


def _t(key: str, lang: str, **params: object) -> str:
    return render(Msg(f"report.contracts.{key}", params), lang)


def structure_text(value: Json) -> str:
    """A recorded return structure in one line: ``(float32[4, 3], float32[], {ce_loss, ...})``."""
    if not isinstance(value, Mapping) or len(value) == 0:
        return "-"
    if "raised" in value:
        return f"raise {value['raised']}"
    if "tensor" in value:
        return f"{value.get('dtype', '?')}{list(value['tensor'])}"
    if "dict" in value:
        return "{" + ", ".join(value["dict"]) + "}"
    for kind in ("tuple", "list"):
        if kind in value:
            inner = ", ".join(structure_text(v) for v in value[kind])
            return f"({inner})" if kind == "tuple" else f"[{inner}]"
    return str(next(iter(value.values()))) if "value" in value or "object" in value else "-"


def _signature(items: Json) -> str:
    out = []
    for p in items or []:
        kind = p.get("kind", "")
        if kind == "var_keyword":
            out.append(f"**{p['name']}")
        elif kind == "var_positional":
            out.append(f"*{p['name']}")
        else:
            mark = "*" if kind == "keyword_only" else ""
            default = p.get("default")
            out.append(f"{mark}{p['name']}" + ("" if default is None else f"={default}"))
    return ", ".join(out) or "-"


def _interface_rows(interfaces: dict[str, Json], roles: list[str], lang: str) -> list[str]:
    names = {r: set(i.get("parameters") or {}) | set(i.get("buffers") or {}) for r, i in interfaces.items()}
    only = {r: sorted(names[r] - set().union(*(v for k, v in names.items() if k != r))) for r in names}
    cells: list[tuple[str, Any]] = [
        (_t("constructor", lang), lambda r, i: f"`{_signature(i.get('constructor'))}`"),
        (
            _t("config", lang),
            lambda r, i: "`" + ", ".join(f"{k}={v}" for k, v in (i.get("config") or {}).items()) + "`",
        ),
        *(
            (_t(f"mode.{m}", lang), lambda r, i, m=m: f"`{structure_text((i.get('forward') or {}).get(m))}`")
            for m in _MODES
        ),
        (_t("features", lang), lambda r, i: f"`{structure_text(i.get('forward_features'))}`"),
        (_t("loss_keys", lang), lambda r, i: ", ".join(f"`{k}`" for k in i.get("loss_keys") or []) or "-"),
        (
            _t("parameters", lang),
            lambda r, i: _t(
                "count", lang, count=len(i.get("parameters") or {}), elements=_elements(i.get("parameters"))
            ),
        ),
        (_t("buffers", lang), lambda r, i: ", ".join(f"`{n}`" for n in (i.get("buffers") or {})) or "-"),
    ]
    if len(interfaces) > 1:
        cells.append((_t("only_here", lang), lambda r, i: ", ".join(f"`{n}`" for n in only.get(r, [])) or "-"))
    lines = [f"| | {' | '.join(_role(r, lang) for r in roles)} |", "|---|" + "---|" * len(roles)]
    for label, fn in cells:
        values = [cell(fn(r, interfaces[r])) if r in interfaces else "" for r in roles]
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    return lines


def _elements(params: Json) -> int:
    total = 0
    for shape in (params or {}).values():
        n = 1
        for d in shape:
            n *= int(d)
        total += n
    return total


def render_contracts(report: Report, lang: str) -> list[str]:
    """The section: the verdict table, the interface, then each contract's block."""
    ids = [c.id for c in report.checks if c.group == "contracts"]
    if not ids:
        return []
    roles = _roles(report)
    lines = [
        f"## {render(Msg('section.contracts'), lang)}",
        "",
        _t("intro", lang),
        "",
        f"| {_t('contract', lang)} | " + " | ".join(_role(r, lang) for r in roles) + f" | {_t('evidence', lang)} |",
        "|---|" + "---|" * (len(roles) + 1),
    ]
    for check_id in ids:
        info = report.check(check_id)
        title = info.title(lang) if info else ""
        results = [r for role in roles if (r := report.result(check_id, role)) is not None]
        verdicts = [_verdict(r.verdict, lang) for r in results]
        evidence = "<br>".join(f"**{_role(r.subject, lang)}**: {cell(r.summary(lang))}" for r in results)
        lines.append(f"| `{check_id}`: {cell(title)} | " + " | ".join(verdicts) + f" | {evidence} |")
    lines.append("")
    interfaces = {
        r.subject: r.evidence["interface"]
        for role in roles
        if (r := report.result(_INTERFACE_CHECK, role)) is not None
        and isinstance(r.evidence, Mapping)
        and isinstance(r.evidence.get("interface"), Mapping)
    }
    if interfaces:
        lines += [f"### {_t('interface', lang)}", "", _t("interface_intro", lang), ""]
        lines += [*_interface_rows(interfaces, roles, lang), ""]
    for check_id in ids:
        lines += _check_block(report, check_id, lang)
    return lines
