"""User-facing sentences as data: one catalogue per language, keyed by message id.

Code never holds a sentence. A check's verdict carries a :class:`Msg`, an id with named
parameters (numbers, strings, lists, or nested messages); a renderer turns it into text
with :func:`render` in the language it is writing. The catalogues are
``headaudit/locale/<lang>/<area>.toml``: each TOML table is an id prefix, each key inside it the
rest of the id, so ``["contrastive.pairs"] title = "..."`` defines the id
``contrastive.pairs.title``. Each area has its own file per language
(``locale/en/ema.toml`` beside ``locale/zh/ema.toml``).

Placeholders use :meth:`str.format` syntax with names (``{change:.4g}``). The formatter
is forgiving where evidence encoding demands it: a number frozen as ``"nan"`` or
``"inf"`` renders as that word whatever the format spec, a list renders as its items
joined by ", " (each formatted with the spec), and a nested :class:`Msg` renders in the
same language. Every id exists in every language with the same placeholders (a test
proves it), so a missing translation is a failing test, not a half-English report.

Nothing here imports torch.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["LANGS", "Msg", "catalogue", "has", "msg_from_dict", "placeholders", "render", "render_value"]

LANGS: tuple[str, ...] = ("en", "zh")

Json = Any


@dataclass(frozen=True)
class Msg:
    """A sentence by id, with the values to fill in (language-neutral)."""

    id: str
    params: Mapping[str, Json] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Json]:
        return {"id": self.id, "params": {k: _param_to_json(v) for k, v in sorted(self.params.items())}}

    def text(self, lang: str) -> str:
        return render(self, lang)


def _param_to_json(value: Json) -> Json:
    if isinstance(value, Msg):
        return {"msg": value.to_dict()}
    if isinstance(value, (list, tuple)):
        return [_param_to_json(v) for v in value]
    return value


def _param_from_json(value: Json) -> Json:
    if isinstance(value, dict) and set(value) == {"msg"}:
        return msg_from_dict(value["msg"])
    if isinstance(value, list):
        return [_param_from_json(v) for v in value]
    return value


def msg_from_dict(data: Mapping[str, Json]) -> Msg:
    """The :class:`Msg` that :meth:`Msg.to_dict` wrote."""
    return Msg(str(data["id"]), {k: _param_from_json(v) for k, v in dict(data.get("params", {})).items()})


def _flatten(table: Mapping[str, Any], prefix: str, out: dict[str, str]) -> None:
    for key, value in table.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            _flatten(value, name, out)
        elif isinstance(value, str):
            out[name] = value
        else:
            raise ValueError(f"locale entry {name!r} is {type(value).__name__}, not text")


@cache
def catalogue(lang: str) -> Mapping[str, str]:
    """All sentences of ``lang`` by id, read once from ``headaudit/locale/<lang>/*.toml``.

    One file per area (``ema.toml``, ``report.toml``, ...); an id defined in two files is
    an error naming both.
    """
    if lang not in LANGS:
        raise ValueError(f"language {lang!r} is not one of {LANGS}")
    folder = resources.files("headaudit").joinpath("locale", lang)
    out: dict[str, str] = {}
    where: dict[str, str] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        part: dict[str, str] = {}
        _flatten(tomllib.loads(entry.read_text(encoding="utf-8")), "", part)
        for key in part:
            if key in out:
                raise ValueError(f"message id {key!r} is defined in both {where[key]} and {entry.name} ({lang})")
            where[key] = entry.name
        out.update(part)
    return out


def has(msg_id: str) -> bool:
    """True when every language defines ``msg_id``."""
    return all(msg_id in catalogue(lang) for lang in LANGS)


def placeholders(template: str) -> frozenset[str]:
    """The field names a template uses (``{change:.4g}`` -> ``change``)."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)


class _Formatter(string.Formatter):
    def __init__(self, lang: str) -> None:
        self.lang = lang

    def format_field(self, value: Any, format_spec: str) -> str:
        return render_value(value, self.lang, format_spec)


def render_value(value: Json, lang: str, spec: str = "") -> str:
    """One parameter as text: nested messages, lists, and frozen non-finite numbers handled."""
    if isinstance(value, Msg):
        return render(value, lang)
    if isinstance(value, (list, tuple)):
        sep = "、" if lang == "zh" and all(isinstance(v, Msg) for v in value) and value else ", "
        return sep.join(render_value(v, lang, spec) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return value
    if spec and isinstance(value, (int, float)):
        return format(value, spec)
    return str(value)


def render(msg: Msg, lang: str) -> str:
    """``msg`` in ``lang``; a missing id or placeholder raises KeyError naming it."""
    template = catalogue(lang).get(msg.id)
    if template is None:
        raise KeyError(f"message id {msg.id!r} is missing from the {lang!r} catalogue")
    return _Formatter(lang).vformat(template, (), dict(msg.params))
