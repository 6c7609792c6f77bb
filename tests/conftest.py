"""Shared fixtures: the bundled references, hand-made subjects, and one audit per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from headaudit.checks import REGISTRY, by_id
from headaudit.model import Outcome, Report
from headaudit.profiles import active_profile, register_profiles
from headaudit.runner import run_audit
from headaudit.subjects import Subject, default_specs, load_subject

register_profiles()
from hypothesis import settings  # noqa: E402  (profiles must be registered first)

settings.load_profile(active_profile().name)

SUBJECTS_DIR = Path(__file__).parent / "subjects"


@pytest.fixture(scope="session")
def references() -> dict[str, Subject]:
    specs = default_specs()
    return {role: load_subject(spec, role) for role, spec in specs.items()}


@pytest.fixture(scope="session")
def reference_report(references: dict[str, Subject]) -> Report:
    """The full audit of the two references, run once (the same code path as the CLI)."""
    return run_audit(
        [references["baseline"], references["candidate"]],
        REGISTRY,
        seed=0,
        profile=active_profile(),
        subject_args="",
    )


@pytest.fixture(scope="session")
def hand_made() -> Callable[[str, str], Subject]:
    """Load ``tests/subjects/<name>.py`` (or ``<name>:<Class>``) in a role."""

    def load(name: str, role: str = "candidate") -> Subject:
        file, _, cls = name.partition(":")
        return load_subject(str(SUBJECTS_DIR / f"{file}.py") + (f":{cls}" if cls else ""), role)

    return load


@pytest.fixture(scope="session")
def run_check() -> Callable[[str, Subject], Outcome]:
    """Run one registered check on one subject, through the runner's error handling."""

    def run(check_id: str, subject: Subject, seed: int = 0) -> Outcome:
        check = by_id(check_id)
        assert check is not None, check_id
        report = run_audit([subject], [check], seed=seed, profile=active_profile(), subject_args="")
        (result,) = report.results
        return Outcome(result.verdict, result.summary, result.evidence, result.examples)

    return run
