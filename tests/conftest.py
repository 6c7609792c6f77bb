"""Shared fixtures: the bundled references, hand-made subjects, and audits run once per session.

Every check is tested with its subjects in both slots: ``run_check`` takes the role, and
the role-swap tests compare a whole audit with the two references exchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from headaudit.checks import REGISTRY, by_id
from headaudit.model import Report, Result
from headaudit.names import NameMap
from headaudit.profiles import active_profile, register_profiles
from headaudit.runner import run_audit, run_check
from headaudit.subjects import Subject, default_specs, load_subject

# No test reads or writes a result cache unless it asks for one (tests/test_cache.py does,
# in a folder of its own): a cached result from another test or an earlier run would hide
# what the code under test measures now. Subprocesses inherit it.
os.environ["HEADAUDIT_NO_CACHE"] = "1"

register_profiles()
from hypothesis import settings  # noqa: E402  (profiles must be registered first)

settings.load_profile(active_profile().name)

SUBJECTS_DIR = Path(__file__).parent / "subjects"
ROLES = ("baseline", "candidate")

RunCheck = Callable[..., Result]
LoadSubject = Callable[..., Subject]


@pytest.fixture(scope="session")
def references() -> dict[str, Subject]:
    specs = default_specs()
    return {role: load_subject(spec, role) for role, spec in specs.items()}


@pytest.fixture(scope="session")
def reference_report(references: dict[str, Subject]) -> Report:
    """The full audit of the two references, run once (the same code path as the CLI)."""
    return run_audit(references, REGISTRY, seed=0, profile=active_profile())


@pytest.fixture(scope="session")
def swapped_report(references: dict[str, Subject]) -> Report:
    """The same audit with the references in exchanged slots."""
    swapped = {"baseline": references["candidate"], "candidate": references["baseline"]}
    return run_audit(swapped, REGISTRY, seed=0, profile=active_profile())


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


@pytest.fixture(scope="session")
def check() -> RunCheck:
    """Run one registered check on one subject in one slot, through the runner."""

    def run(check_id: str, subject: Subject, role: str = "candidate", seed: int = 0, timeout: float = 60) -> Result:
        found = by_id(check_id)
        assert found is not None, check_id
        return run_check(found, subject, role, seed=seed, profile=active_profile(), timeout=timeout)

    return run
