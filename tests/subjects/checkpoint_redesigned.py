"""The corrected head (``reference/head_fixed.py``) as a hand-made subject for ``compat.checkpoint``.

Its load hooks map head.py's renamed keys (``local_self_attn`` -> ``light_attn``) and
consume head.py's EMA cache buffers; what is left of a head.py checkpoint is the old
gate, a submodule of another structure under the same name. No mapping can carry those
weights, and strict loading still raises: ``compat.checkpoint`` must ``fail`` naming the
gate's keys under their submodules, with the submodules in ``changed_modules`` (claim
2.2's text then says that part of the gap is one no fix can give).
"""

from __future__ import annotations

from headaudit.reference.head_fixed import Head, HeadOptimal

__all__ = ["Head", "HeadOptimal"]
