"""The regression guard: fingerprints, `headaudit check` and `[tool.headaudit]`.

A regression is a worse verdict, a finding whose fingerprint the expect file lacks, or a
changed interface record; the tests introduce each into a copy of a reference, in either
slot, and prove that reverting the change makes the guard pass again.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from headaudit.checks import ema, shapes
from headaudit.checks.shapes import Coupling, IndependenceMeasurement
from headaudit.cli import main, plan_check
from headaudit.errors import CheckDefinitionError
from headaudit.fingerprints import Headline, findings_of, normalise
from headaudit.guard import compare, regressions_of, worsened
from headaudit.messages import Msg
from headaudit.model import CheckInfo, Finding, Report, Result
from headaudit.registry import Check
from tests.conftest import LoadSubject, RunCheck
from tests.mutation.catalogue import MUTANTS, apply
from tests.test_cli import headaudit, in_process

ROOT = Path(__file__).resolve().parents[1]
OPTIMAL = ROOT / "reference" / "head_optimal.py"
BASE = ROOT / "reference" / "head.py"
CHECKS = "loss.separation-value,ema.standard,forward.contract,static.host-syncs"


def _mutant(mutant_id: str) -> str:
    found = [m for m in MUTANTS if m.id == mutant_id]
    assert found, mutant_id
    return apply(found[0], OPTIMAL.read_text(encoding="utf-8"))


# --- fingerprints ---------------------------------------------------------------------------


def test_normalise_drops_what_moves_and_keeps_names() -> None:
    assert normalise("headaudit:reference/head.py:64") == "head.py"
    assert normalise("/tmp/a/b/head_fixed.py:12:3 failed") == "head_fixed.py failed"
    assert normalise("n=3, tol 1.5e-05 at 0x7fab12") == "n=#, tol # at #"
    assert normalise("float32 logits, log_sigma_ce") == "float32 logits, log_sigma_ce"


def _msg(cells: list[str], value: float) -> dict[str, object]:
    items = [{"msg": {"id": "demo.cell", "params": {"head": c, "value": value}}} for c in cells]
    return Msg("demo.fail", {"cells": items, "largest": value, "setting": "momentum=0.5"}).to_dict()


def test_a_pass_has_no_findings_and_numbers_change_no_fingerprint() -> None:
    assert findings_of("demo", "pass", _msg(["Head"], 1.0), {}) == ()
    first = findings_of("demo", "fail", _msg(["Head"], 1.0), {})
    second = findings_of("demo", "fail", _msg(["Head"], 7.25), {})
    assert [f.fingerprint for f in first] == [f.fingerprint for f in second]
    assert first[0].keys == ("setting=momentum=#",)
    assert first[1].keys == ("cells", "Head")


def test_a_new_list_item_is_one_new_finding_and_a_fixed_one_disappears() -> None:
    one = {f.fingerprint for f in findings_of("demo", "fail", _msg(["Head"], 1.0), {})}
    two = {f.fingerprint for f in findings_of("demo", "fail", _msg(["Head", "HeadOptimal"], 1.0), {})}
    assert one < two
    assert len(two - one) == 1


def _sites(*lines: tuple[str, int]) -> dict[str, object]:
    return {"sites": [{"file": "pkg/head.py", "line": n, "function": f, "detail": ".item()"} for f, n in lines]}


def test_a_site_keeps_its_fingerprint_when_its_line_moves() -> None:
    msg = Msg("static.host-syncs.fail", {"count": 1}).to_dict()
    before = findings_of("static.host-syncs", "fail", msg, _sites(("Loss.forward", 10)))
    moved = findings_of("static.host-syncs", "fail", msg, _sites(("Loss.forward", 42)))
    again = findings_of("static.host-syncs", "fail", msg, _sites(("Loss.forward", 42), ("Loss.forward", 50)))
    assert [f.fingerprint for f in before] == [f.fingerprint for f in moved]
    assert len({f.fingerprint for f in again} - {f.fingerprint for f in moved}) == 1  # a second .item() there


def test_results_in_json_carry_their_findings(reference_report: Report) -> None:
    data = reference_report.to_dict()
    for raw, result in zip(data["results"], reference_report.results, strict=True):
        assert raw["findings"] == [f.to_dict() for f in result.findings()]
        assert (raw["findings"] == []) == (result.verdict == "pass")
    assert Report.from_dict(json.loads(json.dumps(data))).to_dict() == data


# --- headline figures ---------------------------------------------------------------------

_SHRINK = {"weights.absent-classes.mode_fail": Headline("factor", "lower")}


def _absent(factors: dict[str, float], headlines: dict[str, Headline] | None = None) -> Result:
    """A hand-made weights.absent-classes failure: one mode_fail per mode, with its factor."""
    modes = [
        Msg(
            "weights.absent-classes.mode_fail",
            {
                "mode": Msg("weights.mode.setting", {"setting": mode}),
                "extra": 3,
                "factor": factor,
                "batch": 16,
                "median": 0.5,
                "p10": 0.25,
                "p90": 0.75,
            },
        )
        for mode, factor in factors.items()
    ]
    message = Msg("weights.absent-classes.fail", {"modes": modes})
    return Result(
        "weights.absent-classes",
        "candidate",
        "fail",
        message,
        {},
        headlines=_SHRINK if headlines is None else headlines,
    )


def test_each_finding_records_its_declared_figure_and_numbers_stay_out_of_fingerprints() -> None:
    result = _absent({"use_class_balanced=True": 0.0117, "use_class_balanced=False": 0.00159})
    own, *modes = result.findings()
    assert (own.figure, own.worse) == (None, None)  # the fail message itself declares no figure
    assert [(f.keys[-1], f.figure, f.worse) for f in modes] == [
        ("use_class_balanced=True", 0.0117, "lower"),
        ("use_class_balanced=False", 0.00159, "lower"),
    ]
    moved = _absent({"use_class_balanced=True": 0.0117, "use_class_balanced=False": 1.59e-06})
    assert [f.fingerprint for f in moved.findings()] == [f.fingerprint for f in result.findings()]
    assert modes[1].to_dict()["figure"] == 0.00159
    assert "figure" not in own.to_dict()
    data = result.to_dict()
    assert Result.from_dict(data).to_dict() == data  # the declarations travel with the result


@pytest.mark.parametrize(
    ("was", "now", "worse", "regression"),
    [
        (0.00159, 1.59e-06, "lower", True),  # the 1e-12 edit: 1000x smaller
        (0.00159, 0.00053, "lower", False),  # 3x: rounding and seeds move figures, an order of magnitude does not
        (0.00159, 0.000159, "lower", True),  # exactly 10x
        (0.00159, 0.0159, "lower", False),  # 10x the better way
        (2e-07, 2e-06, "higher", True),
        (2e-07, 6e-07, "higher", False),
        (2e-06, 2e-07, "higher", False),  # 10x the better way
        (0.0, 1e-9, "higher", True),  # from nothing: no factor is large enough to excuse it
        (0.0, 0.0, "lower", False),
        (-0.5, -5.0, "higher", True),  # by magnitude
        (0.5, float("nan"), "lower", True),  # a figure that breaks down
        (float("nan"), 0.5, "higher", False),
    ],
)
def test_a_figure_is_a_regression_when_it_moves_ten_times_the_worse_way(
    was: float, now: float, worse: str, regression: bool
) -> None:
    assert worsened(was, now, worse) is regression  # type: ignore[arg-type]


def test_a_figure_ten_times_worse_is_one_line_with_both_figures() -> None:
    before = _absent({"use_class_balanced=True": 0.0117, "use_class_balanced=False": 0.00159})
    after = _absent({"use_class_balanced=True": 0.0117, "use_class_balanced=False": 1.59e-06})
    found = regressions_of(after, before)
    assert [g.line() for g in found] == [
        "candidate weights.absent-classes: worse figure: weights.absent-classes.mode_fail (modes, "
        f"weights.mode.setting, use_class_balanced=False): 0.00159 -> 1.59e-06, 1000x lower (lower is worse) "
        f"[{after.findings()[2].fingerprint}]"
    ]
    assert regressions_of(after, before, before.to_dict()) == found  # recorded figures, read from the JSON
    old = {k: v for k, v in before.to_dict().items() if k != "headlines"}  # recorded before figures were
    old["findings"] = [{k: v for k, v in f.items() if k not in ("figure", "worse")} for f in old["findings"]]
    assert regressions_of(after, Result.from_dict(old), old) == found  # this run's declarations apply
    assert regressions_of(before, after) == []  # 1000x better
    assert (
        regressions_of(_absent({"use_class_balanced=True": 0.0117, "use_class_balanced=False": 0.00053}), before) == []
    )
    undeclared = _absent({"use_class_balanced=False": 1.59e-06}, headlines={})
    assert regressions_of(undeclared, _absent({"use_class_balanced=False": 0.00159}, headlines={})) == []


def test_a_headline_must_name_a_placeholder_of_its_message() -> None:
    def judge(_: object) -> object:
        raise AssertionError

    with pytest.raises(CheckDefinitionError, match="'median_shrink', which is not a placeholder"):
        Check(
            id="weights.absent-classes", catalogue=3, measure=judge, judge=judge,  # type: ignore[arg-type]
            headlines={"weights.absent-classes.mode_fail": Headline("median_shrink", "lower")},
        )  # fmt: skip
    with pytest.raises(ValueError, match="worse='smaller'"):
        Headline("factor", "smaller")  # type: ignore[arg-type]


# --- every fail names what failed ----------------------------------------------------------


def _unnamed(results: tuple[Result, ...] | list[Result]) -> list[tuple[str, str, str]]:
    """The fail results none of whose findings has a key: a second defect there would keep
    every fingerprint and pass the guard."""
    return [
        (r.subject, r.check, r.message.id)
        for r in results
        if r.verdict == "fail" and not any(f.keys for f in r.findings())
    ]


def test_every_fail_of_the_references_names_what_failed(reference_report: Report) -> None:
    fails = [r for r in reference_report.results if r.verdict == "fail"]
    assert len({r.check for r in fails}) >= 15  # the references fail many checks: the test is not vacuous
    assert _unnamed(fails) == []


@pytest.mark.parametrize("role", ["baseline", "candidate"])
def test_every_fail_of_the_hand_made_subjects_names_what_failed(
    subject: LoadSubject, check: RunCheck, role: str
) -> None:
    checks = ("shapes.batch-independence", "shapes.permutation")
    results = [check(check_id, subject("positional_batch"), role) for check_id in checks]
    assert [r.verdict for r in results] == ["fail", "fail"]
    assert _unnamed(results) == []


def _coupling(alone: float, others: float, flipped: int) -> Finding:
    bad = Coupling(batch=2, salt=0, alone_change=alone, others_change=others, largest_change=max(alone, others),
                   flipped=flipped, tolerance=1e-4)  # fmt: skip
    return shapes._judge_independence(IndependenceMeasurement(bad, 3, max(alone, others), 1e-4, "float32"))


def _kinds(check_id: str, finding: Finding) -> set[str]:
    return {f.kind for f in findings_of(check_id, finding.verdict, finding.message.to_dict(), {})}


def test_a_second_kind_of_batch_coupling_is_a_new_finding() -> None:
    alone = _kinds("shapes.batch-independence", _coupling(0.5, 0.0, 0))
    both = _kinds("shapes.batch-independence", _coupling(0.5, 0.3, 0))
    flipped = _kinds("shapes.batch-independence", _coupling(0.5, 0.3, 2))
    others = _kinds("shapes.batch-independence", _coupling(0.0, float("nan"), 0))
    prefix = "shapes.batch-independence."
    assert alone == {prefix + "fail", prefix + "alone"}
    assert both - alone == {prefix + "others"}
    assert flipped - both == {prefix + "flipped"}
    assert others == {prefix + "fail", prefix + "others"}  # a NaN change is a change


def _violation(norm: float, found_by: str, sequence: str) -> Finding:
    bad = ema.NormViolation(0, norm, 0.5, ("head(momentum=0.5)",), found_by, sequence)
    return ema._judge_unit_norm(ema.UnitNormMeasurement(bad, 10, 0, (0.5,), {}, 1e-4))


def test_a_second_kind_of_norm_violation_is_a_new_finding() -> None:
    def prints(finding: Finding) -> tuple[str, ...]:
        return tuple(f.fingerprint for f in findings_of("ema.unit-norm", "fail", finding.message.to_dict(), {}))

    zero = _violation(0.0, "battery", "v1=-row")
    assert prints(zero) == prints(_violation(1e-9, "battery", "v1=-row"))  # numbers are not identity
    others = [
        _violation(0.0, "battery", "v1=-row; v2=-c*v1"),  # another cancellation family
        _violation(1.5, "battery", "v1=-row"),  # off 1, not collapsed
        _violation(float("nan"), "battery", "v1=-row"),
        _violation(0.0, "search", "update, apply"),
    ]
    assert len({prints(zero), *(prints(o) for o in others)}) == 5
    assert findings_of("ema.unit-norm", "fail", zero.message.to_dict(), {})[0].keys == (
        "ema.unit-norm.zero",
        "ema.unit-norm.battery",
        "kind=v1=-row",
    )


# --- compare ------------------------------------------------------------------------------


def _with(report: Report, role: str, check: str, **changes: object) -> Report:
    results = tuple(
        dataclasses.replace(r, **changes) if (r.subject, r.check) == (role, check) else r  # type: ignore[arg-type]
        for r in report.results
    )
    return dataclasses.replace(report, results=results)


@pytest.mark.parametrize("role", ["baseline", "candidate"])
def test_compare_finds_worse_verdicts_new_findings_and_interface_changes(reference_report: Report, role: str) -> None:
    assert compare(reference_report, reference_report).regressions == ()
    passing = next(r for r in reference_report.results if r.subject == role and r.verdict == "pass")
    worse = _with(
        reference_report, role, passing.check, verdict="fail", message=Msg("common.check_failed", {"detail": "demo"})
    )
    kinds = {(g.role, g.check, g.kind) for g in compare(reference_report, worse).regressions}
    assert kinds == {(role, passing.check, "verdict"), (role, passing.check, "new finding")}
    assert compare(worse, reference_report).regressions == ()  # better is a note, not a regression

    contract: Result = next(r for r in reference_report.results if (r.subject, r.check) == (role, "forward.contract"))
    iface = contract.evidence["interface"]
    changed = {**contract.evidence, "interface": {**iface, "loss_keys": [*(iface["loss_keys"] or []), "extra_loss"]}}
    edited = _with(reference_report, role, "forward.contract", evidence=changed)
    lines = [g.line() for g in compare(reference_report, edited).regressions]
    new_keys = changed["interface"]["loss_keys"]
    assert lines == [f"{role} forward.contract: interface changed: loss_keys: {iface['loss_keys']!r} -> {new_keys!r}"]


# --- headaudit check ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's project: copies of both heads and an audit.json recorded from them."""
    root = tmp_path_factory.mktemp("project")
    shutil.copy(OPTIMAL, root / "head_optimal.py")
    shutil.copy(BASE, root / "head.py")
    args = ("--baseline", "head.py", "--candidate", "head_optimal.py", "--only", CHECKS, "--no-bench")
    out = headaudit("report", *args, "--format", "json", cwd=root)
    assert out.returncode == 0, out.stderr
    (root / "audit.json").write_text(out.stdout, encoding="utf-8")
    return root


