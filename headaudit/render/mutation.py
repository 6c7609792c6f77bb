"""The mutation score in the reproducibility section: a pure function of the report.

Shows what :mod:`headaudit.mutation.score` measured in this run (``extra["mutation"]``):
how many single-change mutants of ``head_fixed.py`` some check killed, which check
killed each and how its verdict changed, and whether a semantics-preserving rewrite
changed any verdict. Mutant ids and check ids are language-neutral; the sentences come
from the catalogue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from headaudit.model import Report
from headaudit.render._blocks import _t, cell

__all__ = ["render_mutation"]


def _killer(mutant: Mapping[str, Any], lang: str) -> tuple[str, str]:
    if mutant["killed_by"] is None:
        return _t("mutation.survived", lang), "-"
    if mutant["killed_by"] == "load":
        return _t("mutation.load", lang), cell(str(mutant["detail"]))
    return f"`{mutant['killed_by']}`", f"{mutant['before']} → {mutant['after']}"


def render_mutation(report: Report, lang: str) -> list[str]:
    """The ``### Mutation score`` lines, or none when this run did not measure it."""
    data = report.extra.get("mutation")
    if not isinstance(data, Mapping):
        return []
    rewrites = data["equivalents"]
    alarms = [f"`{r['id']}`: {', '.join(f'`{c}`' for c in r['changed'])}" for r in rewrites if r["changed"]]
    score = {k: data[k] for k in ("killed", "total", "file", "seed")} | {"sha": str(data["sha256"])[:16]}
    lines = [
        f"### {_t('mutation.title', lang)}",
        "",
        _t("mutation.score", lang, **score),
        "",
        _t("mutation.rewrites", lang, count=len(rewrites), alarms=len(alarms))
        + ("" if not alarms else " " + "; ".join(alarms)),
        "",
        f"| {_t('mutation.mutant', lang)} | {_t('mutation.part', lang)} | {_t('mutation.killed_by', lang)} "
        f"| {_t('mutation.change', lang)} |",
        "|---|---|---|---|",
    ]
    for mutant in data["mutants"]:
        killer, change = _killer(mutant, lang)
        lines.append(f"| `{mutant['id']}` | {mutant['part']} | {killer} | {change} |")
    return [*lines, "", _t("mutation.run", lang), ""]
