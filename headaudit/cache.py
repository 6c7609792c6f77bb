"""The result cache: a (check, subject) result is reused while nothing it depends on changed.

A result is a function of what the key names, so reusing it is measuring it again:

- the check's id and the code that implements it: headaudit's version and the sha256 of
  every file of the installed package (sources, messages, data) and of the bundled
  references (:func:`source_hash`);
- the environment that computes it: the Python, torch, Hypothesis and NumPy versions, the
  machine's architecture and whether CUDA is available;
- the run's settings: the seed, the Hypothesis profile and its example factor, the name
  maps and the time budget;
- the subject: how it is shown (its path relative to the working directory), its head
  class, and the content of every file of the user's that loading it ran (the file, the
  siblings and package modules it imported: :attr:`headaudit.subjects.Subject.files`);
- the host files and the training wrapper with their own loaded files (in every key:
  simple, and never stale).

The role is not part of the key: checks are role-blind, so an entry is stored with its
role stripped and restored in the slot that asks; swapping baseline and candidate reuses
every result. Two kinds of result are never stored: a timed check's (``Check.timing``:
``perf.step-time`` always runs, a timing is not a pure function of its inputs) and an
``error`` (the measurement did not happen; the time budget running out, memory or a
broken environment must not stick, and rerunning an error costs little).

Where: ``.headaudit_cache/`` next to the nearest ``pyproject.toml`` walking up from the
working directory, else in it; ``HEADAUDIT_CACHE_DIR`` names another folder. The first
write creates it with a ``.gitignore`` of ``*`` and a ``CACHEDIR.TAG``, as pytest and
ruff do. Entries are JSON files written atomically (a temporary file, then
``os.replace``); one that cannot be read or parsed is a miss, never a crash. The mutation
score (:mod:`headaudit.mutation.score`) is cached the same way under ``mutation/``, and
the tasks of a training session (runs and cluster weights, :mod:`headaudit.train.stored`)
under ``training/``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headaudit import __version__
from headaudit.model import Json, Result

if TYPE_CHECKING:
    from headaudit.hosts import HostSet
    from headaudit.profiles import Profile
    from headaudit.registry import Check
    from headaudit.subjects import Subject

__all__ = [
    "CACHE_DIR_ENV",
    "FOLDER",
    "NO_CACHE_ENV",
    "ResultCache",
    "cache_root",
    "clear",
    "entries",
    "mutation_key",
    "result_key",
    "source_hash",
    "train_key",
    "usable",
]

#: The folder's name next to ``pyproject.toml``.
FOLDER = ".headaudit_cache"
#: Names another cache folder (tests, CI).
CACHE_DIR_ENV = "HEADAUDIT_CACHE_DIR"
#: ``1`` turns the cache off as ``--no-cache`` does (the test suite sets it).
NO_CACHE_ENV = "HEADAUDIT_NO_CACHE"

_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by headaudit.\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)


def cache_root(cwd: Path | None = None) -> Path:
    """The cache folder: ``$HEADAUDIT_CACHE_DIR``, else ``.headaudit_cache`` beside the
    nearest ``pyproject.toml`` up from ``cwd``, else in ``cwd``."""
    given = os.environ.get(CACHE_DIR_ENV)
    if given:
        return Path(given).resolve()
    start = (cwd or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file():
            return folder / FOLDER
    return start / FOLDER


@functools.cache
def source_hash() -> str:
    """sha256 over every file of the installed headaudit package and the bundled references
    (relative path and bytes, in sorted order; ``__pycache__`` left out)."""
    from headaudit.subjects import _reference_dir

    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for label, root in (("headaudit", package), ("reference", _reference_dir().resolve())):
        files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for path in files:
            if label == "headaudit" and path.is_relative_to(_reference_dir().resolve()):
                continue  # hashed once, under its own label
            digest.update(f"{label}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@functools.cache
def _environment() -> dict[str, Json]:
    import hypothesis
    import numpy
    import torch

    return {
        "headaudit": __version__,
        "sources": source_hash(),
        "python": sys.version,
        "machine": platform.machine(),
        "torch": torch.__version__,
        "hypothesis": hypothesis.__version__,
        "numpy": numpy.__version__,
        # perf.host-syncs measures on a CUDA device where there is one, and is n/a elsewhere
        "cuda": [torch.version.cuda, torch.cuda.is_available()],
    }


def _digest(parts: dict[str, Json]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _settings(seed: int, profile: Profile, timeout: float | None) -> dict[str, Json]:
    return {"seed": seed, "profile": profile.name, "factor": profile.factor, "timeout": timeout}


def _subject(subject: Subject) -> dict[str, Json]:
    """What every key names of a subject: its name maps, how it is shown, its head class and
    the content of every file of the user's that loading it ran."""
    return {
        "maps": [list(entry) for entry in subject.names.entries],
        "subject": {
            "display": subject.display,
            "class": subject.head_cls.__name__,
            "files": [list(f) for f in subject.files],
        },
    }


