"""`pytest --headaudit`: the checks as test items, tested with pytester in subprocesses.

Each run is a fresh interpreter that finds the plugin through its ``pytest11`` entry
point, as a user's CI does.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.mutation.catalogue import MUTANTS, apply
from tests.test_cli import headaudit, in_process

pytest_plugins = ("pytester",)

ROOT = Path(__file__).resolve().parents[1]
OPTIMAL = ROOT / "reference" / "head_optimal.py"
CHECKS = "loss.separation-value,ema.unit-norm,gate.convex,static.host-syncs"


@pytest.fixture(scope="session")
def recorded_audit(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The audit.json a user records from a copy of head_optimal.py, recorded once.

    The JSON names the file as the user gave it (``head_optimal.py``, from the project's
    folder), so every project with that copy records the same text."""
    root = tmp_path_factory.mktemp("recording")
    shutil.copy(OPTIMAL, root / "head_optimal.py")
    out = headaudit("report", "--candidate", "head_optimal.py", "--only", CHECKS, "--no-bench", "--format", "json",
                    cwd=root)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture
def project(pytester: pytest.Pytester, recorded_audit: str) -> Path:
    """A user's project: a copy of head_optimal.py and an audit.json recorded from it."""
    root = pytester.path
    shutil.copy(OPTIMAL, root / "head_optimal.py")
    (root / "audit.json").write_text(recorded_audit, encoding="utf-8")
    return root


def _mutate(root: Path, mutant_id: str) -> None:
    mutant = next(m for m in MUTANTS if m.id == mutant_id)
    (root / "head_optimal.py").write_text(apply(mutant, OPTIMAL.read_text(encoding="utf-8")), encoding="utf-8")


def _outcomes(result: pytest.RunResult) -> list[str]:
    """``OUTCOME nodeid`` of every item (from ``-rA``), sorted."""
    lines = [ln for ln in result.outlines if re.match(r"^(PASSED|FAILED|XFAIL|SKIPPED|ERROR) ", ln)]
    return sorted(re.sub(r" - .*$", "", ln) for ln in lines)


def test_the_options_are_in_a_headaudit_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    text = result.stdout.str()
    assert "headaudit: audit multi-prototype heads as tests" in text
    for option in (
        "--headaudit ",
        "--headaudit-candidate",
        "--headaudit-baseline",
        "--headaudit-host",
        "--headaudit-expect",
    ):
        assert option in text


def test_known_failures_xfail_a_mutant_fails_until_reverted_and_xdist_agrees(
    pytester: pytest.Pytester, project: Path
) -> None:
    args = ("--headaudit", "--headaudit-expect", "audit.json", "-rA", "-p", "no:cacheprovider")
    clean = pytester.runpytest_subprocess(*args)
    assert clean.ret == 0, clean.stdout.str()
    counts = clean.parseoutcomes()
    assert counts.get("xfailed", 0) >= 1  # head.py's and head_optimal.py's recorded failures
    assert counts["passed"] + counts["xfailed"] == 8

    _mutate(project, "sep-includes-own-class")
    bad = pytester.runpytest_subprocess(*args)
    assert bad.ret == 1
    assert _outcomes(bad).count("FAILED ::headaudit[candidate-loss.separation-value]") == 1
    bad.stdout.fnmatch_lines(["*regression: candidate loss.separation-value: verdict: pass -> fail: *"])
    # the same items spread over two xdist workers: the serial verdicts
    spread = pytester.runpytest_subprocess(*args, "-n", "2")
    assert spread.ret == 1
    assert _outcomes(spread) == _outcomes(bad)
    assert len(_outcomes(bad)) == 8

    shutil.copy(OPTIMAL, project / "head_optimal.py")
    again = pytester.runpytest_subprocess("--headaudit", "--headaudit-expect", "audit.json", "-p", "no:cacheprovider")
    assert again.ret == 0, again.stdout.str()


