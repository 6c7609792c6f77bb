"""Shared fixtures: the bundled references, hand-made subjects, and audits run once per session.

Every check is tested with its subjects in both slots: ``run_check`` takes the role, and
the role-swap tests compare a whole audit with the two references exchanged.

A full audit takes most of a minute, so each is run once per test process and shared:
a test needing a few checks' results on the references cuts them from ``reference_report``
(:func:`part_of`) instead of auditing again. Under xdist each worker would run a session
or module fixture again, so the tests that use one of the costly ones (``SHARED``) are
put in its ``xdist_group`` (``--dist loadgroup`` in pyproject.toml): they run on one
worker, which computes the fixture once.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from headaudit.checks import REGISTRY, by_id
from headaudit.claims import judge_claims
from headaudit.model import Report, Result
from headaudit.names import NameMap
from headaudit.profiles import active_profile, register_profiles
from headaudit.render.json import parse_json
from headaudit.runner import run_audit, run_check
from headaudit.subjects import Subject, default_specs, load_subject

# No test reads or writes a result cache unless it asks for one (tests/test_cache.py does,
# in a folder of its own): a cached result from another test or an earlier run would hide
# what the code under test measures now. Subprocesses inherit it.
os.environ["HEADAUDIT_NO_CACHE"] = "1"
# xdist already keeps every core busy: a CLI run under test forks no workers of its own
# unless it passes --jobs (the parallel tests do).
os.environ["HEADAUDIT_JOBS"] = "1"

register_profiles()
from hypothesis import settings  # noqa: E402  (profiles must be registered first)

settings.load_profile(active_profile().name)

SUBJECTS_DIR = Path(__file__).parent / "subjects"
ROLES = ("baseline", "candidate")

RunCheck = Callable[..., Result]
LoadSubject = Callable[..., Subject]

#: Costly session or module fixtures (``name``, or ``file::name`` for a module's own), and
#: the xdist group of the tests that use them: the full audits of the references (both
#: slots, exchanged, and head_optimal.py with bfloat16 extras), the hinted mutation score,
#: the recordings the plugin and ``headaudit check`` tests start from, the tiny bench runs
#: (the compiled one imports dynamo: about 10 s).
SHARED: dict[str, str] = {
    "reference_report": "shared-audits",
    "swapped_report": "shared-audits",
    "extras_report": "shared-audits",
    "hinted_score": "hinted-score",
    "recorded_audit": "plugin-recording",
    "test_guard.py::project": "guard-recording",
    "test_perf.py::shared_report": "perf-shared-run",
    "test_perf.py::compiled_run": "perf-compiled-run",
    "test_bench.py::tiny_result": "bench-tiny-run",
}


def _shared_groups(item: pytest.Item) -> set[str]:
    names = getattr(item, "fixturenames", ())
    keys = [*names, *(f"{item.path.name}::{name}" for name in names)]
    return {SHARED[key] for key in keys if key in SHARED}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> Iterator[None]:
    """Send every test that uses a costly shared fixture to one worker, so it is computed once.

    The marker goes on before the other hooks run: xdist's (under ``--dist loadgroup``)
    then names the test ``NODEID@GROUP`` by assigning ``item._nodeid``, which pytest 9 no
    longer reads (a node's id is ``str(item._id)``); the name is carried over afterwards,
    else every group would be spread over the workers like any other test.
    """
    for item in items:
        groups = _shared_groups(item)
        assert len(groups) <= 1, f"{item.nodeid} would need to run on two workers: {sorted(groups)}"
        if groups:
            item.add_marker(pytest.mark.xdist_group(groups.pop()))
    yield
    try:
        from _pytest.nodeid import coerce_node_id  # pytest >= 9
    except ImportError:
        return
    for item in items:
        named = item.__dict__.get("_nodeid")
        if isinstance(named, str) and named != item.nodeid:
            item._id = coerce_node_id(named)  # type: ignore[attr-defined]


def part_of(report: Report, check_ids: Sequence[str]) -> Report:
    """The report ``run_audit`` gives for ``check_ids`` alone (in that order), cut from ``report``.

    Each (check, subject) pair starts from the run's seed whatever ran before it
    (``test_only_reproduces_the_full_run``), so its result is the one a smaller audit
    measures; the claims are judged again on the results kept, as ``run_audit`` does.
    """
    results = tuple(r for check_id in check_ids for r in report.results if r.check == check_id)
    checks = tuple(c for check_id in check_ids for c in report.checks if c.id == check_id)
    assert len(checks) == len(check_ids), f"not in the report: {sorted(set(check_ids) - {c.id for c in checks})}"
    return replace(report, checks=checks, results=results, claims=judge_claims(results))


@pytest.fixture(scope="session")
def references() -> dict[str, Subject]:
    specs = default_specs()
    return {role: load_subject(spec, role) for role, spec in specs.items()}


@contextlib.contextmanager
def short_step_timing() -> Iterator[None]:
    """``perf.step-time`` times two batch sizes (1 and 8) with three repeats instead of the
    quick grid, for the full audits shared by the suite.

    What those tests read of it is its verdict (every step timed and compared) and the
    shape of its evidence, which a shorter grid gives as well; the quick grid itself is
    what ``headaudit bench`` runs, timed by tests/test_perf.py. Every other check, the
    operator counts included, keeps its configuration.
    """
    from headaudit.bench.grid import BenchConfig, GridPoint

    quick = BenchConfig.quick()
    points = tuple(GridPoint.of(batch, 7, 256) for batch in (1, 8))
    short = replace(quick, points=points, repeats=3, warmup=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BenchConfig, "quick", classmethod(lambda cls: short))
        yield


@pytest.fixture(scope="session")
def reference_report(references: dict[str, Subject]) -> Report:
    """The full audit of the two references, run once (the same code path as the CLI)."""
    with short_step_timing():
        return run_audit(references, REGISTRY, seed=0, profile=active_profile())


@pytest.fixture(scope="session")
def swapped_report(references: dict[str, Subject]) -> Report:
    """The same audit with the references in exchanged slots, measured every other way the
    suite can afford once: every check that is not timed by the command line in a fresh
    interpreter over two worker processes (``report --no-bench --jobs 2 --format json``,
    its own hash seed), the timed performance group in this process with the shortened
    grid. ``reference_report`` is serial, in this process: each test that compares the two
    proves that a verdict and its evidence depend neither on the slot nor on the process
    or interpreter that measured them, only on the seed.
    """
    swapped = {"baseline": references["candidate"], "candidate": references["baseline"]}
    command = [sys.executable, "-m", "headaudit", "report", "--no-bench", "--jobs", "2", "--seed", "0"]
    command += ["--baseline", swapped["baseline"].spec, "--candidate", swapped["candidate"].spec, "--format", "json"]
    out = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    assert (out.returncode, out.stderr) == (0, ""), out.stderr
    spread = parse_json(out.stdout)
    with short_step_timing():
        timed = run_audit(swapped, [c for c in REGISTRY if c.group == "performance"], seed=0, profile=active_profile())
    found = {(r.check, r.subject): r for r in (*spread.results, *timed.results)}
    results = tuple(found[(c.id, role)] for c in REGISTRY for role in ROLES if (c.id, role) in found)
    infos = {c.id: c for c in (*spread.checks, *timed.checks)}
    checks = tuple(infos[c.id] for c in REGISTRY)
    return replace(timed, checks=checks, results=results, claims=judge_claims(results))


_LOADED: dict[tuple[str, tuple[tuple[str, str], ...]], Subject] = {}


@pytest.fixture(scope="session")
def subject() -> LoadSubject:
    """Load ``tests/subjects/<name>.py`` (or ``<name>:<Class>``), optionally with name maps."""

    def load(name: str, maps: tuple[tuple[str, str], ...] = ()) -> Subject:
        key = (name, maps)
        if key not in _LOADED:
            file, _, cls = name.partition(":")
            spec = str(SUBJECTS_DIR / f"{file}.py") + (f":{cls}" if cls else "")
            _LOADED[key] = load_subject(spec, names=NameMap(maps), timeout=30)
        return _LOADED[key]

    return load


@pytest.fixture
def bytecode_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python writes bytecode beside each source it imports, whatever the environment says
    (base images set ``PYTHONDONTWRITEBYTECODE``; a ``PYTHONPYCACHEPREFIX`` would move it away):
    a test that asserts no ``__pycache__`` appears next to a user's files then proves that
    the loader suppresses it, instead of passing because nothing is ever written."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    monkeypatch.setattr(sys, "pycache_prefix", None)


def bytecode_env() -> dict[str, str]:
    """This environment for a subprocess that writes bytecode beside its sources (see
    :func:`bytecode_written`)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A result cache of this test's own (empty at its start), in place of the suite-wide
    ``HEADAUDIT_NO_CACHE``: for a test that runs ``report`` and ``check`` several times on
    files it edits, as a user does. The runs after the first are served what did not change
    (the cache's own tests prove that a served result is the one a run measures), so the
    test measures only the edited file again. Not for a test that patches headaudit in
    process: the cache's key sees files, not patches."""
    folder = tmp_path / "headaudit-cache"
    monkeypatch.setenv("HEADAUDIT_CACHE_DIR", str(folder))
    monkeypatch.delenv("HEADAUDIT_NO_CACHE", raising=False)
    return folder


@pytest.fixture(scope="session")
def check() -> RunCheck:
    """Run one registered check on one subject in one slot, through the runner."""

    def run(check_id: str, subject: Subject, role: str = "candidate", seed: int = 0, timeout: float = 60) -> Result:
        found = by_id(check_id)
        assert found is not None, check_id
        return run_check(found, subject, role, seed=seed, profile=active_profile(), timeout=timeout)

    return run
