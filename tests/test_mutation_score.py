"""The mutation score: detections only, crashes apart, rewrites that keep every finding.

Each mutant is run through its hinted checks only (``hinted_only``): a few seconds each,
where the full measurement (``headaudit mutate``) takes minutes. The whole catalogue is
measured once (``hinted_score``, on one xdist worker: ``SHARED`` in tests/conftest.py), as
``headaudit mutate`` measures it, and each mutant and rewrite is a test of its own entry.
The smaller tests prove the measurement can fail: an edit that changes nothing survives, a head that only raises
crashes (and is not counted), a real mutant posing as a rewrite is a false alarm, also on
``head_optimal.py`` where the verdict stays ``fail`` and only a finding changes.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from headaudit.checks import REGISTRY, by_id
from headaudit.messages import Msg
from headaudit.model import Report, Result, Verdict
from headaudit.mutation.catalogue import EQUIVALENTS, MUTANTS, Mutant, apply
from headaudit.mutation.score import Crash, Kill, MutationScore, Rewrite, _crashes, _detects, measure_score
from headaudit.profiles import active_profile
from headaudit.registry import Check
from headaudit.render.markdown import render_markdown
from headaudit.runner import run_audit, run_check
from headaudit.subjects import Subject, bundled_reference, load_subject

SOURCE = bundled_reference("head_fixed.py").read_text(encoding="utf-8")

#: Mutants that no check on this branch detects yet, and the change expected to detect
#: them. Strict: once that change is merged the test passes, and the entry must go.
AWAITING: dict[str, str] = {}

FROM_BUG_REPORTS = (
    "sep-detached",
    "div-detached",
    "masked-min-is-zero",
    "ema-writes-copy",
    "compat-ignores-max-prototypes",
    "compat-drops-var-threshold",
    "keyword-margin-ignored",
    "wrapper-detection-inverted",
    "helper-detection-inverted",
)


def _hinted(*mutants: Mutant) -> list[Check[Any]]:
    return [c for c in REGISTRY if any(c.id in m.hint for m in mutants)]


def _result(verdict: Verdict) -> Result:
    message = Msg("common.check_failed", {"detail": "RuntimeError: boom"})
    return Result(check="gate.convex", subject="candidate", verdict=verdict, message=message, evidence={})


@pytest.fixture(scope="module")
def small_report(references: dict[str, Subject]) -> Report:
    """An audit of the references by one static check: enough to render the section."""
    return run_audit(references, [c for c in REGISTRY if c.id == "static.data-writes"], seed=0,
                     profile=active_profile())  # fmt: skip


def test_the_catalogue_is_a_set_of_real_single_changes() -> None:
    assert len(MUTANTS) >= 45
    ids = [m.id for m in (*MUTANTS, *EQUIVALENTS)]
    assert len(ids) == len(set(ids))
    assert set(FROM_BUG_REPORTS) <= set(ids)
    assert {e.file for e in EQUIVALENTS} == {"head_fixed.py", "head_optimal.py"}
    for mutant in (*MUTANTS, *EQUIVALENTS):
        source = bundled_reference(mutant.file).read_text(encoding="utf-8")
        mutated = apply(mutant, source)
        assert mutated != source, mutant.id
        compile(mutated, mutant.id, "exec")
        assert mutant.hint, mutant.id
        assert all(by_id(h) is not None for h in mutant.hint), mutant.id


def test_apply_refuses_an_edit_that_does_not_occur_once() -> None:
    with pytest.raises(ValueError, match="occurs 0 times"):
        apply(Mutant("x", "p", "d", (("no such text", ""),)), SOURCE)


def test_an_error_on_the_mutant_is_a_crash_never_a_detection() -> None:
    assert _detects(_result("pass"), _result("fail"))
    assert not _crashes(_result("pass"), _result("fail"))
    assert not _detects(_result("pass"), _result("error"))
    assert _crashes(_result("pass"), _result("error"))
    assert not _detects(_result("fail"), _result("error"))  # worse by rank, still only a raise
    assert not _crashes(_result("error"), _result("error"))  # no change at all


def _awaiting(mutant: Mutant) -> list[pytest.MarkDecorator]:
    reason = AWAITING.get(mutant.id)
    return [] if reason is None else [pytest.mark.xfail(strict=True, reason=reason)]


@pytest.fixture(scope="module")
def hinted_score() -> MutationScore:
    """Every mutant and rewrite of the catalogue through its own hinted checks, measured once.

    One measurement loads each unmodified file once and runs each check on it once, as
    ``headaudit mutate`` does; a measurement per mutant would repeat both for each of them.
    Each mutant still meets only its hinted checks, in its hint's order (``hinted_only``).
    """
    return measure_score(
        _hinted(*MUTANTS, *EQUIVALENTS), seed=0, profile=active_profile(), timeout=120, mutants=MUTANTS,
        equivalents=EQUIVALENTS, hinted_only=True,
    )  # fmt: skip


def _alone(score: MutationScore, mutant: Mutant) -> MutationScore:
    """The measurement of ``mutant`` (a mutant or a rewrite) alone, taken from the whole one."""
    kills = tuple(k for k in score.mutants if k.id == mutant.id)
    rewrites = tuple(r for r in score.equivalents if r.id == mutant.id)
    assert len(kills) + len(rewrites) == 1, mutant.id
    return dataclasses.replace(score, mutants=kills, equivalents=rewrites)


@pytest.mark.parametrize("mutant", [pytest.param(m, id=m.id, marks=_awaiting(m)) for m in MUTANTS])
def test_each_mutant_is_detected_by_its_hinted_checks(hinted_score: MutationScore, mutant: Mutant) -> None:
    score = _alone(hinted_score, mutant)
    (kill,) = score.mutants
    assert kill.outcome == "detected", (kill.outcome, kill.crashes)
    assert kill.detected_by in mutant.hint
    assert score.detected == 1
    assert score.crashed == 0


@pytest.mark.parametrize("rewrite", [pytest.param(e, id=e.id) for e in EQUIVALENTS])
def test_each_rewrite_keeps_every_verdict_and_fingerprint(hinted_score: MutationScore, rewrite: Mutant) -> None:
    score = _alone(hinted_score, rewrite)
    assert score.equivalents[0].changed == ()
    assert score.false_alarms == 0


def test_head_optimal_fails_where_its_rewrites_are_checked() -> None:
    """Keeping head_optimal.py's findings is the test of its rewrites: the static checks they
    run fail there, with one finding per place."""
    subject = load_subject(str(bundled_reference("head_optimal.py")), "candidate", timeout=120)
    for check in [c for c in REGISTRY if c.id in ("static.class-loops", "static.host-syncs")]:
        result = run_check(check, subject, "candidate", seed=0, profile=active_profile())
        assert result.verdict == "fail", check.id
        assert len(result.findings()) >= 2, check.id


def test_a_new_finding_under_an_unchanged_fail_is_a_false_alarm_on_head_optimal() -> None:
    posing = Mutant("posing", "separation", "one more host read in the separation loop",
                    (("nearest_other = torch.cat(others, dim=-1).min(dim=-1).values",
                      "nearest_other = torch.cat(others, dim=-1).min(dim=-1).values\n"
                      "            _ = float(nearest_other.sum().item())"),),
                    ("static.host-syncs",), "head_optimal.py")  # fmt: skip
    result = measure_score(_hinted(posing), seed=0, profile=active_profile(), timeout=60, mutants=[],
                           equivalents=[posing], hinted_only=True)  # fmt: skip
    assert result.equivalents[0].changed == ("static.host-syncs",)
    assert result.false_alarms == 1


def test_an_edit_that_changes_nothing_survives_a_raising_head_crashes_and_a_broken_file_crashes_at_load() -> None:
    noop = Mutant("comment", "none", "a comment reworded", (("# --- the four terms", "# --- the 4 terms"),))
    raising = Mutant("raising", "none", "forward raises", ((
        "        self._check_inputs(pool_img_features, img_features, labels)\n",
        '        raise RuntimeError("mutant raised")\n'),))  # fmt: skip
    broken = Mutant("syntax", "none", "a syntax error", (("class Head(HeadOptimal):", "class Head(HeadOptimal)"),))
    checks = [c for c in REGISTRY if c.id in ("gate.sum-to-one", "loss.terms-sum")]
    result = measure_score(checks, seed=0, profile=active_profile(), timeout=60, mutants=[noop, raising, broken],
                           equivalents=[])  # fmt: skip
    survived, crashed, unloadable = result.mutants
    assert (survived.outcome, survived.tried, survived.crashes) == ("survived", 2, ())
    assert crashed.outcome == "crashed"
    assert crashed.detected_by is None
    assert [c.check for c in crashed.crashes] == ["gate.sum-to-one", "loss.terms-sum"]
    assert all("mutant raised" in c.detail for c in crashed.crashes)
    assert all("mutant raised" in c.texts["zh"] and c.texts["zh"] != c.detail for c in crashed.crashes)
    assert "headaudit-mutant-" not in " ".join(c.detail for c in crashed.crashes)
    assert unloadable.outcome == "crashed"
    assert unloadable.crashes[0].check == "load"
    assert "syntax" in unloadable.crashes[0].detail.lower()
    assert (result.detected, result.crashed, result.survived) == (0, 2, 1)


def test_a_real_mutant_posing_as_a_rewrite_is_a_false_alarm() -> None:
    posing = next(m for m in MUTANTS if m.id == "gate-sigmoid")
    checks = [c for c in REGISTRY if c.id in ("gate.sum-to-one", "loss.terms-sum")]
    result = measure_score(checks, seed=0, profile=active_profile(), timeout=60, mutants=[], equivalents=[posing])
    assert result.equivalents[0].changed == ("gate.sum-to-one",)
    assert result.false_alarms == 1


SCORE = MutationScore(
    file="headaudit:reference/head_fixed.py",
    sha256="0" * 64,
    seed=0,
    mutants=(
        Kill("con-same-class-pairs", "contrastive", "d", "detected", "contrastive.pairs", "pass", "fail", "x", 1),
        Kill(
            "raising",
            "none",
            "d",
            "crashed",
            tried=2,
            crashes=(
                Crash(
                    "gate.sum-to-one",
                    "could not measure: forward raised RuntimeError: mutant raised",
                    {"zh": "无法测量：forward 抛出 RuntimeError: mutant raised"},
                ),
            ),
        ),
        Kill("comment", "none", "d", "survived", tried=2),
    ),
    equivalents=(Rewrite("optimal-rename-cluster-locals", "d", (), "head_optimal.py"),),
)


def test_the_report_shows_detections_crashes_apart_and_survivors(small_report: Report) -> None:
    report = dataclasses.replace(small_report, extra={**small_report.extra, "mutation": SCORE.to_dict()})
    en, zh = render_markdown(report, "en"), render_markdown(report, "zh")
    assert "1 of 3 single-change mutants of `headaudit:reference/head_fixed.py`" in en
    assert "1 crashed and 1 survived" in en
    assert "| `con-same-class-pairs` | contrastive | `contrastive.pairs` | pass → fail |" in en
    assert "| `raising` | none | **crashed** | `gate.sum-to-one` → error |" in en
    assert "- `raising`: `gate.sum-to-one`: could not measure: forward raised RuntimeError: mutant raised" in en
    assert "| `comment` | none | **survived** | - |" in en
    assert "of `head_optimal.py`: 1" in en
    assert "### 变异得分" in zh
    assert "**崩溃**" in zh
    assert "1 个崩溃，1 个未被检出" in zh
    unmeasured = render_markdown(small_report, "en")  # not measured: the section names the command
    assert "### Mutation score" in unmeasured
    assert "Not measured in this run" in unmeasured
    assert "`headaudit report --mutation`" in unmeasured
    assert "headaudit report --mutation" in render_markdown(small_report, "zh")
    assert Report.from_dict(json.loads(json.dumps(report.to_dict()))).extra["mutation"] == SCORE.to_dict()
    assert "- `raising`: `gate.sum-to-one`: 无法测量：forward 抛出 RuntimeError: mutant raised" in zh
    assert SCORE.to_dict()["mutants"][1]["crashes"][0]["detail"].endswith("RuntimeError: mutant raised")


def test_headaudit_mutate_prints_the_score_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The command as a user runs it; the unknown id only has to be refused by ``cli.main``
    (its status is the process's), so that one runs in this process."""
    from headaudit import cli

    out = subprocess.run(
        [sys.executable, "-m", "headaudit", "mutate", "--only", "gate-sigmoid", "--json", str(tmp_path / "m.json")],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert ("mutation score 1/1 detected (100 %) on headaudit:reference/head_fixed.py; 0 crashed, 0 survived; "
            "0 false alarms in 0 rewrites") in out.stdout  # fmt: skip
    assert "gate-sigmoid                       detected by gate.sum-to-one (pass -> fail)" in out.stdout
    data = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert data["detected"] == data["total"] == 1
    assert data["crashed"] == 0
    assert "headaudit-mutant-" not in out.stdout  # temporary paths read as the mutated file
    assert cli.main(["mutate", "--only", "nope"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_report_measures_the_score_only_with_mutation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default report never pays for the score; ``--mutation`` adds the measured one."""
    from headaudit import cli

    calls: list[str] = []

    def measured(args: object) -> MutationScore:
        calls.append("measured")
        return SCORE

    monkeypatch.setattr(cli, "_mutation", measured)
    assert cli.main(["report", "--only", "gate.sum-to-one", "--no-bench"]) == 0
    assert calls == []
    assert "Not measured in this run" in capsys.readouterr().out
    assert cli.main(["report", "--only", "gate.sum-to-one", "--no-bench", "--mutation"]) == 0
    assert calls == ["measured"]
    assert "1 of 3 single-change mutants" in capsys.readouterr().out
