"""The corrected head without the hook that consumes head.py's EMA cache: ``compat.checkpoint`` must fail.

The renames are mapped, but ``proto_manager.momentum_cache`` and ``cache_count`` of a
head.py checkpoint are unexpected keys: buffers (state) the head could keep or consume,
not weights of a redesigned submodule.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from headaudit.reference import head_fixed as _fixed
from headaudit.reference.head_fixed import HeadOptimal


class _PlainManager(_fixed.DynamicPrototypeManagerOptimal):
    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        nn.Module._load_from_state_dict(self, *args, **kwargs)


class Head(_fixed.Head):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.proto_manager.__class__ = _PlainManager


__all__ = ["Head", "HeadOptimal"]
