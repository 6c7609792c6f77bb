"""How many single-change mutants of head_optimal.py the audit notices (opt-in: 10-25 minutes).

A mutant is noticed when the audit's verdicts on the mutated file, in the candidate slot,
differ from those on the unmutated file (any check except the performance group, whose
timings are not verdicts on behaviour). An equivalent rewrite must get identical
verdicts from every check. Crashes are counted apart: a file that no longer loads is
noticed (the user gets exit 2 and one line); a mutant noticed only through ``error``
verdicts is noticed through the subject's own exception, shown in the report.

The component contracts run first on every mutant; the other checks run only until one
verdict differs (``HEADAUDIT_MUTATION_FULL=1`` runs them all), so the "noticed by" column
names the first check in that order. Equivalents always run every check.

Run it (and see the tables with ``-s``)::

    HEADAUDIT_MUTATION=1 .venv/bin/python -m pytest -m slow tests/mutation/test_kill.py -s

or ``.venv/bin/python -m tests.mutation.test_kill [OUT.json]``. It asserts a kill rate of
at least 90 % on ``catalogue.py`` and on the held-out list ``heldout.py`` (written before
any mutant was measured, never used to tune a check), and no false alarm on either
list's equivalents.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from headaudit.checks import REGISTRY
from headaudit.errors import SubjectError
from headaudit.profiles import active_profile
from headaudit.registry import Check
from headaudit.runner import run_check
from headaudit.subjects import Subject, load_subject

from .catalogue import MUTANTS, PARTS, Mutant, apply
from .heldout import HELDOUT

REFERENCE = Path(__file__).resolve().parents[2] / "reference" / "head_optimal.py"
SOURCE = REFERENCE.read_text(encoding="utf-8")
THRESHOLD = 0.90


def _checks() -> list[Check[Any]]:
    behaviour = [c for c in REGISTRY if c.group != "performance"]
    return [c for c in behaviour if c.group == "contracts"] + [c for c in behaviour if c.group != "contracts"]


@dataclass
class Outcome:
    id: str
    part: str
    equivalent: bool
    noticed: bool = False
    how: str = ""  # "verdict", "error", "load" (real mutants); "false-alarm" or "" (equivalents)
    by: list[str] = field(default_factory=list)  # checks whose verdict differed (first one, or all)
    contracts: bool = False  # a component contract's verdict differed
    detail: str = ""


def _load(source: str, tag: str, root: Path) -> Subject | str:
    folder = root / tag
    folder.mkdir()
    path = folder / "head_optimal.py"
    path.write_text(source, encoding="utf-8")
    try:
        return load_subject(str(path), timeout=60)
    except SubjectError as exc:
        return str(exc)


def _verdict(check: Check[Any], subject: Subject) -> tuple[str, str]:
    result = run_check(check, subject, "candidate", seed=0, profile=active_profile(), timeout=120)
    return result.verdict, result.summary("en")


def measure(mutants: Sequence[Mutant], full: bool = False) -> list[Outcome]:
    """Run the audit on each mutant and compare its verdicts with the unmutated file's."""
    checks = _checks()
    root = Path(tempfile.mkdtemp(prefix="headaudit-kill-"))
    original = _load(SOURCE, "original", root)
    assert not isinstance(original, str), original
    baseline = {c.id: _verdict(c, original)[0] for c in checks}
    outcomes = []
    for m in mutants:
        out = Outcome(m.id, m.part, m.equivalent)
        subject = _load(apply(m, SOURCE), m.id, root)
        if isinstance(subject, str):
            out.noticed, out.how, out.detail = True, "load", subject
            outcomes.append(out)
            continue
        differing: dict[str, tuple[str, str]] = {}
        for check in checks:
            if differing and not (m.equivalent or full) and check.group != "contracts":
                break
            verdict, summary = _verdict(check, subject)
            if verdict != baseline[check.id]:
                differing[check.id] = (verdict, summary)
        out.by = list(differing)
        out.contracts = any(REGISTRY_GROUP[c] == "contracts" for c in differing)
        out.noticed = bool(differing)
        if differing:
            only_errors = all(v == "error" for v, _ in differing.values())
            out.how = "false-alarm" if m.equivalent else ("error" if only_errors else "verdict")
            first = next(iter(differing.items()))
            out.detail = f"{first[0]}: {baseline[first[0]]} -> {first[1][0]}: {first[1][1][:240]}"
        outcomes.append(out)
    return outcomes


REGISTRY_GROUP = {c.id: c.group for c in REGISTRY}


def table(outcomes: Sequence[Outcome], title: str) -> str:
    """Per-part kill rates (real mutants), equivalents, and the survivors, as Markdown."""
    real = [o for o in outcomes if not o.equivalent]
    per: dict[str, list[Outcome]] = defaultdict(list)
    for o in real:
        per[o.part].append(o)
    killed = sum(o.noticed for o in real)
    lines = [
        f"### {title}: {killed}/{len(real)} noticed ({100 * killed / max(1, len(real)):.1f} %)",
        "",
        "| part | noticed | by a verdict | only by errors | at load | by a contract |",
        "|---|---|---|---|---|---|",
    ]
    for part in [p for p in PARTS if p in per]:
        group = per[part]
        count = {h: sum(o.how == h for o in group) for h in ("verdict", "error", "load")}
        contracts = sum(o.contracts for o in group)
        lines.append(
            f"| {part} | {sum(o.noticed for o in group)}/{len(group)} | {count['verdict']} | {count['error']} | "
            f"{count['load']} | {contracts} |"
        )
    equivalents = [o for o in outcomes if o.equivalent]
    alarms = [o for o in equivalents if o.noticed]
    lines += ["", f"Equivalents: {len(equivalents) - len(alarms)}/{len(equivalents)} with identical verdicts."]
    for o in alarms:
        lines.append(f"- false alarm `{o.id}`: {o.detail}")
    survivors = [o for o in real if not o.noticed]
    lines += ["", "Survivors:" if survivors else "Survivors: none."]
    lines += [f"- `{o.id}` ({o.part})" for o in survivors]
    return "\n".join(lines) + "\n"


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("HEADAUDIT_MUTATION"), reason="opt-in (10-25 minutes): HEADAUDIT_MUTATION=1")
@pytest.mark.parametrize(("name", "mutants"), [("catalogue", MUTANTS), ("held-out", HELDOUT)])
def test_the_audit_notices_single_change_mutants(name: str, mutants: Sequence[Mutant]) -> None:
    outcomes = measure(mutants, full=bool(os.environ.get("HEADAUDIT_MUTATION_FULL")))
    print("\n" + table(outcomes, name))
    real = [o for o in outcomes if not o.equivalent]
    rate = sum(o.noticed for o in real) / len(real)
    assert rate >= THRESHOLD, table(outcomes, name)
    assert not [o.id for o in outcomes if o.equivalent and o.noticed], table(outcomes, name)


if __name__ == "__main__":  # python -m tests.mutation.test_kill [OUT.json]
    results = {name: measure(ms) for name, ms in (("catalogue", MUTANTS), ("held-out", HELDOUT))}
    for name, outcomes in results.items():
        print(table(outcomes, name))
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(
            json.dumps({n: [asdict(o) for o in os] for n, os in results.items()}, indent=2), encoding="utf-8"
        )
