"""The mutation score on head_fixed.py: every mutant killed, no rewrite changes a verdict.

The score itself is measured once per session (about a minute); the smaller tests prove
the measurement can fail: an edit that changes nothing survives, a real mutant posing
as a rewrite is a false alarm, a file that no longer loads is killed by the load.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from headaudit.checks import REGISTRY, by_id
from headaudit.model import Report
from headaudit.mutation.catalogue import EQUIVALENTS, MUTANTS, Mutant, apply
from headaudit.mutation.score import MutationScore, measure_score
from headaudit.profiles import active_profile
from headaudit.render.markdown import render_markdown
from headaudit.subjects import bundled_reference

SOURCE = bundled_reference("head_fixed.py").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def score() -> MutationScore:
    return measure_score(REGISTRY, seed=0, profile=active_profile(), timeout=120)


def test_the_catalogue_is_a_set_of_real_single_changes() -> None:
    assert len(MUTANTS) >= 25
    ids = [m.id for m in (*MUTANTS, *EQUIVALENTS)]
    assert len(ids) == len(set(ids))
    for mutant in (*MUTANTS, *EQUIVALENTS):
        mutated = apply(mutant, SOURCE)
        assert mutated != SOURCE, mutant.id
        compile(mutated, mutant.id, "exec")
        assert all(by_id(h) is not None for h in mutant.hint), mutant.id


def test_apply_refuses_an_edit_that_does_not_occur_once() -> None:
    with pytest.raises(ValueError, match="occurs 0 times"):
        apply(Mutant("x", "p", "d", (("no such text", ""),)), SOURCE)


def test_every_mutant_is_killed_and_no_rewrite_changes_a_verdict(score: MutationScore) -> None:
    survivors = [m.id for m in score.mutants if m.killed_by is None]
    assert survivors == []
    assert score.killed == len(MUTANTS)
    assert {m.killed_by for m in score.mutants} <= {c.id for c in REGISTRY if c.group != "performance"}
    assert [e.changed for e in score.equivalents] == [()] * len(EQUIVALENTS)
    assert score.false_alarms == 0


def test_an_edit_that_changes_nothing_survives_and_a_broken_file_is_killed_by_its_load() -> None:
    noop = Mutant("comment", "none", "a comment reworded", (("# --- the four terms", "# --- the 4 terms"),))
    broken = Mutant("syntax", "none", "a syntax error", (("class Head(HeadOptimal):", "class Head(HeadOptimal)"),))
    checks = [c for c in REGISTRY if c.id in ("gate.sum-to-one", "loss.terms-sum")]
    result = measure_score(checks, seed=0, profile=active_profile(), timeout=60, mutants=[noop, broken], equivalents=[])
    assert result.mutants[0].killed_by is None
    assert result.mutants[0].tried == 2
    assert result.mutants[1].killed_by == "load"
    assert "SyntaxError" in result.mutants[1].detail or "syntax" in result.mutants[1].detail.lower()


def test_a_real_mutant_posing_as_a_rewrite_is_a_false_alarm() -> None:
    posing = next(m for m in MUTANTS if m.id == "gate-sigmoid")
    checks = [c for c in REGISTRY if c.id in ("gate.sum-to-one", "loss.terms-sum")]
    result = measure_score(checks, seed=0, profile=active_profile(), timeout=60, mutants=[], equivalents=[posing])
    assert result.equivalents[0].changed == ("gate.sum-to-one",)
    assert result.false_alarms == 1


def test_the_report_shows_the_score_measured_in_the_run(reference_report: Report, score: MutationScore) -> None:
    import dataclasses

    report = dataclasses.replace(reference_report, extra={**reference_report.extra, "mutation": score.to_dict()})
    en, zh = render_markdown(report, "en"), render_markdown(report, "zh")
    assert f"{score.killed} of {len(MUTANTS)} single-change mutants" in en
    assert "| `con-same-class-pairs` | contrastive | `contrastive.pairs` | pass → fail |" in en
    assert "### 变异得分" in zh
    assert "### Mutation score" not in render_markdown(reference_report, "en")  # not measured: not shown
    assert Report.from_dict(json.loads(json.dumps(report.to_dict()))).extra["mutation"] == score.to_dict()


def test_headaudit_mutate_prints_the_score_and_writes_json(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "headaudit", "mutate", "--only", "gate-sigmoid,amax-spelled-as-function", "--json",
         str(tmp_path / "m.json")],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "mutation score 1/1 (100 %) on headaudit:reference/head_fixed.py; 0 false alarms in 1 rewrites" in out.stdout
    assert "gate-sigmoid                       killed by gate.sum-to-one (pass -> fail)" in out.stdout
    data = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert data["killed"] == data["total"] == 1
    assert "headaudit-mutant-" not in out.stdout  # temporary paths read as the mutated file
    bad = subprocess.run([sys.executable, "-m", "headaudit", "mutate", "--only", "nope"], capture_output=True,
                         text=True, check=False, timeout=120)  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1
