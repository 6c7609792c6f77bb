"""The audit's results as frozen data: what the runner produces and renderers consume.

Nothing here imports torch. A :class:`Report` converts to and from a JSON-safe dict
(:meth:`Report.to_dict` / :meth:`Report.from_dict`); the JSON form is canonical and the
Markdown renderers are views of it. Sentences are kept as message ids with parameters
(language-neutral, :mod:`headaudit.messages`); the JSON also carries them rendered in
every language so that a reader without the tool can use it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from headaudit.fingerprints import Fingerprint, Headline, findings_of
from headaudit.messages import LANGS, Msg, msg_from_dict, render

__all__ = [
    "CLAIM_VERDICTS",
    "SCHEMA_VERSION",
    "VERDICTS",
    "CheckInfo",
    "ClaimPart",
    "ClaimResult",
    "ClaimVerdict",
    "Environment",
    "Finding",
    "Report",
    "Result",
    "SearchStats",
    "SubjectInfo",
    "Verdict",
    "freeze_evidence",
    "freeze_msg",
    "to_evidence",
    "worst",
]

SCHEMA_VERSION = 2

Verdict = Literal["pass", "fail", "warn", "n/a", "error"]
VERDICTS: tuple[Verdict, ...] = ("pass", "fail", "warn", "n/a", "error")

ClaimVerdict = Literal["confirmed", "caveats", "refuted", "partly-measured", "not-judged"]
CLAIM_VERDICTS: tuple[ClaimVerdict, ...] = ("confirmed", "caveats", "refuted", "partly-measured", "not-judged")

# Which verdict wins when several are combined.
_SEVERITY: dict[str, int] = {"n/a": 0, "pass": 1, "warn": 2, "fail": 3, "error": 4}

Json = Any


def _texts(message: Msg) -> dict[str, str]:
    return {lang: render(message, lang) for lang in LANGS}


@dataclass(frozen=True)
class Finding:
    """What a check's verdict function returns: a verdict and the sentence that states it."""

    verdict: Verdict
    message: Msg

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}; use one of {VERDICTS}")


@dataclass(frozen=True)
class SearchStats:
    """What controlled and what happened in a check's property searches on one subject.

    ``examples`` counts the examples run up to and including the first counterexample
    (all of them when none was found); ``shrinks`` counts the runs after it, spent
    shrinking; ``budget`` is the ``max_examples`` each search was given; ``explicit``
    the explicit examples run first; ``searches`` the number of searches.
    """

    examples: int = 0
    shrinks: int = 0
    budget: int = 0
    explicit: int = 0
    searches: int = 0

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, int]) -> SearchStats:
        return cls(**data)


@dataclass(frozen=True)
class Result:
    """One check's verdict on one subject, with the evidence measured in this run."""

    check: str
    subject: str  # the role of the subject in this report
    verdict: Verdict
    message: Msg
    evidence: Json
    search: SearchStats | None = None
    output: str = ""  # what the subject printed or warned while this check ran
    #: The check's declared headline figures, by message id (``Check.headlines``): what
    #: each finding records as its figure and which way is worse.
    headlines: Mapping[str, Headline] = field(default_factory=dict)

    def summary(self, lang: str) -> str:
        return render(self.message, lang)

    def findings(self) -> tuple[Fingerprint, ...]:
        """What this result found, each with a stable fingerprint (:mod:`headaudit.fingerprints`)."""
        return findings_of(self.check, self.verdict, self.message.to_dict(), self.evidence, self.headlines)

    def to_dict(self) -> dict[str, Json]:
        data: dict[str, Json] = {
            "check": self.check,
            "subject": self.subject,
            "verdict": self.verdict,
            "message": self.message.to_dict(),
            "summary": _texts(self.message),
            "evidence": self.evidence,
            "findings": [f.to_dict() for f in self.findings()],
            "search": self.search.to_dict() if self.search else None,
            "output": self.output,
        }
        if self.headlines:
            data["headlines"] = {kind: h.to_dict() for kind, h in sorted(self.headlines.items())}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Json]) -> Result:
        verdict = data["verdict"]
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r} in result of {data.get('check')!r}")
        return cls(
            check=data["check"],
            subject=data["subject"],
            verdict=cast(Verdict, verdict),
            message=msg_from_dict(data["message"]),
            evidence=data["evidence"],
            search=SearchStats.from_dict(data["search"]) if data.get("search") else None,
            output=data.get("output", ""),
            headlines={str(k): Headline.from_dict(v) for k, v in (data.get("headlines") or {}).items()},
        )


