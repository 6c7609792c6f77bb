"""Measure the mutation score of the audit: detections only.

Every mutant of :data:`~headaudit.mutation.catalogue.MUTANTS` is applied to the text of
its bundled file, written to a temporary folder under the same file name (with the
file's sibling modules) and loaded like a user's head, or, for a mutant of the training
wrapper, used as the wrapper around the unmutated head. The checks run on it in the
candidate slot, the mutant's hinted checks first, then the rest in registry order. Each
mutant ends in one of three outcomes:

- **detected**: the first check with a regression by :func:`headaudit.guard.regressions_of`
  (what ``headaudit check`` reports) whose result on the mutant is not ``error``: a
  worse verdict, a new finding, a changed interface, measured by a check that ran;
- **crashed**: no check detected it, but some moved to ``error`` (the mutated head raised,
  or a check could not run on it), or the file no longer loads. The user would see that
  something broke, not what: a crash is listed with the exception, never counted as a
  detection;
- **survived**: nothing changed.

The score is detections / mutants. Every rewrite of
:data:`~headaudit.mutation.catalogue.EQUIVALENTS` runs every check on its file; a
changed verdict, a finding set that differs from the unmutated file's, or any
regression is a false alarm.

The performance group is left out: its timings are not verdicts on behaviour. Every
check starts from the same seed, so the score repeats exactly for a seed.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from headaudit.errors import SubjectError
from headaudit.guard import regressions_of
from headaudit.hosts import HostSet, load_hosts
from headaudit.messages import LANGS, Msg, render
from headaudit.model import Result
from headaudit.mutation.catalogue import EQUIVALENTS, MUTANTS, SUBJECT_FILE, WRAPPER_FILE, Mutant, apply
from headaudit.parallel import Ended, can_fork, grace, spread
from headaudit.profiles import Profile
from headaudit.registry import Check
from headaudit.runner import Pair, ended_result, run_check
from headaudit.subjects import Subject, bundled_reference, display_path, load_subject

__all__ = ["Crash", "Kill", "MutationScore", "Outcome", "Rewrite", "measure_score"]

Json = Any
Progress = Callable[[str], None]
Outcome = Literal["detected", "crashed", "survived"]

#: The pseudo-check of a mutated file that no longer loads.
LOAD = "load"
#: The pseudo-check of a mutant whose worker process ended or ran past its budget (``--jobs``).
WORKER = "worker"


@dataclass(frozen=True)
class Crash:
    """A check that moved to ``error`` on a mutant (``check`` "load": the file did not load)."""

    check: str
    detail: str  # the error result's sentence (English): the exception and where it was raised
    texts: Mapping[str, str] = field(default_factory=dict)  # that sentence per language, where it has one

    def to_dict(self) -> dict[str, Json]:
        return {"check": self.check, "detail": self.detail, "texts": dict(self.texts)}


@dataclass(frozen=True)
class Kill:
    """What happened to one mutant: detected (by ``detected_by``), crashed or survived."""

    id: str
    part: str
    description: str
    outcome: Outcome
    detected_by: str | None = None
    before: str = ""  # the detecting check's verdict on the unmutated file
    after: str = ""  # ... and on the mutant
    detail: str = ""  # the detecting result's sentence
    tried: int = 0  # checks run on the mutant
    crashes: tuple[Crash, ...] = ()  # checks that moved to error before a detection (or none came)
    file: str = SUBJECT_FILE

    def to_dict(self) -> dict[str, Json]:
        return {**vars(self), "crashes": [c.to_dict() for c in self.crashes]}


@dataclass(frozen=True)
class Rewrite:
    """A semantics-preserving rewrite and the checks whose verdict or findings it changed."""

    id: str
    description: str
    changed: tuple[str, ...]
    file: str = SUBJECT_FILE

    def to_dict(self) -> dict[str, Json]:
        return {"id": self.id, "description": self.description, "changed": list(self.changed), "file": self.file}


@dataclass(frozen=True)
class MutationScore:
    """The score measured in one run, for the report (``extra["mutation"]``) and ``headaudit mutate``."""

    file: str
    sha256: str
    seed: int
    mutants: tuple[Kill, ...]
    equivalents: tuple[Rewrite, ...]

    def _count(self, outcome: Outcome) -> int:
        return sum(1 for m in self.mutants if m.outcome == outcome)

    @property
    def detected(self) -> int:
        return self._count("detected")

    @property
    def crashed(self) -> int:
        return self._count("crashed")

    @property
    def survived(self) -> int:
        return self._count("survived")

    @property
    def false_alarms(self) -> int:
        return sum(1 for e in self.equivalents if e.changed)

    def to_dict(self) -> dict[str, Json]:
        return {
            "file": self.file,
            "sha256": self.sha256,
            "seed": self.seed,
            "detected": self.detected,
            "crashed": self.crashed,
            "survived": self.survived,
            "total": len(self.mutants),
            "false_alarms": self.false_alarms,
            "mutants": [m.to_dict() for m in self.mutants],
            "equivalents": [e.to_dict() for e in self.equivalents],
        }


def _detects(before: Result, after: Result) -> bool:
    """A regression by ``headaudit check``'s own rule, measured by a check that ran: a
    result that is ``error`` on the mutant says only that something raised, and one that
    is ``n/a`` that the check did not measure (a name or setting it needs is missing)."""
    return after.verdict not in ("error", "n/a") and bool(regressions_of(after, before))


def _crashes(before: Result, after: Result) -> bool:
    return after.verdict == "error" and bool(regressions_of(after, before))


def _same(before: Result, after: Result) -> bool:
    """The rewrite kept the verdict, every finding's fingerprint and caused no regression."""
    fingerprints = {f.fingerprint for f in before.findings()} == {f.fingerprint for f in after.findings()}
    return before.verdict == after.verdict and fingerprints and not regressions_of(after, before)


