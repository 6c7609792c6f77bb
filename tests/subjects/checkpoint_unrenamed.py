"""The corrected head without its rename hook: ``compat.checkpoint`` must fail.

head.py's ``mixed_attn.local_self_attn.*`` keys are left over next to the missing
``light_attn.*`` ones, the same tensors under another name: a mapping a fix can give
(``checkpoint_redesigned`` has it: only its redesigned gate is left over).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from headaudit.reference import head_fixed as _fixed
from headaudit.reference.head_fixed import HeadOptimal


class _PlainBlock(_fixed.MixedAttentionBlockOptimal):
    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        nn.Module._load_from_state_dict(self, *args, **kwargs)


class Head(_fixed.Head):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mixed_attn.__class__ = _PlainBlock


__all__ = ["Head", "HeadOptimal"]
