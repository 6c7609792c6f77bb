"""The check registry: every area module's ``CHECKS`` tuple, in catalogue order.

Each public module of this package is an area of the catalogue. It ends with a tuple
``CHECKS`` and sets ``ORDER``, an int that places its checks in the registry (and so in
reports): 1xx theory (section 1), 2xx engineering (section 2), 3xx what the original
report missed and the component contracts (section 3), 4xx performance (section 4). A new
area is a new module; nothing here changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Any

from headaudit.errors import CheckDefinitionError
from headaudit.registry import Check, build_registry

__all__ = ["REGISTRY", "areas", "by_id"]


def areas() -> list[ModuleType]:
    """The area modules, in ``ORDER``."""
    modules = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        order, checks = getattr(module, "ORDER", None), getattr(module, "CHECKS", None)
        if not isinstance(order, int) or not isinstance(checks, tuple):
            raise CheckDefinitionError(f"check area {module.__name__} needs an int ORDER and a tuple CHECKS")
        modules.append(module)
    return sorted(modules, key=lambda m: (m.ORDER, m.__name__))


REGISTRY: tuple[Check[Any], ...] = build_registry(*(m.CHECKS for m in areas()))


def by_id(check_id: str) -> Check[Any] | None:
    """The registered check with this id, or None."""
    return next((c for c in REGISTRY if c.id == check_id), None)
