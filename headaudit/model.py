"""The audit's results as frozen data: what the runner produces and renderers consume.

Nothing here imports torch. A :class:`Report` converts to and from a JSON-safe dict
(:meth:`Report.to_dict` / :meth:`Report.from_dict`); the JSON form is canonical and
the Markdown renderers are views of it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

__all__ = [
    "SCHEMA_VERSION",
    "VERDICTS",
    "CheckInfo",
    "Environment",
    "Outcome",
    "Report",
    "Result",
    "SubjectInfo",
    "Text",
    "Verdict",
    "freeze_evidence",
    "worst",
]

SCHEMA_VERSION = 1

Verdict = Literal["pass", "fail", "warn", "n/a", "error"]
VERDICTS: tuple[Verdict, ...] = ("pass", "fail", "warn", "n/a", "error")

# Which verdict wins when several are combined (a claim over several checks).
_SEVERITY: dict[str, int] = {"n/a": 0, "pass": 1, "warn": 2, "fail": 3, "error": 4}

Json = Any


@dataclass(frozen=True)
class Text:
    """A sentence in both report languages; measured values are already filled in."""

    en: str
    zh: str

    def get(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


@dataclass(frozen=True)
class Outcome:
    """What a check function returns for one subject; the runner turns it into a Result."""

    verdict: Verdict
    summary: Text
    evidence: Mapping[str, Json] = field(default_factory=dict)
    examples: int | None = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}; use one of {VERDICTS}")


@dataclass(frozen=True)
class Result:
    """One check's verdict on one subject, with the evidence measured in this run."""

    check: str
    subject: str
    verdict: Verdict
    summary: Text
    evidence: Json
    examples: int | None = None

    def to_dict(self) -> dict[str, Json]:
        return {
            "check": self.check,
            "subject": self.subject,
            "verdict": self.verdict,
            "summary": {"en": self.summary.en, "zh": self.summary.zh},
            "evidence": self.evidence,
            "examples": self.examples,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Json]) -> Result:
        verdict = data["verdict"]
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r} in result of {data.get('check')!r}")
        return cls(
            check=data["check"],
            subject=data["subject"],
            verdict=cast(Verdict, verdict),
            summary=Text(**data["summary"]),
            evidence=data["evidence"],
            examples=data.get("examples"),
        )


@dataclass(frozen=True)
class CheckInfo:
    """The catalogue entry of a check that ran, so renderers need not import the checks."""

    id: str
    catalogue: int
    title: Text
    method: Text
    severity: str

    def to_dict(self) -> dict[str, Json]:
        return {
            "id": self.id,
            "catalogue": self.catalogue,
            "title": {"en": self.title.en, "zh": self.title.zh},
            "method": {"en": self.method.en, "zh": self.method.zh},
            "severity": self.severity,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Json]) -> CheckInfo:
        return cls(data["id"], data["catalogue"], Text(**data["title"]), Text(**data["method"]), data["severity"])


@dataclass(frozen=True)
class SubjectInfo:
    """A file under audit: its role, where it came from and what it contained."""

    role: str
    path: str
    sha256: str
    head_class: str

    def to_dict(self) -> dict[str, Json]:
        return {"role": self.role, "path": self.path, "sha256": self.sha256, "head_class": self.head_class}

    @classmethod
    def from_dict(cls, data: Mapping[str, Json]) -> SubjectInfo:
        return cls(data["role"], data["path"], data["sha256"], data["head_class"])


@dataclass(frozen=True)
class Environment:
    """Everything needed to reproduce the run (no clock times: runs must be byte-identical)."""

    tool_version: str
    python: str
    torch: str
    hypothesis: str
    device: str
    threads: int
    seed: int
    profile: str
    max_examples: int
    example_factor: float
    derandomize: bool
    subject_args: str

    def to_dict(self) -> dict[str, Json]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: Mapping[str, Json]) -> Environment:
        return cls(**data)


@dataclass(frozen=True)
class Report:
    """The whole audit: subjects, the checks that ran, their results, and the environment."""

    subjects: tuple[SubjectInfo, ...]
    checks: tuple[CheckInfo, ...]
    results: tuple[Result, ...]
    environment: Environment
    schema_version: int = SCHEMA_VERSION

    def check(self, check_id: str) -> CheckInfo | None:
        return next((c for c in self.checks if c.id == check_id), None)

    def result(self, check: str, subject: str) -> Result | None:
        for r in self.results:
            if r.check == check and r.subject == subject:
                return r
        return None

    def to_dict(self) -> dict[str, Json]:
        return {
            "schema_version": self.schema_version,
            "subjects": [s.to_dict() for s in self.subjects],
            "checks": [c.to_dict() for c in self.checks],
            "results": [r.to_dict() for r in self.results],
            "environment": self.environment.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Json]) -> Report:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"schema_version {version!r} is not {SCHEMA_VERSION}; regenerate the JSON")
        return cls(
            subjects=tuple(SubjectInfo.from_dict(s) for s in data["subjects"]),
            checks=tuple(CheckInfo.from_dict(c) for c in data["checks"]),
            results=tuple(Result.from_dict(r) for r in data["results"]),
            environment=Environment.from_dict(data["environment"]),
            schema_version=version,
        )


def worst(verdicts: list[Verdict] | tuple[Verdict, ...]) -> Verdict:
    """The most severe verdict (error > fail > warn > pass > n/a); n/a for none."""
    if not verdicts:
        return "n/a"
    return max(verdicts, key=lambda v: _SEVERITY[v])


def freeze_evidence(value: Json, digits: int = 6) -> Json:
    """Make evidence JSON-safe and stable: floats to ``digits`` significant digits.

    Non-finite floats become the strings ``"nan"``, ``"inf"`` and ``"-inf"`` so that the
    JSON stays standard. Tuples become lists; mapping keys become strings.
    """
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        rounded = float(f"{value:.{digits}g}")
        return 0.0 if rounded == 0 else rounded
    if isinstance(value, Mapping):
        return {str(k): freeze_evidence(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [freeze_evidence(v, digits) for v in value]
    # numpy / torch scalars and anything else with a float value
    try:
        return freeze_evidence(float(value), digits)
    except (TypeError, ValueError):
        return repr(value)