def _copy(project: Path, folder: str, source: str) -> str:
    """``source`` as ``FOLDER/head_optimal.py``: the user's file, edited in place."""
    (project / folder).mkdir(exist_ok=True)
    (project / folder / "head_optimal.py").write_text(source, encoding="utf-8")
    return f"{folder}/head_optimal.py"


def test_check_passes_on_the_recorded_files(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, stderr = in_process(monkeypatch, capsys, project, "check", "--expect", "audit.json")
    assert code == 0, stderr
    assert stdout == ""
    assert "no regressions against audit.json (8 results compared)" in stderr


@pytest.mark.usefixtures("fresh_cache")
@pytest.mark.parametrize("slot", ["baseline", "candidate"])
def test_a_mutant_fails_check_and_reverting_it_passes(
    project: Path, slot: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    expect = project / f"audit-{slot}.json"
    spec = _copy(project, f"in-{slot}", OPTIMAL.read_text(encoding="utf-8"))
    args = ("report", f"--{slot}", spec, "--only", CHECKS, "--no-bench", "--format", "json")
    code, stdout, stderr = in_process(monkeypatch, capsys, project, *args)
    assert code == 0, stderr
    expect.write_text(stdout, encoding="utf-8")
    _copy(project, f"in-{slot}", _mutant("sep-includes-own-class"))
    # the recorded subjects, by default
    code, stdout, stderr = in_process(monkeypatch, capsys, project, "check", "--expect", expect.name)
    assert code == 1, stderr
    lines = stdout.splitlines()
    assert lines[0].startswith(f"regression: {slot} loss.separation-value: verdict: pass -> fail: ")
    assert all(line.startswith(f"regression: {slot} loss.separation-value: ") for line in lines)
    _copy(project, f"in-{slot}", OPTIMAL.read_text(encoding="utf-8"))
    code, stdout, stderr = in_process(monkeypatch, capsys, project, "check", "--expect", expect.name)
    assert code == 0, stdout + stderr


def test_a_new_finding_under_a_known_failure_is_a_regression(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = OPTIMAL.read_text(encoding="utf-8")
    anchor = "        distances = 1 - similarities\n"
    assert source.count(anchor) == 1
    spec = _copy(project, "synced", source.replace(anchor, anchor + "        _ = float(distances.sum().item())\n"))
    code, stdout, stderr = in_process(
        monkeypatch, capsys, project, "check", "--expect", "audit.json", "--candidate", spec
    )
    assert code == 1, stderr
    new = [line for line in stdout.splitlines() if "static.host-syncs" in line]
    assert len(new) == 1, stdout  # the known failure stays; only the added place is new
    assert new[0].startswith("regression: candidate static.host-syncs: new finding: site (head_optimal.py, ")
    assert "OptimalPrototypeLoss.forward, .item(), #1)" in new[0]


def test_an_interface_change_is_reported(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = OPTIMAL.read_text(encoding="utf-8")
    assert source.count("temperature: float = 10.0") == 1
    spec = _copy(project, "iface", source.replace("temperature: float = 10.0", "temperature: float = 12.0"))
    code, stdout, stderr = in_process(
        monkeypatch, capsys, project, "check", "--expect", "audit.json", "--candidate", spec
    )
    assert code == 1, stderr
    assert "regression: candidate forward.contract: interface changed: constructor argument temperature:" in stdout


@pytest.mark.usefixtures("fresh_cache")
def test_a_figure_a_thousand_times_worse_fails_check_and_three_times_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The 1e-6 -> 1e-12 edit of the absent-class weight keeps every fingerprint but makes
    the shrink factor 1000x smaller: one regression line with both figures. An edit that
    moves it 3x is within what the guard lets figures move. Recorded under the ``dev``
    profile (half the simulated batches: the figure is the direct comparison's), which
    ``check`` then takes from the recording."""
    source = OPTIMAL.read_text(encoding="utf-8")
    term = "torch.sqrt(class_count + 1e-6)"
    assert source.count(term) == 1
    (tmp_path / "head_optimal.py").write_text(source, encoding="utf-8")
    monkeypatch.delenv("HYPOTHESIS_PROFILE", raising=False)
    args = ("--candidate", "head_optimal.py", "--only", "weights.absent-classes", "--no-bench", "--profile", "dev")
    code, stdout, stderr = in_process(monkeypatch, capsys, tmp_path, "report", *args, "--format", "json")
    assert code == 0, stderr
    (tmp_path / "audit.json").write_text(stdout, encoding="utf-8")
    recorded = json.loads(stdout)
    candidate = next(r for r in recorded["results"] if r["subject"] == "candidate")
    figures = {tuple(f["keys"]): f["figure"] for f in candidate["findings"] if "figure" in f}
    was = figures[("modes", "weights.mode.setting", "use_class_balanced=False")]

    edited = source.replace(term, "torch.sqrt(class_count + 1e-12)")
    (tmp_path / "head_optimal.py").write_text(edited, encoding="utf-8")
    code, stdout, stderr = in_process(monkeypatch, capsys, tmp_path, "check", "--expect", "audit.json")
    assert code == 1, stdout + stderr
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    head, _, moved = lines[0].partition(f": {was:g} -> ")
    assert head.startswith(
        "regression: candidate weights.absent-classes: worse figure: weights.absent-classes.mode_fail"
    )
    assert "use_class_balanced=False" in head
    now = float(moved.split(",")[0])
    assert 500 < was / now < 2000, lines[0]  # about 1000x: sqrt(1e-6 / 1e-12)
    assert "x lower (lower is worse) [" in moved

    (tmp_path / "head_optimal.py").write_text(
        source.replace(term, "torch.sqrt(class_count + 1.1e-7)"), encoding="utf-8"
    )
    # sqrt(1e-6 / 1.1e-7): 3x smaller
    code, stdout, stderr = in_process(monkeypatch, capsys, tmp_path, "check", "--expect", "audit.json")
    assert code == 0, stdout + stderr


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["--seed", "3"], {}, "seed 3 (recorded 0)"),
        ([], {"HYPOTHESIS_PROFILE": "dev"}, "profile 'dev' (recorded 'ci')"),
        (["--seed", "3", "--profile", "dev"], {}, "seed 3 (recorded 0) and profile 'dev' (recorded 'ci')"),
        (["--seed", "3", "--accept-mismatch", " "], {}, "--accept-mismatch needs the reason"),
    ],
)
def test_a_check_under_another_seed_or_profile_is_one_line_and_exit_2(
    project: Path,
    args: list[str],
    env: dict[str, str],
    needle: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Refused before anything runs (so in this process: the plan is all there is)."""
    monkeypatch.chdir(project)
    for name, value in {"HYPOTHESIS_PROFILE": "ci", **env}.items():
        monkeypatch.setenv(name, value)
    assert main(["check", "--expect", "audit.json", *args]) == 2
    out = capsys.readouterr()
    assert out.err.count("\n") == 1, out.err
    assert needle in out.err
    assert out.out == ""


def test_accept_mismatch_compares_and_says_why(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A seed-free check compared under another seed, accepted with a reason."""
    why = "nightly: seed sweep"
    args = ("--only", "static.host-syncs", "--seed", "3", "--accept-mismatch", why)
    code, stdout, stderr = in_process(monkeypatch, capsys, project, "check", "--expect", "audit.json", *args)
    assert code == 0, stdout + stderr
    assert f"headaudit: note: compared across runs: seed 3 (recorded 0), accepted: {why}" in stderr


def test_check_compares_the_exact_op_count_without_bench(project: Path, tmp_path: Path) -> None:
    """perf.op-count is an exact count, compared on every check; timings need --bench."""
    data = json.loads((project / "audit.json").read_text(encoding="utf-8"))
    for check_id in ("perf.step-time", "perf.op-count"):
        data["checks"].append(CheckInfo(check_id, 4, "low", group="performance").to_dict())
    expect = tmp_path / "audit.json"
    expect.write_text(json.dumps(data), encoding="utf-8")
    plain = {c.id for c in plan_check(["--expect", str(expect)]).checks}
    assert "perf.op-count" in plain
    assert "perf.step-time" not in plain
    assert {"perf.op-count", "perf.step-time"} <= {
        c.id for c in plan_check(["--expect", str(expect), "--bench"]).checks
    }


@pytest.mark.usefixtures("fresh_cache")
def test_update_records_and_the_next_check_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(OPTIMAL, tmp_path / "head_optimal.py")
    config = '[tool.headaudit]\ncandidate = "head_optimal.py"\nexpect = "audit.json"\nseed = 3\n'
    (tmp_path / "pyproject.toml").write_text(config, encoding="utf-8")
    sub = tmp_path / "src"
    sub.mkdir()  # the config is found from a subfolder, its paths relative to its own folder
    update = ("check", "--update", "--only", "gate.convex,forward.contract")
    code, _, stderr = in_process(monkeypatch, capsys, sub, *update)
    assert code == 1, stderr  # created: as pytest-regressions' --force-regen, it fails once
    assert "(1 changes, exit 1 as --force-regen does)" in stderr
    data = json.loads((tmp_path / "audit.json").read_text(encoding="utf-8"))
    assert data["environment"]["seed"] == 3
    assert {s["role"]: Path(s["path"]).name for s in data["subjects"]}["candidate"] == "head_optimal.py"
    assert {r["check"] for r in data["results"]} == {"gate.convex", "forward.contract"}
    code, _, stderr = in_process(monkeypatch, capsys, sub, "check")
    assert code == 0, stderr
    code, _, stderr = in_process(monkeypatch, capsys, sub, *update)
    assert code == 0, stderr
    assert "(nothing changed)" in stderr


@pytest.mark.usefixtures("fresh_cache")
def test_update_over_a_regression_records_it_and_says_so(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    expect = project / "audit-update.json"
    expect.write_text((project / "audit.json").read_text(encoding="utf-8"), encoding="utf-8")
    spec = _copy(project, "update", _mutant("sep-includes-own-class"))
    args = ("check", "--expect", expect.name, "--candidate", spec)
    code, _, stderr = in_process(monkeypatch, capsys, project, *args, "--update")
    assert code == 1
    assert "headaudit: updated: candidate loss.separation-value: verdict: pass -> fail" in stderr
    assert in_process(monkeypatch, capsys, project, *args)[0] == 0


@pytest.mark.parametrize(
    ("files", "args", "needle"),
    [
        ({}, ["check"], "headaudit check needs --expect FILE"),
        ({}, ["check", "--expect", "nope.json"], "does not exist; record it with"),
        ({"bad.json": "{not json"}, ["check", "--expect", "bad.json"], "is not a JSON report"),
        ({"bad.json": '{"results": []}'}, ["check", "--expect", "bad.json"], "is not a headaudit JSON report"),
        ({"pyproject.toml": "[tool.headaudit]\ncandidat = 'x.py'\n"}, ["report"], "unknown key 'candidat'"),
        ({"pyproject.toml": "[tool.headaudit]\nseed = 'one'\n"}, ["report"], "seed in [tool.headaudit]"),
        ({"pyproject.toml": "[tool.headaudit]\nlang = 'fr'\n"}, ["report"], "use one of en, zh"),
        ({"pyproject.toml": "[tool.headaudit]\njobs = 0\n"}, ["report"], "must be 1 (serial) or more"),
        ({"pyproject.toml": "[tool.headaudit]\njobs = '2'\n"}, ["report"], "jobs in [tool.headaudit]"),
        ({"pyproject.toml": "[tool.headaudit\n"}, ["report"], "is not valid TOML"),
        ({"pyproject.toml": "[tool.headaudit]\ncandidate = 'missing.py'\n"}, ["report"], "missing.py"),
    ],
)
def test_bad_guard_input_is_one_line_and_exit_2(
    tmp_path: Path,
    files: dict[str, str],
    args: list[str],
    needle: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Refused while the arguments and the configuration are read, before any head is
    loaded, so in this process (an exception escaping ``main`` fails the test as a
    traceback would)."""
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    code, stdout, stderr = in_process(monkeypatch, capsys, tmp_path, *args)
    assert code == 2, stdout + stderr
    assert stdout == ""
    assert stderr.count("\n") == 1, stderr
    assert needle in stderr


def test_flags_win_over_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.headaudit]\ncandidate = 'missing.py'\nlang = 'zh'\n", encoding="utf-8"
    )
    args = ("report", "--candidate", str(OPTIMAL), "--only", "gate.convex")
    code, stdout, stderr = in_process(monkeypatch, capsys, tmp_path, *args, "--lang", "en")
    assert code == 0, stderr
    assert "## Subjects" in stdout
    code, stdout, stderr = in_process(monkeypatch, capsys, tmp_path, *args)
    assert code == 0, stderr
    assert "## 被测文件" in stdout
