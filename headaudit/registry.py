"""Checks are data: one frozen :class:`Check` record per claim being tested.

Each ``headaudit/checks/<area>.py`` ends with a tuple ``CHECKS`` of records; the
package ``headaudit.checks`` concatenates them into ``REGISTRY``. A record is validated
when it is built, so a bad id or a duplicate fails at import and names the id.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from headaudit.errors import CheckDefinitionError
from headaudit.model import Text

if TYPE_CHECKING:
    from headaudit.context import Context
    from headaudit.model import Outcome

__all__ = ["Check", "Severity", "build_registry"]

Severity = Literal["low", "medium", "high"]

_ID = re.compile(r"^[a-z]+\.[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Check:
    """One auditable claim.

    ``id`` is ``area.slug`` and never changes once published (reports and regression
    baselines refer to it). ``catalogue`` is the CHECKS.md section it belongs to.
    ``needs`` lists attribute paths on a built head (``"proto_manager.momentum_update"``);
    when one is missing the runner records ``n/a`` naming it, without calling ``run``.
    ``run`` measures the subject and returns an :class:`~headaudit.model.Outcome`.
    """

    id: str
    catalogue: int
    title: Text
    method: Text
    run: Callable[[Context], Outcome]
    needs: tuple[str, ...] = ()
    severity: Severity = "medium"

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise CheckDefinitionError(f"check id {self.id!r} must look like 'area.slug' (lowercase, dashes)")
        if self.catalogue not in (1, 2, 3, 4):
            raise CheckDefinitionError(f"check {self.id!r}: catalogue section {self.catalogue!r} is not 1-4")
        if self.severity not in ("low", "medium", "high"):
            raise CheckDefinitionError(f"check {self.id!r}: severity {self.severity!r} is not low/medium/high")
        if not (self.title.en and self.title.zh and self.method.en and self.method.zh):
            raise CheckDefinitionError(f"check {self.id!r}: title and method need both en and zh text")


def build_registry(*groups: Iterable[Check]) -> tuple[Check, ...]:
    """Concatenate check tuples, refusing duplicate ids."""
    seen: dict[str, Check] = {}
    for group in groups:
        for check in group:
            if check.id in seen:
                raise CheckDefinitionError(f"check id {check.id!r} is defined twice")
            seen[check.id] = check
    return tuple(seen.values())
