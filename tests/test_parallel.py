"""``--jobs``: the pairs in worker processes, the same results, a dying subject costs its own pair.

The byte-for-byte comparison of ``headaudit report --jobs 1`` and ``--jobs 2`` is in
``tests/test_cli.py`` (it also proves that two runs with one seed are identical). Here:
the pool itself (order, a worker that exits, one that hangs), a head whose helper ends
its worker with ``os._exit`` and one that hangs with the time limit's signal blocked (only
their ``trainer.detect`` pair is ``error``, in both slots, every other result is the
serial one), results crossing the process boundary unchanged, and the mutation score.
"""

from __future__ import annotations

import os
import pickle
import time
from typing import Any

import pytest

from headaudit.checks import REGISTRY, by_id
from headaudit.model import Result
from headaudit.mutation.catalogue import EQUIVALENTS, MUTANTS, Mutant
from headaudit.mutation.score import measure_score
from headaudit.parallel import Ended, WorkerFailed, can_fork, spread
from headaudit.profiles import active_profile
from headaudit.registry import Check
from headaudit.runner import run_audit, run_check
from headaudit.subjects import Subject, load_subject
from tests.conftest import ROLES, SUBJECTS_DIR, LoadSubject

pytestmark = pytest.mark.skipif(not can_fork(), reason="worker processes need the fork start method")

#: The check that calls the file's own ``has_multi_prototype_head``, and one that does not.
DETECT, OTHER = "trainer.detect", "gate.convex"


def _checks(*ids: str) -> list[Check[Any]]:
    found = [by_id(i) for i in ids]
    assert all(found)
    return [c for c in found if c is not None]


def _ended(index: int, how: Ended) -> str:
    return f"{index}: {how.kind} {how.describe()}"


def _exit(code: int) -> str:
    os._exit(code)


def _hang() -> str:
    time.sleep(3600)
    return "woke"


def test_spread_keeps_the_order_of_the_tasks_not_of_their_ending() -> None:
    tasks = [lambda k=k: (time.sleep(0.2 if k == 0 else 0), k * k)[1] for k in range(5)]
    assert spread(tasks, jobs=2, deadline=None, ended=lambda k, how: -1) == [0, 1, 4, 9, 16]


def test_a_worker_that_exits_or_hangs_costs_only_its_own_task() -> None:
    tasks = [lambda: "a", lambda: _exit(7), lambda: "c", _hang, lambda: "e"]
    started = time.monotonic()
    assert spread(tasks, jobs=2, deadline=2.0, ended=_ended) == [
        "a",
        "1: exited exit code 7",
        "c",
        "3: timeout exit code None",
        "e",
    ]
    assert time.monotonic() - started < 30


def _raise() -> str:
    raise ValueError("a bug of the caller")


def test_a_task_that_raises_or_returns_what_cannot_pickle_is_the_callers_bug_not_an_ending() -> None:
    with pytest.raises(WorkerFailed, match="a bug of the caller"):
        spread([lambda: "a", _raise], jobs=2, deadline=None, ended=_ended)
    with pytest.raises(WorkerFailed, match="pickle"):
        spread([lambda: lambda: 0], jobs=2, deadline=None, ended=lambda k, how: None)


def test_a_worker_killed_by_a_signal_names_the_signal() -> None:
    assert Ended("exited", -11).describe() == "signal 11 (SIGSEGV)"
    assert Ended("exited", 3).describe() == "exit code 3"


def _only_detect_is_error(
    subject: Subject, reference: Subject, role: str, message: str, checks: list[Check[Any]], timeout: float
) -> None:
    other = "baseline" if role == "candidate" else "candidate"
    subjects = {role: subject, other: reference}
    report = run_audit(subjects, checks, seed=0, profile=active_profile(), timeout=timeout, jobs=2)
    broken = report.result(DETECT, role)
    assert broken is not None
    assert broken.verdict == "error"
    assert broken.message.id == message
    for result in report.results:  # every other pair is exactly what it is in a serial run
        if (result.check, result.subject) == (DETECT, role):
            continue
        check = by_id(result.check)
        assert check is not None
        alone = run_check(check, subjects[result.subject], result.subject, seed=0, profile=active_profile(),
                          timeout=timeout)  # fmt: skip
        assert result.to_dict() == alone.to_dict(), (result.check, result.subject)
        assert result.verdict != "error", (result.check, result.subject)


@pytest.mark.parametrize("role", ["baseline", "candidate"])
def test_a_subject_that_exits_its_worker_is_error_in_that_pair_only(subject: LoadSubject, role: str) -> None:
    exiting, plain = subject("worker_exiting_helper"), subject("detection_helper_kept")
    _only_detect_is_error(exiting, plain, role, "common.worker_ended", _checks(DETECT, OTHER), timeout=60)
    report = run_audit({role: exiting}, _checks(DETECT), seed=0, profile=active_profile(), jobs=2)
    assert "exit code 7" in report.results[0].summary("en")
    assert "exit code 7" in report.results[0].summary("zh")


