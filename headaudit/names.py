"""The names a check touches on a subject, declared up front and resolved before it runs.

A check declares every name it reads or calls on a head as a string:

- ``"proto_manager.momentum_update"``: an attribute path from the head;
- ``"proto_loss_fn[contrastive_loss]"``: a key of the dict that calling ``proto_loss_fn``
  returns (``forward[ce_loss]``: a key of the loss dict the head's training forward
  returns);
- ``"module:Head"``: a module-level name of the subject's file (a class, a function), for
  checks that use more of the file than its head class (the compatibility ``Head`` beside
  ``HeadOptimal``);
- ``"forward.labels"``: a parameter of the head's ``forward``, for checks that pass it by
  keyword (BEHAVIOR.md's ``forward(pool_img_features, img_features, labels=None)``). It is
  present when ``forward``'s signature names it (or takes ``**kwargs``); checks call with
  the subject's own name (:meth:`headaudit.context.Context.parameter`);
- ``"a|b"``: alternatives, one of which must exist (the two files spell some names
  differently: ``proto_manager.expand_prototype|proto_manager.expand_prototypes``);
- ``"?name"``: optional; the check uses it where present and says so where not.

Users whose copies renamed a part map canonical names to theirs
(``--map proto_manager.momentum_update=proto_manager.momentum_update_fixed``, or a
``[tool.headaudit.map]`` table in ``pyproject.toml``; ``module:Head=module:LegacyHead`` for
a module-level name; ``forward.labels=targets`` for a parameter). A map applies to the longest
matching prefix of dotted segments, so ``proto_manager=prototypes`` moves every name
under it. A name that is missing after mapping gives ``n/a`` naming it, with the closest
existing name as a suggestion.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from headaudit.errors import CheckDefinitionError, ConfigError

__all__ = [
    "FORWARD_PARAMETERS",
    "KEY_SOURCES",
    "Missing",
    "NameMap",
    "Need",
    "closest",
    "forward_parameters",
    "labels_keyword",
    "missing_parameter",
    "parse_map",
    "parse_needs",
    "split_module",
    "split_parameter",
    "walk",
]

#: Where a ``[key]`` name is looked up: the dict returned by ``proto_loss_fn`` and the
#: loss dict returned by the head's training ``forward``.
KEY_SOURCES = ("proto_loss_fn", "forward")

_SEGMENT = r"[A-Za-z_][A-Za-z0-9_]*"
_ATTR = re.compile(rf"^{_SEGMENT}(\.{_SEGMENT})*$")
_KEY = re.compile(rf"^({_SEGMENT})\[([A-Za-z0-9_.-]+)\]$")
_MODULE = re.compile(rf"^module:({_SEGMENT})$")
#: A parameter of the head's forward: ``forward.labels`` (``forward`` is a method, so no
#: attribute path goes through it).
_PARAMETER = re.compile(rf"^forward\.({_SEGMENT})$")

#: The parameters of the head's ``forward`` in BEHAVIOR.md, in order: where a subject lacks
#: one by name, its parameter in the same place is the suggestion.
FORWARD_PARAMETERS = ("pool_img_features", "img_features", "labels")


def _valid_name(name: str) -> bool:
    match = _KEY.match(name)
    if match:
        return match.group(1) in KEY_SOURCES
    return bool(_ATTR.match(name) or _MODULE.match(name))


def _kind(name: str) -> str:
    if _KEY.match(name):
        return "key"
    if _MODULE.match(name):
        return "module"
    return "parameter" if _PARAMETER.match(name) else "attribute"


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
                    "'module:Name', 'forward.parameter', 'a|b' or '?a'"
                )
        needs.append(Need(alternatives, optional))
    return tuple(needs)


def split_key(name: str) -> tuple[str, str] | None:
    """``("proto_loss_fn", "cluster_loss")`` for ``"proto_loss_fn[cluster_loss]"``, else None."""
    match = _KEY.match(name)
    return (match.group(1), match.group(2)) if match else None


def split_parameter(name: str) -> str | None:
    """``"labels"`` for ``"forward.labels"`` (a parameter of the head's forward), else None."""
    match = _PARAMETER.match(name)
    return match.group(1) if match else None


def forward_parameters(forward: Any) -> tuple[tuple[str, ...], bool] | None:
    """``(names that can be passed by keyword, in order; whether it takes **kwargs)`` of a
    callable's signature, or None when it has none that can be read."""
    try:
        params = inspect.signature(forward).parameters.values()
    except (TypeError, ValueError):
        return None
    named = tuple(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    return named, any(p.kind is p.VAR_KEYWORD for p in params)


def missing_parameter(looked_for: str, present: Sequence[str], canonical: str | None = None) -> str | None:
    """The subject's ``forward.<name>`` nearest a parameter ``looked_for`` that its forward
    lacks (``present`` are the names it has, in order): the most alike by spelling, else the
    one in the place BEHAVIOR.md gives the ``canonical`` parameter (``targets`` where
    ``labels`` should be), unless that one is another of BEHAVIOR.md's parameters."""
    near = closest(looked_for, present)
    canonical = canonical or looked_for
    if near is None and canonical in FORWARD_PARAMETERS:
        place = FORWARD_PARAMETERS.index(canonical)
        if place < len(present) and present[place] not in FORWARD_PARAMETERS:
            near = present[place]
    return f"forward.{near}" if near else None


def labels_keyword(forward: Any, names: NameMap) -> str | None:
    """The keyword ``forward`` takes the labels by (``forward.labels`` after the maps), or None
    when its signature names no such parameter and takes no ``**kwargs``."""
    keyword = split_parameter(names.apply("forward.labels")) or "labels"
    signature = forward_parameters(forward)
    if signature is None or keyword in signature[0] or signature[1]:
        return keyword  # an unreadable signature is called as BEHAVIOR.md says
    return None


def split_module(name: str) -> str | None:
    """``"Head"`` for ``"module:Head"`` (a module-level name of the subject's file), else None."""
    match = _MODULE.match(name)
    return match.group(1) if match else None


@dataclass(frozen=True)
class NameMap:
    """Canonical name -> the subject's own name, from ``--map`` and ``pyproject.toml``."""

    entries: tuple[tuple[str, str], ...] = ()

    def apply(self, name: str) -> str:
        """The subject's name for a canonical attribute path, ``source[key]``, ``module:Name``
        or ``forward.parameter`` name."""
        if _kind(name) != "attribute":  # keys, module-level names and parameters map exactly
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
        if _kind(canonical) == "parameter" and re.fullmatch(_SEGMENT, theirs):
            theirs = f"forward.{theirs}"  # forward.labels=targets names the parameter alone
        if not sep or not _valid_name(canonical) or not _valid_name(theirs):
            raise ConfigError(
                f"{origin} entry {item!r} is not CANONICAL=THEIRS with dotted, source[key], module:Name or "
                "forward.parameter names, e.g. proto_manager.momentum_update=proto_manager.momentum_update_fixed "
                "or forward.labels=targets"
            )
        if _kind(canonical) != _kind(theirs):
            raise ConfigError(
                f"{origin} entry {item!r} maps a {_kind(canonical)} name to a {_kind(theirs)} name; "
                "map attributes to attributes, source[key] to source[key], module:Name to module:Name, "
                "forward.labels to a parameter name (forward.labels=targets)"
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