def _copy_siblings(source: Path, folder: str) -> None:
    """The modules next to ``source`` (a wrapper imports the backbone beside it)."""
    for sibling in source.parent.glob("*.py"):
        if sibling != source and sibling.name != "__init__.py":
            shutil.copy(sibling, Path(folder) / sibling.name)


class _Runner:
    """Runs checks on one unmutated subject file (each once) and on edited copies of it.

    The unmutated file is loaded from a copy in a temporary folder, as every mutant is: a
    bundled reference imports as ``reference.NAME``, a copy as ``NAME``, and sentences
    that quote a qualified name (``reference.head_optimal.HeadOptimal.__init__() got
    multiple values ...``) would otherwise differ by where the file was, not by what it does.
    """

    def __init__(
        self, path: Path, checks: Sequence[Check[Any]], seed: int, profile: Profile, timeout: float, wrapper: bool
    ) -> None:
        self.path = path
        self.source = path.read_text(encoding="utf-8")
        self.checks = list(checks)
        self.seed, self.profile, self.timeout = seed, profile, timeout
        self.shown = display_path(path)  # how sentences show the file a mutant stands for
        self.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        self._folder = tempfile.TemporaryDirectory(prefix="headaudit-original-")
        self.original = self.load(self.source, self._folder.name)
        # for wrapper mutants: the unmutated wrapper, loaded from a copy as the mutants are
        copy = str(Path(self._folder.name) / WRAPPER_FILE)
        self.hosts = load_hosts(wrapper=copy, timeout=timeout) if wrapper else None
        self._results: dict[str, Result] = {}

    def close(self) -> None:
        self._folder.cleanup()

    def on_original(self, check: Check[Any]) -> Result:
        if check.id not in self._results:
            self._results[check.id] = self.run(check, self.original, self.hosts)
        return self._results[check.id]

    def run(self, check: Check[Any], subject: Subject, hosts: HostSet | None = None) -> Result:
        return run_check(
            check, subject, "candidate", seed=self.seed, profile=self.profile, timeout=self.timeout, hosts=hosts
        )

    def load(self, source: str, folder: str) -> Subject:
        _copy_siblings(self.path, folder)
        target = Path(folder) / self.path.name
        target.write_text(source, encoding="utf-8")
        return load_subject(str(target), "candidate", timeout=self.timeout)

    def ordered(self, hint: Sequence[str], hinted_only: bool = False) -> list[Check[Any]]:
        first = [c for h in hint for c in self.checks if c.id == h]
        return first if hinted_only else first + [c for c in self.checks if c not in first]