@pytest.mark.parametrize("role", ["baseline", "candidate"])
def test_a_subject_that_blocks_its_time_limit_is_killed_by_the_watchdog(
    subject: LoadSubject, role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other pairs run ``static.data-writes`` (it reads the source: well within 4 s on a
    loaded machine) beside the plain head's ``trainer.detect``: the test waits out the time
    limit and the watchdog's grace, so both are short here (the grace, 5.4 s in a real run
    at this limit, is one second: what is tested is that the watchdog kills, not how long
    it waits). The hanging pair still blocks the limit's signal and must be killed by the
    watchdog."""
    monkeypatch.setattr("headaudit.parallel.grace", lambda timeout: 1.0)
    hanging, plain = subject("worker_hanging_helper"), subject("detection_helper_kept")
    _only_detect_is_error(hanging, plain, role, "common.timeout", _checks(DETECT, "static.data-writes"), timeout=4)


@pytest.mark.parametrize("role", ROLES)
def test_a_head_whose_working_step_hangs_gets_the_serial_results(role: str) -> None:
    """Its once-per-subject step runs out of time before the workers fork, so its pairs run
    in the parent in order: the first that asks is the timeout, the next ``not working``."""
    reports = []
    for jobs in (1, 2):  # a fresh load each time: the step's outcome is kept per subject
        subjects = {role: load_subject(str(SUBJECTS_DIR / "hanging_head.py"), role)}  # alone: 1 s is its budget
        reports.append(run_audit(subjects, _checks(OTHER, "ema.standard"), seed=0, profile=active_profile(),
                                 timeout=1, jobs=jobs).to_dict())  # fmt: skip
    assert reports[0] == reports[1]
    assert [r["message"]["id"] for r in reports[1]["results"]] == ["common.timeout", "common.not_working"]


@pytest.mark.parametrize("role", ROLES)
def test_what_a_head_prints_is_kept_by_the_same_pairs_in_workers(references: dict[str, Subject], role: str) -> None:
    """The once-per-subject steps print too: they run before any pair whatever ``jobs``,
    so no pair's output depends on whether it was the first of its subject in its process."""
    other = "baseline" if role == "candidate" else "candidate"
    reports = []
    for jobs in (1, 2):  # a fresh load each time: the steps' outcome is kept per subject
        subjects = {role: load_subject(str(SUBJECTS_DIR / "printing_head.py"), role), other: references[other]}
        reports.append(run_audit(subjects, _checks(OTHER, "ema.standard", "shapes.batch-independence"), seed=0,
                                 profile=active_profile(), jobs=jobs).to_dict())  # fmt: skip
    assert reports[0] == reports[1]
    convex = next(r for r in reports[1]["results"] if (r["check"], r["subject"]) == (OTHER, role))
    assert "printing_head: forward" in convex["output"]


def test_results_cross_the_process_boundary_unchanged(references: dict[str, Subject]) -> None:
    checks = _checks(DETECT, OTHER, "static.data-writes")
    serial = run_audit(references, checks, seed=0, profile=active_profile(), jobs=1)
    spread_out = run_audit(references, checks, seed=0, profile=active_profile(), jobs=2)
    assert serial.to_dict() == spread_out.to_dict()
    for result in spread_out.results:
        again: Result = pickle.loads(pickle.dumps(result))
        assert again == result
        assert again.to_dict() == result.to_dict()


def test_the_mutation_score_is_the_same_with_two_workers() -> None:
    mutants: list[Mutant] = [m for m in MUTANTS if m.id == "gate-sigmoid"]
    mutants.append(Mutant("raising", "none", "forward raises", ((
        "        self._check_inputs(pool_img_features, img_features, labels)\n",
        '        raise RuntimeError("mutant raised")\n'),)))  # fmt: skip
    rewrites = [e for e in EQUIVALENTS if e.id == "optimal-reorder-ema-statements"]  # another file's runner
    checks = [c for c in REGISTRY if c.id in ("gate.sum-to-one", "loss.terms-sum", "static.data-writes")]
    given = {"mutants": mutants, "equivalents": rewrites}
    scores = [measure_score(checks, seed=0, profile=active_profile(), timeout=60, **given, jobs=j) for j in (1, 2)]
    assert scores[0].to_dict() == scores[1].to_dict()
    assert [m.outcome for m in scores[1].mutants] == ["detected", "crashed"]
    assert [e.changed for e in scores[1].equivalents] == [()]


def test_without_fork_the_cli_runs_serially_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from headaudit import cli, parallel

    monkeypatch.setattr(parallel, "can_fork", lambda: False)
    handed: list[int] = []
    monkeypatch.setattr(parallel, "spread", lambda tasks, **_: handed.append(len(tasks)) or [])
    assert cli.main(["report", "--only", "gate.sum-to-one", "--no-bench", "--jobs", "2"]) == 0
    assert not any(handed)  # serial: no pair reached the pool
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no `fork` start method here; the checks run serially (--jobs 1)" in err