def result_key(
    check: Check[Any],
    subject: Subject,
    seed: int,
    profile: Profile,
    timeout: float | None,
    hosts: HostSet,
) -> str | None:
    """The key of ``check``'s result on ``subject`` (see the module docstring), or None for
    a timed check, which is never cached."""
    if check.timing:
        return None
    parts: dict[str, Json] = {
        "check": check.id,
        **_environment(),
        **_settings(seed, profile, timeout),
        **_subject(subject),
        "hosts": [
            {"variant": variant, "display": f.display, "class": f.class_name, "files": [list(x) for x in f.files]}
            for variant, f in (*hosts.variants(), ("wrapper", hosts.wrapper))
        ],
    }
    return _digest(parts)


def mutation_key(seed: int, profile: Profile, timeout: float | None, selection: list[str]) -> str:
    """The key of a mutation score: it depends on headaudit's code and its bundled
    ``head_fixed.py`` alone (both in :func:`source_hash`), the environment and the run's
    settings, and which mutants and rewrites were run."""
    return _digest({"mutation": sorted(selection), **_environment(), **_settings(seed, profile, timeout)})


def train_key(kind: str, subject: Subject, settings: Json, data: str, config: Json, profile: Profile) -> str:
    """The key of one task of a training session (:mod:`headaudit.train.stored`): ``kind``
    (a run at a seed, or the cluster weight over the seeds), the subject as in
    :func:`result_key`, the constructor ``settings`` it is trained with, the ``data``
    digest, the training ``config`` (with the seed or seeds) and the profile."""
    return _digest(
        {
            "train": kind,
            **_environment(),
            "profile": profile.name,
            "factor": profile.factor,
            **_subject(subject),
            "settings": settings,
            "data": data,
            "config": config,
        }
    )