def _kill(runner: _Runner, mutant: Mutant, hinted_only: bool) -> Kill:
    base = (mutant.id, mutant.part, mutant.description)
    with tempfile.TemporaryDirectory(prefix="headaudit-mutant-") as folder:
        hosts: HostSet | None = None
        subject = runner.original
        if mutant.file == WRAPPER_FILE:  # the unmutated head inside the mutated wrapper
            wrapper = bundled_reference(WRAPPER_FILE)
            here, shown = str(Path(folder) / wrapper.name), display_path(wrapper)
            _copy_siblings(runner.path, folder)
            Path(here).write_text(apply(mutant, wrapper.read_text(encoding="utf-8")), encoding="utf-8")
            try:
                hosts = load_hosts(wrapper=here, timeout=runner.timeout)
            except SubjectError as exc:
                crash = Crash(LOAD, str(exc).replace(here, shown))
                return Kill(*base, outcome="crashed", crashes=(crash,), file=mutant.file)
        else:
            # the mutant's temporary path, as sentences show it, reads as the file it mutates
            shown, here = runner.shown, str(Path(folder) / runner.path.name)
            try:
                subject = runner.load(apply(mutant, runner.source), folder)
            except SubjectError as exc:
                crash = Crash(LOAD, str(exc).replace(here, shown))
                return Kill(*base, outcome="crashed", crashes=(crash,), file=mutant.file)

        def sentence(result: Result, lang: str = "en") -> str:
            return render(result.message, lang).replace(here, shown).replace(subject.display, shown)

        crashes: list[Crash] = []
        checks = runner.ordered(mutant.hint, hinted_only)
        for tried, check in enumerate(checks, start=1):
            before, after = runner.on_original(check), runner.run(check, subject, hosts)
            if _detects(before, after):
                return Kill(*base, outcome="detected", detected_by=check.id, before=before.verdict,
                            after=after.verdict, detail=sentence(after), tried=tried, crashes=tuple(crashes),
                            file=mutant.file)  # fmt: skip
            if _crashes(before, after):
                crashes.append(Crash(check.id, sentence(after), {lang: sentence(after, lang) for lang in LANGS}))
        outcome: Outcome = "crashed" if crashes else "survived"
        return Kill(*base, outcome=outcome, tried=len(checks), crashes=tuple(crashes), file=mutant.file)


def _rewrite(runner: _Runner, mutant: Mutant, hinted_only: bool) -> Rewrite:
    with tempfile.TemporaryDirectory(prefix="headaudit-rewrite-") as folder:
        subject = runner.load(apply(mutant, runner.source), folder)
        checks = runner.ordered(mutant.hint, hinted_only)
        changed = [c.id for c in checks if not _same(runner.on_original(c), runner.run(c, subject))]
    return Rewrite(mutant.id, mutant.description, tuple(changed), mutant.file)


