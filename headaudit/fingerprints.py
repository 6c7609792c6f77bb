"""Stable fingerprints of what a result found, for baselines that outlive a refactor.

A verdict alone cannot guard a refactor: a check that already fails (a known defect)
would hide a second, new defect in the same area. So each non-passing result is split
into *findings*, each with a fingerprint built only from what identifies it, never from
measured numbers, as code-scanning baselines do (CodeQL's and Semgrep's fingerprints
hash the rule and the code, not the line number):

- ``kind``: the message id that states the finding (``static.site``,
  ``host.loss-dict.fail``, ``compat.manager-api.missing_name``, ...);
- ``keys``: the names and places involved: every string parameter of that message (and
  of the single messages nested in it), with numbers written as ``#`` (digits that are
  part of a name, as in ``float32``, are kept) and file paths cut to the file name and
  no line, so moving code or changing a tolerance changes no fingerprint. Parameters
  holding a shrunk search trace (``steps``) are left out: the trace is evidence, not
  identity.

A message's list parameters (the failing cells of a matrix, the missing names, the
refused keywords) give one finding each, so a new failing cell is a new finding and a
fixed one just disappears. The ``static.*`` checks and ``compile.graph-breaks`` give one
finding per place in the code, keyed by file name, function, what was found there and
its occurrence number within that function: a renamed local or a moved line keeps it.

The fingerprint is the first 16 hex digits of SHA-256 over ``check``, ``kind`` and
``keys``. A passing result has no findings. Pure: no torch, nothing is re-run.

Numbers never enter a fingerprint, but a finding can still carry its *headline figure*:
a check declares, per message id, which parameter of that message is the figure the
finding is about and which direction is worse (:class:`Headline`, in the check's
``headlines``; no sentence is parsed). Each finding of that message then records the
figure and the direction beside its fingerprint (``figure`` and ``worse`` in the JSON),
so the guard can see the same finding get much worse (:mod:`headaudit.guard`).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal, get_args

__all__ = [
    "FINGERPRINT_VERSION",
    "Fingerprint",
    "Headline",
    "Worse",
    "figure_of",
    "findings_of",
    "located",
    "normalise",
]

#: Bumped when the recipe changes, so a recorded baseline can say it is from another recipe.
FINGERPRINT_VERSION = 1

Json = Any

#: Parameters that record how a counterexample was found, not what it is.
_TRACE_PARAMS = frozenset({"steps", "tolerance"})

_PATH = re.compile(r"(?:[\w.\-]+:)?(?:[^\s:'\"()\[\]]*/)?([\w.\-]+\.py)(?::\d+)+")
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b")
_NUMBER = re.compile(r"(?<![A-Za-z_\d.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![A-Za-z_\d])")
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """``text`` without what moves between runs of unchanged behaviour: line numbers,
    directories, addresses and numbers (``head.py:64`` -> ``head.py``, ``n=3`` -> ``n=#``)."""
    text = _PATH.sub(r"\1", text)
    text = _HEX.sub("#", text)
    text = _NUMBER.sub("#", text)
    return _SPACE.sub(" ", text).strip()


#: Which way a headline figure gets worse: a larger magnitude or a smaller one.
Worse = Literal["higher", "lower"]


@dataclass(frozen=True)
class Headline:
    """The headline figure of one message kind: the parameter that holds it, and which
    direction is worse (``higher``: a difference, a count; ``lower``: a shrink factor).

    Declared by the check (``Check.headlines``, keyed by message id), never read from a
    sentence; figures are compared by magnitude."""

    param: str
    worse: Worse

    def __post_init__(self) -> None:
        if self.worse not in get_args(Worse):
            raise ValueError(f"headline {self.param!r}: worse={self.worse!r} is not one of {get_args(Worse)}")

    def to_dict(self) -> dict[str, str]:
        return {"param": self.param, "worse": self.worse}

    @classmethod
    def from_dict(cls, data: Mapping[str, Json]) -> Headline:
        return cls(str(data["param"]), data["worse"])


def figure_of(value: Json) -> float | None:
    """A message parameter as a figure: a number, or a frozen ``"nan"``/``"inf"``/``"-inf"``;
    None for anything else (a bool, a string, a list)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if value in ("nan", "inf", "-inf"):
        return float(value)
    return None


@dataclass(frozen=True)
class Fingerprint:
    """One finding of one result: what it is (``kind``), what it involves (``keys``), and,
    where its message declares one, its headline ``figure`` and which way is ``worse``
    (neither is part of the fingerprint)."""

    check: str
    kind: str
    keys: tuple[str, ...]
    figure: float | None = field(default=None, compare=False)
    worse: Worse | None = field(default=None, compare=False)

    @property
    def fingerprint(self) -> str:
        blob = "\x1f".join((f"v{FINGERPRINT_VERSION}", self.check, self.kind, *self.keys))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    def describe(self) -> str:
        """One line for a person: ``kind (key, key, ...)``."""
        return f"{self.kind} ({', '.join(self.keys)})" if self.keys else self.kind

    def to_dict(self) -> dict[str, Json]:
        data: dict[str, Json] = {"kind": self.kind, "keys": list(self.keys), "fingerprint": self.fingerprint}
        if self.worse is not None and self.figure is not None:
            data["figure"] = self.figure if math.isfinite(self.figure) else str(self.figure)
            data["worse"] = self.worse
        return data


def _msg(value: Json) -> Mapping[str, Json] | None:
    """The ``{"id", "params"}`` of a message as frozen in results (``{"msg": {...}}``), or None."""
    if isinstance(value, Mapping) and set(value) == {"msg"} and isinstance(value["msg"], Mapping):
        return value["msg"]
    if isinstance(value, Mapping) and "id" in value and "params" in value:
        return value
    return None


def _flat(value: Json) -> Iterator[str]:
    """Every identifying string in ``value``: message ids and string parameters, depth first."""
    inner = _msg(value)
    if inner is not None:
        yield str(inner["id"])
        params = inner.get("params") or {}
        for name in sorted(params):
            if name not in _TRACE_PARAMS:
                yield from _flat(params[name])
    elif isinstance(value, str):
        yield normalise(value)
    elif isinstance(value, Sequence):
        for item in value:
            yield from _flat(item)
    elif isinstance(value, Mapping):
        for name in sorted(value):
            yield from _flat(value[name])


Headlines = Mapping[str, Headline]


def _headline(message: Mapping[str, Json], headlines: Headlines) -> tuple[float | None, Worse | None]:
    """The declared headline figure of ``message`` and its worse direction (None, None
    where its id declares none or the parameter holds no number)."""
    declared = headlines.get(str(message.get("id")))
    if declared is None:
        return None, None
    figure = figure_of((message.get("params") or {}).get(declared.param))
    return (figure, declared.worse) if figure is not None else (None, None)


def _split(check: str, message: Mapping[str, Json], headlines: Headlines) -> list[Fingerprint]:
    """The message's own finding first, then one per item of each list parameter (single
    nested messages add their id and strings to the own finding, and their lists split
    the same way). Each finding carries the headline figure its message declares (the own
    finding, where its message declares none, the first one a nested message declares)."""
    keys: list[str] = []
    items: list[Fingerprint] = []
    params = message.get("params") or {}
    figure, worse = _headline(message, headlines)
    for name in sorted(params):
        if name in _TRACE_PARAMS:
            continue
        value = params[name]
        inner = _msg(value)
        if inner is not None:
            own, *nested = _split(check, inner, headlines)
            keys += [own.kind, *own.keys]
            items += nested
            if worse is None and own.worse is not None:
                figure, worse = own.figure, own.worse
        elif isinstance(value, str):
            keys.append(f"{name}={normalise(value)}")
        elif isinstance(value, Sequence) and value and all(isinstance(v, str) for v in value):
            items += [Fingerprint(check, f"{message['id']}.{name}", (normalise(v),)) for v in value]
        elif isinstance(value, Sequence):
            for item in value:
                item_msg = _msg(item)
                if item_msg is not None:  # the list's name says which list (aligned, conflicts, ...)
                    item_figure, item_worse = _headline(item_msg, headlines)
                    keys_of_item = (name, *tuple(_flat(item))[1:])
                    items.append(Fingerprint(check, str(item_msg["id"]), keys_of_item, item_figure, item_worse))
    return [Fingerprint(check, str(message["id"]), tuple(keys), figure, worse), *items]


def _file(path: Json) -> str:
    return PurePosixPath(str(path).replace("\\", "/")).name


def located(check: str, evidence: Mapping[str, Json]) -> list[tuple[Mapping[str, Json], Fingerprint]]:
    """Each place in the code a result names (``evidence["sites"]``, and the in-subject sites
    of the first compile trace), with its finding: keyed by file name, function and what
    was found (or the break reason), numbered within those."""
    places: list[tuple[Mapping[str, Json], tuple[str, ...]]] = []
    for site in evidence.get("sites") or []:
        if isinstance(site, Mapping) and site.get("file"):
            what = (str(site.get("function", "")), normalise(str(site.get("detail", ""))))
            places.append((site, (_file(site["file"]), *what)))
    for trace in (evidence.get("traces") or [])[:1]:
        for site in trace.get("sites") or []:
            if isinstance(site, Mapping) and site.get("in_subject") and site.get("file"):
                places.append((site, (_file(site["file"]), normalise(str(site.get("reason", ""))))))
    seen: Counter[tuple[str, ...]] = Counter()
    found = []
    for site, key in places:
        seen[key] += 1
        found.append((site, Fingerprint(check, "site", (*key, f"#{seen[key]}"))))
    return found


def findings_of(
    check: str, verdict: str, message: Mapping[str, Json], evidence: Json, headlines: Headlines | None = None
) -> tuple[Fingerprint, ...]:
    """The findings of one result (``message`` as in :meth:`Msg.to_dict`), in a stable order,
    each with the headline figure ``headlines`` (the check's, by message id) declares.

    A ``pass`` has none. Located checks give the message's id, then their places (the
    message's own parameters, such as the first place found, would move when a place is
    added); every other check gives what :func:`_split` finds in its message.
    """
    if verdict == "pass":
        return ()
    declared: Headlines = headlines or {}
    sites = [f for _, f in located(check, evidence)] if isinstance(evidence, Mapping) else []
    if sites:
        found = [Fingerprint(check, str(message["id"]), (), *_headline(message, declared)), *sites]
    else:
        found = _split(check, message, declared)
    unique: dict[str, Fingerprint] = {}
    for item in found:
        unique.setdefault(item.fingerprint, item)
    return tuple(unique.values())