@dataclass(frozen=True)
class CheckInfo:
    """The catalogue entry of a check that ran, so renderers need not import the checks."""

    id: str
    catalogue: int
    severity: str
    needs: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()
    search: bool = False
    group: str = ""

    def title(self, lang: str) -> str:
        return render(Msg(f"{self.id}.title"), lang)

    def method(self, lang: str) -> str:
        return render(Msg(f"{self.id}.method"), lang)

    def to_dict(self) -> dict[str, Json]:
        return {
            "id": self.id,
            "catalogue": self.catalogue,
            "severity": self.severity,
            "needs": list(self.needs),
            "settings": list(self.settings),
            "search": self.search,
            "group": self.group,
            "title": _texts(Msg(f"{self.id}.title")),
            "method": _texts(Msg(f"{self.id}.method")),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Json]) -> CheckInfo:
        return cls(
            data["id"],
            data["catalogue"],
            data["severity"],
            tuple(data.get("needs", ())),
            tuple(data.get("settings", ())),
            bool(data.get("search", False)),
            str(data.get("group", "")),
        )


@dataclass(frozen=True)
class SubjectInfo:
    """A file under audit: its role, where it came from and what it contained."""

    role: str
    path: str
    sha256: str
    head_class: str
    load_output: str = ""
    #: The one check group this subject was measured in (``None``: every check that ran).
    #: The bundled positive control, ``head_fixed.py``, is ``"performance"``: a third
    #: subject of the Performance section only, so the audit's two slots stay two.
    only: str | None = None

    def to_dict(self) -> dict[str, Json]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Json]) -> SubjectInfo:
        return cls(**data)


@dataclass(frozen=True)
class ClaimPart:
    """One check's verdict as it bears on a claim."""

    check: str
    verdict: Verdict | Literal["not-run"]

    def to_dict(self) -> dict[str, str]:
        return {"check": self.check, "verdict": self.verdict}


@dataclass(frozen=True)
class ClaimResult:
    """The measured verdict on one claim of the original report."""

    id: str
    verdict: ClaimVerdict
    subject: str  # the role the claim is judged on
    core: tuple[ClaimPart, ...]
    caveats: tuple[ClaimPart, ...]
    message: Msg
    premise: Json = None  # where the claim rests on a premise about another subject

    def to_dict(self) -> dict[str, Json]:
        return {
            "id": self.id,
            "verdict": self.verdict,
            "subject": self.subject,
            "core": [p.to_dict() for p in self.core],
            "caveats": [p.to_dict() for p in self.caveats],
            "message": self.message.to_dict(),
            "summary": _texts(self.message),
            "premise": self.premise,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Json]) -> ClaimResult:
        return cls(
            id=data["id"],
            verdict=data["verdict"],
            subject=data["subject"],
            core=tuple(ClaimPart(p["check"], p["verdict"]) for p in data["core"]),
            caveats=tuple(ClaimPart(p["check"], p["verdict"]) for p in data["caveats"]),
            message=msg_from_dict(data["message"]),
            premise=data.get("premise"),
        )


@dataclass(frozen=True)
class Environment:
    """Everything needed to reproduce the run (no clock times: runs must be byte-identical).

    ``args`` are the command-line options that change results (subjects, maps, ``--only``,
    ``--timeout``), so the reproduce commands repeat them.
    """

    tool_version: str
    python: str
    torch: str
    hypothesis: str
    device: str
    threads: int
    seed: int
    profile: str
    example_factor: float
    timeout: float | None
    args: tuple[str, ...] = ()
    maps: tuple[tuple[str, str], ...] = ()
    detection: Json = None  # the recorded detection-rate validation, where present

    def to_dict(self) -> dict[str, Json]:
        data = dataclasses.asdict(self)
        data["args"] = list(self.args)
        data["maps"] = [list(m) for m in self.maps]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Json]) -> Environment:
        values = dict(data)
        values["args"] = tuple(values.get("args", ()))
        values["maps"] = tuple(tuple(m) for m in values.get("maps", ()))
        return cls(**values)


