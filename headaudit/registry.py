"""Checks are data: one frozen :class:`Check` record per claim being tested.

Each ``headaudit/checks/<area>.py`` ends with a tuple ``CHECKS`` of records; the package
``headaudit.checks`` concatenates them into ``REGISTRY``. A record is validated when it
is built, so a bad id, a malformed need, or a title missing from a language catalogue
fails at import and names the id.

A check is two functions. ``measure(ctx)`` runs the subject and returns a typed
measurement (a small frozen dataclass); ``judge(measurement)`` is pure and turns it into
a :class:`~headaudit.model.Finding` (verdict + message). The evidence in the report is
the measurement itself, so every number shown is one the verdict was computed from, and
``judge`` can be tested on hand-made measurements.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from headaudit.errors import CheckDefinitionError
from headaudit.fingerprints import Headline
from headaudit.messages import LANGS, catalogue, has, placeholders
from headaudit.names import Need, parse_needs

if TYPE_CHECKING:
    from headaudit.context import Context
    from headaudit.model import Finding

__all__ = ["Check", "Severity", "build_registry"]

Severity = Literal["low", "medium", "high"]
M = TypeVar("M")

_ID = re.compile(r"^[a-z]+\.[a-z0-9]+(-[a-z0-9]+)*$")
_SETTING = re.compile(r"^[a-z_][a-z0-9_]*$")
#: The report section of each catalogue section, unless a check names another group.
_GROUPS = {1: "theory", 2: "engineering", 3: "missed", 4: "performance"}


@dataclass(frozen=True)
class Check(Generic[M]):
    """One auditable claim.

    ``id`` is ``area.slug`` and never changes once published (reports and regression
    baselines refer to it). ``catalogue`` is the CHECKS.md section it belongs to
    (1 theory, 2 engineering, 3 missed by the original report, 4 performance).
    ``needs`` declares every name the check touches (see :mod:`headaudit.names`);
    ``settings`` the constructor settings it relies on (read back after construction;
    ``?name`` for one it uses where the head accepts it).
    ``search`` marks checks whose verdict comes from a property search, so their
    detection rate is validated. ``runs_head`` is False for a check that reads the head's
    source only and never calls it (``static.*``): it does not wait on the working-head step
    (:mod:`headaudit.working`), so a head whose forward raises still gets its verdict.
    ``group`` is the report section the check is shown in
    when that is not its catalogue section's default (the component contracts are
    catalogue 3 but have their own section: ``"contracts"``). Title and method live in
    the message catalogues as ``<id>.title`` and ``<id>.method``.

    ``headlines`` declares, per message id the check's findings use, which parameter is
    the finding's headline figure and which direction is worse
    (:class:`~headaudit.fingerprints.Headline`); the guard calls a finding whose figure
    moved ten times or more the worse way a regression. Each named parameter must be a
    placeholder of that message in every language. ``timing`` marks a check whose
    figures are wall-clock times, not byte-identical between runs: ``headaudit check``
    compares it only with ``--bench``.
    """

    id: str
    catalogue: int
    measure: Callable[[Context], M]
    judge: Callable[[M], Finding]
    needs: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()
    severity: Severity = "medium"
    search: bool = False
    group: str = ""
    runs_head: bool = True
    headlines: Mapping[str, Headline] = field(default_factory=dict, compare=False)
    timing: bool = False
    parsed: tuple[Need, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise CheckDefinitionError(f"check id {self.id!r} must look like 'area.slug' (lowercase, dashes)")
        if self.catalogue not in (1, 2, 3, 4):
            raise CheckDefinitionError(f"check {self.id!r}: catalogue section {self.catalogue!r} is not 1-4")
        if self.severity not in ("low", "medium", "high"):
            raise CheckDefinitionError(f"check {self.id!r}: severity {self.severity!r} is not low/medium/high")
        for setting in self.settings:
            if not _SETTING.match(setting.removeprefix("?")):
                raise CheckDefinitionError(f"check {self.id!r}: setting {setting!r} is not a keyword name")
        for part in ("title", "method"):
            if not has(f"{self.id}.{part}"):
                raise CheckDefinitionError(f"check {self.id!r}: '{self.id}.{part}' is missing from a message catalogue")
        for kind, headline in self.headlines.items():
            for lang in LANGS:
                template = catalogue(lang).get(kind)
                if template is None or headline.param not in placeholders(template):
                    raise CheckDefinitionError(
                        f"check {self.id!r}: headline of {kind!r} names {headline.param!r}, which is not a "
                        f"placeholder of that message in the {lang!r} catalogue"
                    )
        object.__setattr__(self, "parsed", parse_needs(self.id, self.needs))
        if not self.group:
            object.__setattr__(self, "group", _GROUPS[self.catalogue])

    @property
    def required_settings(self) -> tuple[str, ...]:
        """Settings without which the check cannot run (``?name`` marks an optional one)."""
        return tuple(s for s in self.settings if not s.startswith("?"))

    @property
    def setting_names(self) -> tuple[str, ...]:
        """Every declared setting, optional ones included; each is verified when passed."""
        return tuple(s.removeprefix("?") for s in self.settings)

    @property
    def declared(self) -> frozenset[str]:
        """Every canonical name the check may touch."""
        return frozenset(name for need in self.parsed for name in need.alternatives)


def build_registry(*groups: Iterable[Check[Any]]) -> tuple[Check[Any], ...]:
    """Concatenate check tuples, refusing duplicate ids."""
    seen: dict[str, Check[Any]] = {}
    for group in groups:
        for check in group:
            if check.id in seen:
                raise CheckDefinitionError(f"check id {check.id!r} is defined twice")
            seen[check.id] = check
    return tuple(seen.values())
