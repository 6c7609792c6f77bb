"""The names a check touches on a subject, declared up front and resolved before it runs.

A check declares every name it reads or calls on a head as a string:

- ``"proto_manager.momentum_update"``: an attribute path from the head;
- ``"proto_loss_fn[contrastive_loss]"``: a key of the dict that calling ``proto_loss_fn``
  returns (``forward[ce_loss]``: a key of the loss dict the head's training forward
  returns);
- ``"module:Head"``: a module-level name of the subject's file (a class, a function), for
  checks that use more of the file than its head class (the compatibility ``Head`` beside
  ``HeadOptimal``);
- ``"a|b"``: alternatives, one of which must exist (the two files spell some names
  differently: ``proto_manager.expand_prototype|proto_manager.expand_prototypes``);
- ``"?name"``: optional; the check uses it where present and says so where not.

Users whose copies renamed a part map canonical names to theirs
(``--map proto_manager.momentum_update=proto_manager.momentum_update_fixed``, or a
``[tool.headaudit.map]`` table in ``pyproject.toml``; ``module:Head=module:LegacyHead`` for
a module-level name). A map applies to the longest
matching prefix of dotted segments, so ``proto_manager=prototypes`` moves every name
under it. A name that is missing after mapping gives ``n/a`` naming it, with the closest
existing name as a suggestion.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from headaudit.errors import CheckDefinitionError, ConfigError

__all__ = [
    "KEY_SOURCES",
    "Missing",
    "NameMap",
    "Need",
    "closest",
    "parse_map",
    "parse_needs",
    "split_module",
    "walk",
]

#: Where a ``[key]`` name is looked up: the dict returned by ``proto_loss_fn`` and the
#: loss dict returned by the head's training ``forward``.
KEY_SOURCES = ("proto_loss_fn", "forward")

_SEGMENT = r"[A-Za-z_][A-Za-z0-9_]*"
_ATTR = re.compile(rf"^{_SEGMENT}(\.{_SEGMENT})*$")
_KEY = re.compile(rf"^({_SEGMENT})\[([A-Za-z0-9_.-]+)\]$")
_MODULE = re.compile(rf"^module:({_SEGMENT})$")


def _valid_name(name: str) -> bool:
    match = _KEY.match(name)
    if match:
        return match.group(1) in KEY_SOURCES
    return bool(_ATTR.match(name) or _MODULE.match(name))


def _kind(name: str) -> str:
    return "key" if _KEY.match(name) else "module" if _MODULE.match(name) else "attribute"


@dataclass(frozen=True)
class Need:
    """One declared requirement: a name or alternatives of which one must exist."""

    alternatives: tuple[str, ...]
    optional: bool = False

    @property
    def label(self) -> str:
        return " or ".join(f"`{a}`" for a in self.alternatives)


def parse_needs(check_id: str, specs: Iterable[str]) -> tuple[Need, ...]:
    """Parse a check's ``needs`` strings; a malformed one fails at import naming the check."""
    needs = []
    for spec in specs:
        optional = spec.startswith("?")
        alternatives = tuple(a.strip() for a in spec.lstrip("?").split("|"))
        for name in alternatives:
            if not _valid_name(name):
                raise CheckDefinitionError(
                    f"check {check_id!r}: need {spec!r} is not 'a.b', 'source[key]' (source in {KEY_SOURCES}), "
                    "'module:Name', 'a|b' or '?a'"
                )
        needs.append(Need(alternatives, optional))
    return tuple(needs)


def split_key(name: str) -> tuple[str, str] | None:
    """``("proto_loss_fn", "cluster_loss")`` for ``"proto_loss_fn[cluster_loss]"``, else None."""
    match = _KEY.match(name)
    return (match.group(1), match.group(2)) if match else None


def split_module(name: str) -> str | None:
    """``"Head"`` for ``"module:Head"`` (a module-level name of the subject's file), else None."""
    match = _MODULE.match(name)
    return match.group(1) if match else None


@dataclass(frozen=True)
class NameMap:
    """Canonical name -> the subject's own name, from ``--map`` and ``pyproject.toml``."""

    entries: tuple[tuple[str, str], ...] = ()

    def apply(self, name: str) -> str:
        """The subject's name for a canonical attribute path or ``source[key]`` name."""
        if _kind(name) != "attribute":  # keys and module-level names map exactly
            return dict(self.entries).get(name, name)
        parts = name.split(".")
        mapping = {k: v for k, v in self.entries if _kind(k) == "attribute"}
        for cut in range(len(parts), 0, -1):
            prefix = ".".join(parts[:cut])
            if prefix in mapping:
                return ".".join([mapping[prefix], *parts[cut:]])
        return name

    def as_args(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.entries]


