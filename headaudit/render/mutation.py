"""The mutation score in the reproducibility section: a pure function of the report.

Shows what :mod:`headaudit.mutation.score` measured (``extra["mutation"]``), in this run
or, for a default report, in an earlier one on the same code read from the result cache
(:mod:`headaudit.cache`; ``measured_with`` names the headaudit version and sources hash):
how many single-change mutants some check *detected* (a regression measured by a check
that ran), which check detected each and how its verdict changed; the mutants that only
*crashed* (checks moved to ``error``: the mutated head raised, a check could not run, or
the file no longer loads), apart and with the exception, never counted as detected; the
survivors; and whether a semantics-preserving rewrite changed any verdict or finding.
Mutant ids and check ids are language-neutral; a crash's sentence is shown in the
report's language where the error result had one (a load error is English only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from headaudit.model import Report
from headaudit.render._blocks import _t, cell

__all__ = ["render_mutation"]


def _outcome(mutant: Mapping[str, Any], lang: str) -> tuple[str, str]:
    if mutant["outcome"] == "detected":
        return f"`{mutant['detected_by']}`", f"{mutant['before']} → {mutant['after']}"
    if mutant["outcome"] == "crashed":
        return _t("mutation.crashed", lang), ", ".join(f"`{c['check']}` → error" for c in mutant["crashes"])
    return _t("mutation.survived", lang), "-"


def render_mutation(report: Report, lang: str) -> list[str]:
    """The ``### Mutation score`` lines; when this run did not measure it (the default: it
    takes minutes and depends only on headaudit's own checks), the command that does."""
    data = report.extra.get("mutation")
    if not isinstance(data, Mapping) or "detected" not in data:
        return [f"### {_t('mutation.title', lang)}", "", _t("mutation.not_measured", lang), ""]
    rewrites = data["equivalents"]
    alarms = [f"`{r['id']}`: {', '.join(f'`{c}`' for c in r['changed'])}" for r in rewrites if r["changed"]]
    files = ", ".join(f"`{f}`" for f in dict.fromkeys(str(r.get("file", "")) for r in rewrites)) or "-"
    keys = ("detected", "crashed", "survived", "total", "file", "seed")
    score = {k: data[k] for k in keys} | {"sha": str(data["sha256"])[:16]}
    was = data.get("measured_with")
    if isinstance(was, Mapping):  # read from the cache: measured by an earlier run on this same code
        sources = str(was.get("sources", ""))[:16]
        sentence = _t("mutation.score_cached", lang, **score, version=was.get("version", "?"), sources=sources)
    else:
        sentence = _t("mutation.score", lang, **score)
    lines = [
        f"### {_t('mutation.title', lang)}",
        "",
        sentence,
        "",
        _t("mutation.rewrites", lang, count=len(rewrites), files=files, alarms=len(alarms))
        + ("" if not alarms else " " + "; ".join(alarms)),
        "",
        f"| {_t('mutation.mutant', lang)} | {_t('mutation.part', lang)} | {_t('mutation.detected_by', lang)} "
        f"| {_t('mutation.change', lang)} |",
        "|---|---|---|---|",
    ]
    for mutant in data["mutants"]:
        outcome, change = _outcome(mutant, lang)
        lines.append(f"| `{mutant['id']}` | {mutant['part']} | {outcome} | {change} |")
    crashes = [(m["id"], c) for m in data["mutants"] if m["outcome"] == "crashed" for c in m["crashes"]]
    if crashes:
        lines += ["", _t("mutation.crashes", lang), ""]
        lines += [
            f"- `{mid}`: `{c['check']}`: {cell(str(c.get('texts', {}).get(lang, c['detail'])))}" for mid, c in crashes
        ]
    return [*lines, "", _t("mutation.run", lang), ""]