def test_a_regression_under_a_known_failure_fails_the_item(pytester: pytest.Pytester, project: Path) -> None:
    # static.host-syncs already fails on head_optimal.py (recorded): a new host read must not hide there
    source = OPTIMAL.read_text(encoding="utf-8")
    anchor = "        distances = 1 - similarities\n"
    synced = source.replace(anchor, anchor + "        _ = float(distances.sum().item())\n")
    (project / "head_optimal.py").write_text(synced, encoding="utf-8")
    args = ("--headaudit", "--headaudit-expect", "audit.json", "-rA", "-p", "no:cacheprovider")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == 1
    outcomes = _outcomes(result)
    assert "FAILED ::headaudit[candidate-static.host-syncs]" in outcomes
    assert "XFAIL ::headaudit[baseline-static.host-syncs]" in outcomes  # head.py's, unchanged
    result.stdout.fnmatch_lines(["*new finding: site (head_optimal.py, OptimalPrototypeLoss.forward, .item(), #1)*"])


def test_without_an_expect_file_failing_checks_fail(pytester: pytest.Pytester, project: Path) -> None:
    pytester.makepyprojecttoml('[tool.headaudit]\ncandidate = "head_optimal.py"\n')
    (project / "audit.json").unlink()
    result = pytester.runpytest_subprocess("--headaudit", "-k", "unit or convex", "-rA", "-p", "no:cacheprovider")
    outcomes = _outcomes(result)
    assert "FAILED ::headaudit[candidate-ema.unit-norm]" in outcomes  # the defect of head_optimal.py
    assert "PASSED ::headaudit[candidate-gate.convex]" in outcomes
    assert "FAILED ::headaudit[baseline-gate.convex]" in outcomes  # head.py's gate
    assert len(outcomes) == 4


def test_a_bad_expect_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        "--headaudit", "--headaudit-expect", "missing.json", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*headaudit: --expect 'missing.json' does not exist*"])


def test_without_the_flag_the_plugin_adds_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_one():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


FIXED = ROOT / "reference" / "head_fixed.py"


@pytest.mark.usefixtures("fresh_cache")  # report and check: the unedited results are served
@pytest.mark.parametrize("mutant_id", ["con-same-class-pairs", "patches-flattened-together", "host-read-in-loss"])
def test_a_catalogue_mutant_of_head_fixed_fails_check_and_the_plugin(
    pytester: pytest.Pytester, mutant_id: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """End to end for a sample of the catalogue; the score proves every mutant with the same rule.

    The recording runs the mutant's first hinted check alone (``contrastive.pairs``,
    ``shapes.batch-independence``, ``static.host-syncs``): each notices its mutant by
    itself, so ``check`` and the plugin still fail on the mutant and pass once it is
    reverted. The second hints (``compile.graph-breaks`` costs a torch.compile in each
    of the five runs) would prove nothing more here; the hinted score runs them.
    ``headaudit report`` and ``check`` run in this process (``in_process``: the edited
    file is loaded again); the plugin runs in a fresh interpreter, as a user's CI does."""
    from headaudit.mutation.catalogue import MUTANTS as FIXED_MUTANTS
    from headaudit.mutation.catalogue import apply as apply_fixed

    mutant = next(m for m in FIXED_MUTANTS if m.id == mutant_id)
    root = pytester.path
    shutil.copy(FIXED, root / "head_fixed.py")
    code, stdout, stderr = in_process(monkeypatch, capsys, root, "report", "--candidate", "head_fixed.py",
                                      "--only", mutant.hint[0], "--no-bench", "--format", "json")  # fmt: skip
    assert code == 0, stderr
    (root / "audit.json").write_text(stdout, encoding="utf-8")
    (root / "head_fixed.py").write_text(apply_fixed(mutant, FIXED.read_text(encoding="utf-8")), encoding="utf-8")
    assert in_process(monkeypatch, capsys, root, "check", "--expect", "audit.json")[0] == 1
    args = ("--headaudit", "--headaudit-expect", "audit.json", "-p", "no:cacheprovider")
    assert pytester.runpytest_subprocess(*args).ret == 1
    shutil.copy(FIXED, root / "head_fixed.py")
    assert in_process(monkeypatch, capsys, root, "check", "--expect", "audit.json")[0] == 0
    assert pytester.runpytest_subprocess(*args).ret == 0