def _spread(
    runner: Callable[[str], _Runner],
    mutants: Sequence[Mutant],
    equivalents: Sequence[Mutant],
    hinted_only: bool,
    jobs: int,
    timeout: float,
    progress: Progress | None,
) -> tuple[list[Kill], list[Rewrite]]:
    """The kills and rewrites of :func:`measure_score` from ``jobs`` worker processes.

    Two rounds, each spread by :func:`headaudit.parallel.spread`: first the hinted checks
    of every mutant and rewrite run on its unmutated file (each once), then the mutants and
    rewrites, one per task, each in one worker exactly as in a serial run (its checks in
    its order, stopping at the first detection). The workers of the second round are
    forked after the first, so they inherit its results instead of each measuring the
    unmutated files again; a check past the hints (a mutant they miss) is measured on the
    unmutated file where it is first needed, as serially. A mutant or rewrite whose worker
    ended or ran past its budget (every check's time limit, and a grace) is a crash (a
    false alarm for a rewrite) naming how: never a detection.
    """
    entries = [*mutants, *equivalents]
    runners = {m.file: runner(m.file) for m in entries}  # loaded here, before any worker forks
    wanted = list(dict.fromkeys((m.file, c.id) for m in entries for c in runners[m.file].ordered(m.hint, True)))
    checks = {c.id: c for each in runners.values() for c in each.checks}

    def original(file: str, check_id: str) -> Result:
        return runners[file].run(checks[check_id], runners[file].original, runners[file].hosts)

    def lost(file: str, check_id: str, how: Ended) -> Result:
        return ended_result(Pair(checks[check_id], "candidate", runners[file].original), how, timeout)

    done = spread(
        [functools.partial(original, file, check_id) for file, check_id in wanted],
        jobs=jobs,
        deadline=timeout + grace(timeout),
        ended=lambda k, how: lost(*wanted[k], how),
        started=(lambda k: progress(f"{wanted[k][1]} on {wanted[k][0]}")) if progress else None,
    )
    for (file, check_id), result in zip(wanted, done, strict=True):
        runners[file]._results[check_id] = result  # the cache on_original fills in a serial run

    def task(entry: Mutant, is_mutant: bool) -> Kill | Rewrite:
        if is_mutant:
            return _kill(runners[entry.file], entry, hinted_only)
        return _rewrite(runners[entry.file], entry, hinted_only)

    def worker_ended(k: int, how: Ended) -> Kill | Rewrite:
        entry = entries[k]
        message = Msg("common.timeout", {"seconds": how_long}) if how.kind == "timeout" else (
            Msg("common.worker_ended", {"how": how.describe()}))  # fmt: skip
        if k >= len(mutants):
            return Rewrite(entry.id, entry.description, (WORKER,), entry.file)
        crash = Crash(WORKER, render(message, "en"), {lang: render(message, lang) for lang in LANGS})
        return Kill(entry.id, entry.part, entry.description, "crashed", crashes=(crash,), file=entry.file)

    how_long = (len(checks) + 1) * (timeout + grace(timeout))  # every check's limit, and one load
    kinds = ["mutant"] * len(mutants) + ["rewrite"] * len(equivalents)
    outcomes = spread(
        [functools.partial(task, entry, k < len(mutants)) for k, entry in enumerate(entries)],
        jobs=jobs,
        deadline=how_long,
        ended=worker_ended,
        started=(lambda k: progress(f"{kinds[k]} {entries[k].id}")) if progress else None,
    )
    kills = [o for o in outcomes[: len(mutants)] if isinstance(o, Kill)]
    rewrites = [o for o in outcomes[len(mutants) :] if isinstance(o, Rewrite)]
    return kills, rewrites


def measure_score(
    checks: Sequence[Check[Any]],
    *,
    seed: int,
    profile: Profile,
    timeout: float,
    mutants: Sequence[Mutant] = MUTANTS,
    equivalents: Sequence[Mutant] = EQUIVALENTS,
    progress: Progress | None = None,
    hinted_only: bool = False,
    jobs: int = 1,
) -> MutationScore:
    """The mutation score of ``checks`` (their performance group left out), measured now:
    the mutants of the bundled ``head_fixed.py`` (and of its wrapper), and the rewrites of
    each bundled file they name.

    ``hinted_only`` runs each mutant and rewrite through its hinted checks (among
    ``checks``) only: what the tests use to keep their cost low. A mutant that survives
    that is only not detected by its hints; the score is ``headaudit mutate``'s full run.
    ``jobs`` worker processes share the work (:func:`_spread`); the score does not depend on it.
    """
    used = [c for c in checks if c.group != "performance"]
    runners: dict[str, _Runner] = {}

    def runner(file: str) -> _Runner:
        if file not in runners:
            wrapper = file == WRAPPER_FILE
            subject = SUBJECT_FILE if wrapper else file
            runners[file] = _Runner(bundled_reference(subject), used, seed, profile, timeout, wrapper)
        return runners[file]

    try:
        if jobs > 1 and can_fork():
            kills, rewrites = _spread(runner, mutants, equivalents, hinted_only, jobs, timeout, progress)
        else:
            kills = []
            for mutant in mutants:
                if progress:
                    progress(f"mutant {mutant.id}")
                kills.append(_kill(runner(mutant.file), mutant, hinted_only))
            rewrites = []
            for rewrite in equivalents:
                if progress:
                    progress(f"rewrite {rewrite.id}")
                rewrites.append(_rewrite(runner(rewrite.file), rewrite, hinted_only))
        subject = runner(SUBJECT_FILE)
    finally:
        for each in runners.values():
            each.close()
    return MutationScore(subject.shown, subject.sha256, seed, tuple(kills), tuple(rewrites))
