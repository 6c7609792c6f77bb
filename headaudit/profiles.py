"""Hypothesis profiles, registered in one place and chosen by ``HYPOTHESIS_PROFILE``.

Two things are governed by a profile:

- the audit's own searches: each check asks for a budget through :func:`scaled`, which
  multiplies its ``ci`` example count by the profile's ``factor``; every search is
  seeded with ``@seed(--seed)``, which alone decides its examples (``derandomize`` has
  no effect under ``@seed``);
- the project's own Hypothesis tests under pytest (``settings.load_profile``): there
  ``max_examples`` and ``derandomize`` apply (``ci`` is derandomized, so CI repeats).

``ci`` is the default; ``dev`` halves the budgets for quick local work; ``thorough``
searches eight times harder before a release. The detection rates recorded in
``headaudit/data/detection.json`` were validated under ``ci``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from hypothesis import HealthCheck, Verbosity, settings

from headaudit.errors import ConfigError

__all__ = ["DEFAULT_PROFILE", "PROFILES", "Profile", "active_profile", "register_profiles", "scaled"]

DEFAULT_PROFILE = "ci"


@dataclass(frozen=True)
class Profile:
    """A named search budget. ``factor`` scales every check's own example count."""

    name: str
    max_examples: int
    factor: float
    derandomize: bool


PROFILES: dict[str, Profile] = {
    "ci": Profile("ci", max_examples=40, factor=1.0, derandomize=True),
    "dev": Profile("dev", max_examples=15, factor=0.5, derandomize=False),
    "thorough": Profile("thorough", max_examples=400, factor=8.0, derandomize=False),
}


def register_profiles() -> None:
    """Register every profile with Hypothesis (idempotent)."""
    for p in PROFILES.values():
        settings.register_profile(
            p.name,
            max_examples=p.max_examples,
            derandomize=p.derandomize,
            deadline=None,
            database=None,
            print_blob=False,
            verbosity=Verbosity.quiet,
            suppress_health_check=[HealthCheck.too_slow],
        )


def active_profile(name: str | None = None) -> Profile:
    """The profile named by ``name``, else by ``HYPOTHESIS_PROFILE``, else ``ci``."""
    chosen = name or os.environ.get("HYPOTHESIS_PROFILE") or DEFAULT_PROFILE
    if chosen not in PROFILES:
        raise ConfigError(
            f"Hypothesis profile {chosen!r} is unknown; set HYPOTHESIS_PROFILE to one of {sorted(PROFILES)}"
        )
    register_profiles()
    return PROFILES[chosen]


def scaled(profile: Profile, ci_examples: int, minimum: int = 1) -> int:
    """A check's example budget under ``profile``, given what it runs under ``ci``."""
    return max(minimum, round(ci_examples * profile.factor))
