"""The regression guard: what got worse between a recorded report and this run.

``headaudit check --expect audit.json`` runs the audit again and compares it with the
report recorded earlier (``headaudit report --format json > audit.json``). For each
subject role and check present in both, a regression is

- a worse verdict (``pass`` < ``warn`` < ``n/a`` < ``fail`` < ``error``: a check that
  stops measuring, ``n/a``, hides what it measured before);
- a finding whose fingerprint the recorded result does not have
  (:mod:`headaudit.fingerprints`): a new defect where a check already failed;
- a finding both results have whose headline figure (declared by the check per message,
  :class:`~headaudit.fingerprints.Headline`) moved :data:`FIGURE_FACTOR` (10) times or
  more in the worse direction, by magnitude: the same defect, much worse (a figure that
  becomes NaN counts too). A smaller move, or any move the better way, is not: a
  harmless edit moves figures a little (rounding, another shrunk counterexample), an
  order of magnitude is a change of behaviour;
- any change of the interface ``forward.contract`` records (constructor signature and
  defaults, what forward returns in each mode, the loss-dict keys, parameter names and
  shapes, buffers): callers and checkpoints depend on it, so it is accepted only by
  recording it again (``--update``).

A finding that disappears, a better verdict or a check that only one report has are not
regressions (they are listed as notes). Pure: no torch, nothing is re-run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from headaudit.fingerprints import Fingerprint, Worse, figure_of
from headaudit.messages import render
from headaudit.model import Report, Result

__all__ = [
    "FIGURE_FACTOR",
    "RANK",
    "Comparison",
    "Regression",
    "compare",
    "recorded_results",
    "regressions_of",
    "worsened",
]

#: How many times worse a finding's headline figure must get to be a regression.
FIGURE_FACTOR = 10.0

#: How bad each verdict is, for the guard.
RANK: dict[str, int] = {"pass": 0, "warn": 1, "n/a": 2, "fail": 3, "error": 4}

Json = Any


@dataclass(frozen=True)
class Regression:
    """One thing that got worse, with the line that says so."""

    role: str
    check: str
    kind: str  # verdict, new finding, worse figure, interface changed
    detail: str

    def line(self) -> str:
        return f"{self.role} {self.check}: {self.kind}: {self.detail}"


@dataclass(frozen=True)
class Comparison:
    regressions: tuple[Regression, ...]
    notes: tuple[str, ...]
    compared: int  # (role, check) pairs present in both reports


def _fingerprints(raw: Mapping[str, Json] | None, result: Result) -> set[str]:
    """The recorded fingerprints (as the file has them; recomputed for a file without them)."""
    if raw is not None and isinstance(raw.get("findings"), list):
        return {str(f.get("fingerprint")) for f in raw["findings"] if isinstance(f, Mapping)}
    return {f.fingerprint for f in result.findings()}


def _figures(raw: Mapping[str, Json] | None, result: Result, now: Result) -> dict[str, float]:
    """The recorded headline figure of each finding, by fingerprint (as the file has them
    where it records figures; otherwise recomputed from the recorded message, with this
    run's declarations where the file has none: a file recorded before figures were)."""
    if raw is not None and isinstance(raw.get("findings"), list):
        recorded = {
            str(f.get("fingerprint")): figure_of(f.get("figure"))
            for f in raw["findings"]
            if isinstance(f, Mapping) and "figure" in f
        }
        if recorded:
            return {k: v for k, v in recorded.items() if v is not None}
    if not result.headlines:
        result = dataclasses.replace(result, headlines=now.headlines)
    return {f.fingerprint: f.figure for f in result.findings() if f.figure is not None}


def worsened(was: float, now: float, worse: Worse, factor: float = FIGURE_FACTOR) -> bool:
    """True when ``now`` is at least ``factor`` times worse than ``was``, by magnitude, in
    the ``worse`` direction (``higher``: ``|now| >= factor*|was|``; ``lower``:
    ``|now| <= |was|/factor``), strictly worse, or NaN where ``was`` was a number."""
    if math.isnan(was):
        return False
    if math.isnan(now):
        return True
    before, after = abs(was), abs(now)
    if worse == "higher":
        return after > before and after >= factor * before
    return after < before and after * factor <= before


def _moved(was: float, now: float) -> str:
    """How far a figure moved, for a person: ``1000x lower`` (``to NaN``, ``from 0``)."""
    if math.isnan(now):
        return "to NaN"
    before, after = abs(was), abs(now)
    if min(before, after) == 0 or math.isinf(max(before, after)):
        return "from 0" if before == 0 else ("to 0" if after == 0 else "to infinity")
    ratio = max(before, after) / min(before, after)
    shown = f"{ratio:.0f}" if ratio >= 100 else f"{ratio:.3g}"
    return f"{shown}x {'higher' if after > before else 'lower'}"


def _worse_figure(finding: Fingerprint, was: float, now: float, worse: Worse) -> str:
    """The line's detail: the finding, both figures, how far and which way is worse."""
    return f"{finding.describe()}: {was:g} -> {now:g}, {_moved(was, now)} ({worse} is worse) [{finding.fingerprint}]"


def _diff(before: Json, after: Json, path: str = "") -> Iterator[str]:
    """Where two interface records differ, one phrase per difference."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in sorted(set(before) | set(after), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in after:
                yield f"{where} removed"
            elif key not in before:
                yield f"{where} added ({after[key]!r})"
            else:
                yield from _diff(before[key], after[key], where)
    elif path == "constructor" and isinstance(before, list) and isinstance(after, list):
        old = {p.get("name"): p for p in before if isinstance(p, Mapping)}
        new = {p.get("name"): p for p in after if isinstance(p, Mapping)}
        for name in [n for n in old if n not in new]:
            yield f"constructor argument {name} removed"
        for name in [n for n in new if n not in old]:
            yield f"constructor argument {name} added"
        for name in [n for n in new if n in old and old[n] != new[n]]:
            yield f"constructor argument {name}: {old[name]} -> {new[name]}"
        if [n for n in old if n in new] != [n for n in new if n in old]:
            yield "constructor arguments reordered"
    elif before != after:
        yield f"{path or 'interface'}: {before!r} -> {after!r}"


def _interface(result: Result) -> Json:
    ev = result.evidence
    return ev.get("interface") if isinstance(ev, Mapping) else None


def regressions_of(now: Result, was: Result | None, raw_was: Mapping[str, Json] | None = None) -> list[Regression]:
    """What got worse in one (role, check) result from ``was`` (recorded) to ``now``;
    nothing when there is no recorded result to compare with."""
    if was is None:
        return []
    role, check = now.subject, now.check
    found: list[Regression] = []
    if RANK[now.verdict] > RANK[was.verdict]:
        change = f"{was.verdict} -> {now.verdict}: {render(now.message, 'en')}"
        found.append(Regression(role, check, "verdict", change))
    known = _fingerprints(raw_was, was)
    figures = _figures(raw_was, was, now)
    for finding in now.findings():
        if finding.fingerprint not in known:
            found.append(Regression(role, check, "new finding", f"{finding.describe()} [{finding.fingerprint}]"))
            continue
        before, after, worse = figures.get(finding.fingerprint), finding.figure, finding.worse
        if before is not None and after is not None and worse is not None and worsened(before, after, worse):
            found.append(Regression(role, check, "worse figure", _worse_figure(finding, before, after, worse)))
    old_iface, new_iface = _interface(was), _interface(now)
    if old_iface is not None and new_iface is not None and old_iface != new_iface:
        found += [Regression(role, check, "interface changed", change) for change in _diff(old_iface, new_iface)]
    return found


def recorded_results(raw_expected: Mapping[str, Json] | None) -> dict[tuple[str, str], Mapping[str, Json]]:
    """The expect file's results as it has them, by (role, check)."""
    found: dict[tuple[str, str], Mapping[str, Json]] = {}
    for item in (raw_expected or {}).get("results", []):
        if isinstance(item, Mapping):
            found[(str(item.get("subject")), str(item.get("check")))] = item
    return found


def compare(expected: Report, current: Report, raw_expected: Mapping[str, Json] | None = None) -> Comparison:
    """What got worse from ``expected`` to ``current`` (``raw_expected``: the expect file's
    JSON, whose recorded fingerprints are used as they are)."""
    raw_results = recorded_results(raw_expected)
    before = {(r.subject, r.check): r for r in expected.results}
    after = {(r.subject, r.check): r for r in current.results}
    regressions: list[Regression] = []
    notes: list[str] = []
    for key, now in after.items():
        was = before.get(key)
        if was is None:
            notes.append(f"{key[0]} {key[1]}: not in the expect file ({now.verdict} now)")
            continue
        if RANK[now.verdict] < RANK[was.verdict]:
            notes.append(f"{key[0]} {key[1]}: better, {was.verdict} -> {now.verdict}")
        regressions += regressions_of(now, was, raw_results.get(key))
    for key in before:
        if key not in after:
            notes.append(f"{key[0]} {key[1]}: in the expect file, not run now")
    compared = sum(1 for key in after if key in before)
    return Comparison(tuple(regressions), tuple(notes), compared)