def parse_map(items: Iterable[str], origin: str = "--map") -> tuple[tuple[str, str], ...]:
    """Parse ``CANONICAL=THEIRS`` items; malformed ones raise ConfigError saying what to write."""
    out: list[tuple[str, str]] = []
    for item in items:
        canonical, sep, theirs = item.partition("=")
        canonical, theirs = canonical.strip(), theirs.strip()
        if not sep or not _valid_name(canonical) or not _valid_name(theirs):
            raise ConfigError(
                f"{origin} entry {item!r} is not CANONICAL=THEIRS with dotted, source[key] or module:Name names, e.g. "
                "proto_manager.momentum_update=proto_manager.momentum_update_fixed"
            )
        if _kind(canonical) != _kind(theirs):
            raise ConfigError(
                f"{origin} entry {item!r} maps a {_kind(canonical)} name to a {_kind(theirs)} name; "
                "map attributes to attributes, source[key] to source[key], module:Name to module:Name"
            )
        earlier = next((t for c, t in out if c == canonical), None)
        if earlier is not None and earlier != theirs:
            raise ConfigError(
                f"{origin} maps {canonical!r} twice ({earlier!r} and {theirs!r}); give one target per name"
            )
        out.append((canonical, theirs))
    return tuple(dict.fromkeys(out))


def _names_on(obj: Any) -> list[str]:
    names = {n for n in dir(obj) if not n.startswith("_")}
    for table in ("_modules", "_parameters", "_buffers"):
        names.update(getattr(obj, "__dict__", {}).get(table, {}) or {})
    return sorted(names)


#: Affixes most names of a part share (every term ends in ``_loss``; ``compute_*`` methods):
#: two names sharing one are told apart by the rest.
_GENERIC_PREFIXES = ("compute_",)
_GENERIC_SUFFIXES = ("_loss",)


def _distinct(word: str, other: str) -> tuple[str, str]:
    """The two names without a generic affix they share, where both keep something
    (``compute_contrastive_loss`` vs ``compute_cluster_loss`` are compared as
    ``contrastive`` vs ``cluster``)."""
    for prefix in _GENERIC_PREFIXES:
        if word.startswith(prefix) and other.startswith(prefix) and word != prefix and other != prefix:
            word, other = word.removeprefix(prefix), other.removeprefix(prefix)
    for suffix in _GENERIC_SUFFIXES:
        if word.endswith(suffix) and other.endswith(suffix) and word != suffix and other != suffix:
            word, other = word.removesuffix(suffix), other.removesuffix(suffix)
    return word, other


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like ``word``, or None.

    Likeness is difflib's ratio (at least 0.6) on what tells the names apart: a generic
    affix both share (``compute_``, ``_loss``) is set aside first, so ``div_loss`` is not
    offered for ``sep_loss`` nor ``compute_cluster_loss`` for ``compute_contrastive_loss``.
    """
    best, score = None, 0.6
    for candidate in sorted(set(candidates)):
        ratio = difflib.SequenceMatcher(None, *_distinct(word, candidate)).ratio()
        if ratio > score or (ratio == score and best is None):
            best, score = candidate, ratio
    return best


@dataclass(frozen=True)
class Missing:
    """A declared name the subject lacks: what was looked for and the nearest thing there is."""

    name: str  # canonical
    looked_for: str  # after the user's maps
    suggestion: str | None

    def to_dict(self) -> dict[str, str | None]:
        return {"name": self.name, "looked_for": self.looked_for, "suggestion": self.suggestion}


def walk(obj: Any, path: str) -> tuple[bool, Any, str | None]:
    """Follow ``path`` from ``obj``: ``(found, value, suggestion for the first missing segment)``.

    An attribute whose value is None counts as absent.
    """
    parts = path.split(".")
    for i, part in enumerate(parts):
        parent = obj
        try:
            obj = getattr(parent, part)
        except Exception:  # absent, or a property of the subject that raises
            obj = None
        if obj is None:  # `name = None` is how a subclass drops an inherited part
            present = [n for n in _names_on(parent) if n != part and getattr(parent, n, None) is not None]
            near = closest(part, present)
            return False, None, ".".join([*parts[:i], near]) if near else None
    return True, obj, None


def missing_key(source: str, key: str, keys: Mapping[str, Any] | Iterable[str]) -> str | None:
    """The nearest existing ``source[key]`` name to a missing key, or None."""
    near = closest(key, list(keys))
    return f"{source}[{near}]" if near else None