@dataclass(frozen=True)
class Report:
    """The whole audit: subjects, the checks that ran, their results, claims, environment."""

    subjects: tuple[SubjectInfo, ...]
    checks: tuple[CheckInfo, ...]
    results: tuple[Result, ...]
    claims: tuple[ClaimResult, ...]
    environment: Environment
    schema_version: int = SCHEMA_VERSION
    extra: Mapping[str, Json] = field(default_factory=dict)

    def check(self, check_id: str) -> CheckInfo | None:
        return next((c for c in self.checks if c.id == check_id), None)

    def result(self, check: str, subject: str) -> Result | None:
        return next((r for r in self.results if r.check == check and r.subject == subject), None)

    def claim(self, claim_id: str) -> ClaimResult | None:
        return next((c for c in self.claims if c.id == claim_id), None)

    def to_dict(self) -> dict[str, Json]:
        return {
            "schema_version": self.schema_version,
            "subjects": [s.to_dict() for s in self.subjects],
            "checks": [c.to_dict() for c in self.checks],
            "results": [r.to_dict() for r in self.results],
            "claims": [c.to_dict() for c in self.claims],
            "environment": self.environment.to_dict(),
            "extra": dict(self.extra),
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
            claims=tuple(ClaimResult.from_dict(c) for c in data["claims"]),
            environment=Environment.from_dict(data["environment"]),
            schema_version=version,
            extra=dict(data.get("extra", {})),
        )


def worst(verdicts: list[Verdict] | tuple[Verdict, ...]) -> Verdict:
    """The most severe verdict (error > fail > warn > pass > n/a); n/a for none."""
    if not verdicts:
        return "n/a"
    return max(verdicts, key=lambda v: _SEVERITY[v])


def freeze_evidence(value: Json, digits: int = 6) -> Json:
    """Make evidence JSON-safe and stable: floats to ``digits`` significant digits.

    Non-finite floats become the strings ``"nan"``, ``"inf"`` and ``"-inf"`` so that the
    JSON stays standard. Tuples become lists; mapping keys become strings; messages
    become their ``{"msg": ...}`` form.
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
    if isinstance(value, Msg):
        return {"msg": freeze_evidence(value.to_dict(), digits)}
    if isinstance(value, Mapping):
        return {str(k): freeze_evidence(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [freeze_evidence(v, digits) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_evidence(value, digits)
    try:  # numpy / torch scalars and anything else with a float value
        return freeze_evidence(float(value), digits)
    except (TypeError, ValueError):
        return repr(value)


def to_evidence(measurement: Any, digits: int = 6) -> Json:
    """The evidence of a measurement: its dataclass fields, frozen; ``None`` fields dropped."""
    if dataclasses.is_dataclass(measurement) and not isinstance(measurement, type):
        fields = {f.name: getattr(measurement, f.name) for f in dataclasses.fields(measurement)}
        return {k: freeze_evidence(v, digits) for k, v in fields.items() if v is not None and not k.startswith("_")}
    return freeze_evidence(measurement, digits)


def freeze_msg(message: Msg, digits: int = 6) -> Msg:
    """A message with its parameters frozen like evidence, so texts and JSON agree."""
    params: dict[str, Json] = {}
    for key, value in message.params.items():
        if isinstance(value, Msg):
            params[key] = freeze_msg(value, digits)
        elif isinstance(value, (list, tuple)):
            params[key] = [freeze_msg(v, digits) if isinstance(v, Msg) else freeze_evidence(v, digits) for v in value]
        else:
            params[key] = freeze_evidence(value, digits)
    return Msg(message.id, params)