@dataclass
class ResultCache:
    """Results stored under ``root`` (one JSON file per key), and what this run reused.

    ``reused`` and ``measured`` list ``(check, role)`` in the order they were asked, for
    the one line on stderr; the report itself never says which results were reused, so a
    cached and an uncached report stay byte-identical.
    """

    root: Path
    reused: list[tuple[str, str]] = field(default_factory=list)
    measured: list[tuple[str, str]] = field(default_factory=list)
    #: Tasks of training sessions (runs, cluster weights): how many the cache served, of all.
    training_reused: int = 0
    training_tasks: int = 0

    def _path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.json"

    def _read(self, kind: str, key: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self._path(kind, key).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("key") == key else None

    def _write(self, kind: str, key: str, value: Json) -> None:
        """Write one entry atomically; a cache that cannot be written is skipped silently
        (the run's results are the same without it)."""
        with contextlib.suppress(OSError):
            self._create()
            target = self._path(kind, key)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump({"key": key, "value": value}, out, sort_keys=True)
                os.replace(temp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise

    def _create(self) -> None:
        if (self.root / ".gitignore").is_file():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / ".gitignore").write_text("# Created by headaudit automatically.\n*\n", encoding="utf-8")
        (self.root / "CACHEDIR.TAG").write_text(_TAG, encoding="utf-8")

    def lookup(self, key: str, role: str) -> Result | None:
        """The stored result of ``key`` in the slot ``role``, or None (absent, unreadable or corrupt)."""
        data = self._read("results", key)
        if data is None:
            return None
        try:
            result = Result.from_dict(data["value"])
        except Exception:  # whatever a damaged entry makes the parser raise, it is a miss
            return None
        result = replace(result, subject=role)
        self.reused.append((result.check, role))
        return result

    def store(self, key: str, result: Result) -> None:
        """Keep ``result`` under ``key`` with its role stripped; an ``error`` is not kept."""
        self.measured.append((result.check, result.subject))
        if result.verdict == "error":
            return
        self._write("results", key, {**result.to_dict(), "subject": ""})

    def mutation(self, key: str) -> dict[str, Json] | None:
        """The stored mutation score of ``key`` (``MutationScore.to_dict()`` plus ``measured_with``)."""
        data = self._read("mutation", key)
        value = None if data is None else data.get("value")
        return value if isinstance(value, dict) and "detected" in value else None

    def store_mutation(self, key: str, score: dict[str, Json]) -> None:
        self._write("mutation", key, score)

    def training(self, key: str) -> Json | None:
        """The stored value of a training task (:mod:`headaudit.train.stored` reads it), or None."""
        data = self._read("training", key)
        return None if data is None else data.get("value")

    def store_training(self, key: str, value: Json) -> None:
        self._write("training", key, value)

    def summary(self) -> str | None:
        """The stderr line of this run (None when no result or training task was asked for)."""
        total = len(self.reused) + len(self.measured)
        training = f"{self.training_reused} of {self.training_tasks} training runs and cluster weights"
        if total:
            line = f"cache: {len(self.reused)} of {total} results reused from {self.root}"
            if self.measured and self.reused:
                named = [f"{c} on {r}" for c, r in self.measured]
                line += "; measured now: " + (", ".join(named) if len(named) <= 8 else f"{len(named)} results")
            if self.training_tasks:
                line += f"; {training} reused"
        elif self.training_tasks:
            line = f"cache: {training} reused from {self.root}"
        else:
            return None
        return line + " (--no-cache measures every one)"


def _ours(root: Path) -> bool:
    tag = root / "CACHEDIR.TAG"
    with contextlib.suppress(OSError):
        return tag.is_file() and "created by headaudit" in tag.read_text(encoding="utf-8", errors="replace")
    return False


def usable(root: Path) -> None:
    """Refuse a cache folder that holds something else (a mistyped ``HEADAUDIT_CACHE_DIR``
    pointing at a project must not get a ``.gitignore`` of ``*``): it must be new, empty,
    or a headaudit cache."""
    if not root.exists() or (root.is_dir() and (_ours(root) or not any(root.iterdir()))):
        return
    from headaudit.errors import ConfigError

    raise ConfigError(
        f"the cache folder {root} exists and is not a headaudit cache (no CACHEDIR.TAG of headaudit's); "
        f"point {CACHE_DIR_ENV} at a new or empty folder, or pass --no-cache"
    )


def entries(root: Path) -> tuple[int, int]:
    """``(entries, bytes)`` under a cache folder (zeros when there is none)."""
    count = size = 0
    if root.is_dir():
        for path in root.rglob("*.json"):
            with contextlib.suppress(OSError):
                size += path.stat().st_size
                count += 1
    return count, size


def clear(root: Path) -> bool:
    """Remove a cache folder; False when there was none. Refuses a folder that is not a
    headaudit cache (no ``CACHEDIR.TAG`` of ours), so a mistyped ``HEADAUDIT_CACHE_DIR``
    never deletes anything else."""
    if not root.exists():
        return False
    if not (root.is_dir() and _ours(root)):
        from headaudit.errors import ConfigError

        raise ConfigError(f"{root} is not a headaudit cache (it has no CACHEDIR.TAG of headaudit's); remove it by hand")
    shutil.rmtree(root)
    return True
