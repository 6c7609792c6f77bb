"""The check registry: every area module's ``CHECKS`` tuple, in catalogue order."""

from __future__ import annotations

from headaudit.checks import contrastive, ema, gate, losses
from headaudit.registry import Check, build_registry

__all__ = ["REGISTRY", "by_id"]

REGISTRY: tuple[Check, ...] = build_registry(contrastive.CHECKS, gate.CHECKS, ema.CHECKS, losses.CHECKS)


def by_id(check_id: str) -> Check | None:
    """The registered check with this id, or None."""
    return next((c for c in REGISTRY if c.id == check_id), None)
