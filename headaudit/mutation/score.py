"""Measure the mutation score of the audit on ``reference/head_fixed.py``.

Every mutant of :data:`~headaudit.mutation.catalogue.MUTANTS` is applied to the file's
text, written to a temporary folder under the same file name and loaded like a user's
head. The checks run on it in the candidate slot, the mutant's hinted checks first, then
the rest in registry order, until one of them *kills* it: a worse verdict than on the
unmutated file, or a finding whose fingerprint the unmutated file's result lacks, which
is exactly what ``headaudit check`` calls a regression. A mutant no check kills survives.
A mutant whose file no longer loads is killed by the load (the user would get exit 2).

Every rewrite of :data:`~headaudit.mutation.catalogue.EQUIVALENTS` runs every check; any
verdict or finding that differs from the unmutated file's is a false alarm.

The performance group is left out: its timings are not verdicts on behaviour. Every
check starts from the same seed, so the score repeats exactly for a seed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headaudit.errors import SubjectError
from headaudit.guard import regressions_of
from headaudit.messages import render
from headaudit.model import Result
from headaudit.mutation.catalogue import EQUIVALENTS, MUTANTS, Mutant, apply
from headaudit.profiles import Profile
from headaudit.registry import Check
from headaudit.runner import run_check
from headaudit.subjects import Subject, bundled_reference, load_subject

__all__ = ["Kill", "MutationScore", "Rewrite", "measure_score"]

Json = Any
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Kill:
    """What happened to one mutant: the check that killed it (None: it survived)."""

    id: str
    part: str
    description: str
    killed_by: str | None
    before: str = ""  # the killing check's verdict on the unmutated file
    after: str = ""  # ... and on the mutant ("load": the file did not load)
    detail: str = ""  # the killing result's sentence, or the load error
    tried: int = 0  # checks run on the mutant

    def to_dict(self) -> dict[str, Json]:
        return dict(vars(self))


@dataclass(frozen=True)
class Rewrite:
    """A semantics-preserving rewrite and the checks whose verdict or findings it changed."""

    id: str
    description: str
    changed: tuple[str, ...]

    def to_dict(self) -> dict[str, Json]:
        return {"id": self.id, "description": self.description, "changed": list(self.changed)}


@dataclass(frozen=True)
class MutationScore:
    """The score measured in one run, for the report (``extra["mutation"]``) and ``headaudit mutate``."""

    file: str
    sha256: str
    seed: int
    mutants: tuple[Kill, ...]
    equivalents: tuple[Rewrite, ...]

    @property
    def killed(self) -> int:
        return sum(1 for m in self.mutants if m.killed_by is not None)

    @property
    def false_alarms(self) -> int:
        return sum(1 for e in self.equivalents if e.changed)

    def to_dict(self) -> dict[str, Json]:
        return {
            "file": self.file,
            "sha256": self.sha256,
            "seed": self.seed,
            "killed": self.killed,
            "total": len(self.mutants),
            "false_alarms": self.false_alarms,
            "mutants": [m.to_dict() for m in self.mutants],
            "equivalents": [e.to_dict() for e in self.equivalents],
        }


def _worse(before: Result, after: Result) -> bool:
    """What ``headaudit check`` reports as a regression of this result (the same function)."""
    return bool(regressions_of(after, before))


def _same(before: Result, after: Result) -> bool:
    return before.verdict == after.verdict and [f.fingerprint for f in before.findings()] == [
        f.fingerprint for f in after.findings()
    ]


class _Runner:
    """Runs checks on the unmutated file (each once) and on edited copies of it."""

    def __init__(self, path: Path, checks: Sequence[Check[Any]], seed: int, profile: Profile, timeout: float) -> None:
        self.path = path
        self.source = path.read_text(encoding="utf-8")
        self.checks = list(checks)
        self.seed, self.profile, self.timeout = seed, profile, timeout
        self.original = load_subject(str(path), "candidate", timeout=timeout)
        self.shown = self.original.display  # how sentences show the file a mutant stands for
        self._results: dict[str, Result] = {}

    def on_original(self, check: Check[Any]) -> Result:
        if check.id not in self._results:
            self._results[check.id] = self.run(check, self.original)
        return self._results[check.id]

    def run(self, check: Check[Any], subject: Subject) -> Result:
        return run_check(check, subject, "candidate", seed=self.seed, profile=self.profile, timeout=self.timeout)

    def load(self, source: str, folder: str) -> Subject:
        target = Path(folder) / self.path.name
        target.write_text(source, encoding="utf-8")
        return load_subject(str(target), "candidate", timeout=self.timeout)

    def ordered(self, hint: Sequence[str]) -> list[Check[Any]]:
        first = [c for h in hint for c in self.checks if c.id == h]
        return first + [c for c in self.checks if c not in first]


def _kill(runner: _Runner, mutant: Mutant) -> Kill:
    base = (mutant.id, mutant.part, mutant.description)
    with tempfile.TemporaryDirectory(prefix="headaudit-mutant-") as folder:
        # the mutant's temporary path, as sentences show it, reads as the file it mutates
        shown, here = runner.shown, str(Path(folder) / runner.path.name)
        try:
            subject = runner.load(apply(mutant, runner.source), folder)
        except SubjectError as exc:
            return Kill(*base, killed_by="load", after="load", detail=str(exc).replace(here, shown))
        for tried, check in enumerate(runner.ordered(mutant.hint), start=1):
            before, after = runner.on_original(check), runner.run(check, subject)
            if _worse(before, after):
                detail = render(after.message, "en").replace(here, shown).replace(subject.display, shown)
                return Kill(*base, killed_by=check.id, before=before.verdict, after=after.verdict,
                            detail=detail, tried=tried)  # fmt: skip
        return Kill(*base, killed_by=None, tried=len(runner.checks))


def _rewrite(runner: _Runner, mutant: Mutant) -> Rewrite:
    with tempfile.TemporaryDirectory(prefix="headaudit-rewrite-") as folder:
        subject = runner.load(apply(mutant, runner.source), folder)
        changed = [c.id for c in runner.checks if not _same(runner.on_original(c), runner.run(c, subject))]
    return Rewrite(mutant.id, mutant.description, tuple(changed))


def measure_score(
    checks: Sequence[Check[Any]],
    *,
    seed: int,
    profile: Profile,
    timeout: float,
    mutants: Sequence[Mutant] = MUTANTS,
    equivalents: Sequence[Mutant] = EQUIVALENTS,
    path: Path | None = None,
    progress: Progress | None = None,
) -> MutationScore:
    """The mutation score of ``checks`` (their performance group left out) on ``path``
    (default the bundled ``head_fixed.py``), measured now."""
    target = path or bundled_reference("head_fixed.py")
    runner = _Runner(target, [c for c in checks if c.group != "performance"], seed, profile, timeout)
    kills = []
    for mutant in mutants:
        if progress:
            progress(f"mutant {mutant.id}")
        kills.append(_kill(runner, mutant))
    rewrites = []
    for rewrite in equivalents:
        if progress:
            progress(f"rewrite {rewrite.id}")
        rewrites.append(_rewrite(runner, rewrite))
    info = runner.original.info("candidate")
    return MutationScore(info.path, info.sha256, seed, tuple(kills), tuple(rewrites))
