"""``[tool.headaudit]`` in the user's ``pyproject.toml``: the audit's defaults for a project.

The nearest ``pyproject.toml`` up from the working directory that exists is read (as
ruff and pytest look for theirs). Its ``[tool.headaudit]`` table may set::

    [tool.headaudit]
    baseline = "src/heads/head.py"          # subjects: PATH[:CLASS] or MODULE[:CLASS]
    candidate = "src/heads/head_v2.py:HeadOptimal"
    host = "src/models_mae.py"              # also: wrapper, control
    lang = "en"                             # en or zh
    seed = 0
    profile = "ci"                          # ci, dev or thorough
    expect = "audit.json"                   # the recorded report of `headaudit check`
    timeout = 120                           # seconds per check and subject
    jobs = 2                                # worker processes (default: one per core; 1: serial)
    train = true                            # add the training section (as report --train)

    [tool.headaudit.map]                    # renamed parts, as --map
    "proto_manager.momentum_update" = "proto_manager.momentum_update_fixed"

File paths are relative to the folder of that ``pyproject.toml``, so the same table works
from any subfolder. Flags win over the table; ``HYPOTHESIS_PROFILE`` wins over its
``profile``. An unknown key or a value of the wrong type is refused with one line (exit
2), naming the file: a typo must not silently audit the bundled heads instead.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headaudit.errors import ConfigError
from headaudit.names import parse_map

__all__ = ["KEYS", "ProjectConfig", "find_config"]

#: The keys of ``[tool.headaudit]`` and the type each takes (``map`` is the name-map table).
KEYS: dict[str, tuple[type, ...]] = {
    "baseline": (str,),
    "candidate": (str,),
    "control": (str,),
    "host": (str,),
    "wrapper": (str,),
    "lang": (str,),
    "seed": (int,),
    "profile": (str,),
    "expect": (str,),
    "timeout": (int, float),
    "jobs": (int,),
    "train": (bool,),
}
_SUBJECTS = ("baseline", "candidate", "control", "host", "wrapper")
_CHOICES = {"lang": ("en", "zh"), "profile": ("ci", "dev", "thorough")}


@dataclass(frozen=True)
class ProjectConfig:
    """What the nearest ``pyproject.toml`` says (``path`` None: there is none)."""

    path: Path | None = None
    values: Mapping[str, Any] = field(default_factory=dict)
    maps: tuple[tuple[str, str], ...] = ()

    def get(self, key: str) -> Any:
        return self.values.get(key)


def _local(folder: Path, spec: str) -> str:
    """A file spec (``PATH[:CLASS]``) relative to the config's folder made absolute; module
    specs (``pkg.heads:Head``) and ``none`` unchanged."""
    target, sep, cls = spec.rpartition(":")
    if not sep or not cls.isidentifier():
        target, sep, cls = spec, "", ""
    if spec.lower() != "none" and (target.endswith(".py") or "/" in target):
        path = Path(target)
        target = str(path if path.is_absolute() else folder / path)
    return f"{target}{sep}{cls}"


def _read(path: Path) -> ProjectConfig:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix it or run from another folder") from None
    table = data.get("tool", {}).get("headaudit", {})
    if not isinstance(table, dict):
        raise ConfigError(f"[tool.headaudit] in {path} must be a table")
    maps_table = table.get("map", {})
    if not isinstance(maps_table, dict) or not all(isinstance(v, str) for v in maps_table.values()):
        raise ConfigError(f'[tool.headaudit.map] in {path} must map names to names ("a.b" = "a.c")')
    maps = parse_map((f"{k}={v}" for k, v in maps_table.items()), origin=f"[tool.headaudit.map] in {path}")
    values: dict[str, Any] = {}
    for key, given in table.items():
        if key == "map":
            continue
        if key not in KEYS:
            known = ", ".join([*sorted(KEYS), "map"])
            raise ConfigError(f"unknown key {key!r} in [tool.headaudit] of {path}; known: {known}")
        types = KEYS[key]
        value: Any = given
        if (isinstance(given, bool) and bool not in types) or not isinstance(given, types):
            wanted = " or ".join(t.__name__ for t in types)
            raise ConfigError(f"{key} in [tool.headaudit] of {path} must be {wanted}, got {value!r}")
        if key in _CHOICES and value not in _CHOICES[key]:
            raise ConfigError(f"{key} = {value!r} in [tool.headaudit] of {path}; use one of {', '.join(_CHOICES[key])}")
        if key == "seed" and not 0 <= value < 2**32:
            raise ConfigError(f"seed = {value} in [tool.headaudit] of {path} is outside 0..2**32-1")
        if key == "timeout" and not value > 0:
            raise ConfigError(f"timeout = {value} in [tool.headaudit] of {path} must be more than 0 seconds")
        if key == "jobs" and not value >= 1:
            raise ConfigError(f"jobs = {value} in [tool.headaudit] of {path} must be 1 (serial) or more")
        if key in _SUBJECTS:
            value = _local(path.parent, value)
        elif key == "expect":
            value = str(path.parent / value) if not Path(value).is_absolute() else value
        values[key] = value
    return ProjectConfig(path, values, maps)


def find_config(start: Path) -> ProjectConfig:
    """``[tool.headaudit]`` of the nearest ``pyproject.toml`` up from ``start`` (empty if none)."""
    for folder in (start, *start.parents):
        path = folder / "pyproject.toml"
        if path.is_file():
            return _read(path)
    return ProjectConfig()
