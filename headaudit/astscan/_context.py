"""What the worklist and the frames share: a function's context and the worklist's interface.

:class:`_Ctx` is one function analysed in one context (keyed by :data:`_CtxKey`: defining
class, function name, class of ``self``), :data:`_Edge` a call a frame found, and
:class:`_Worklist` the three things a frame asks of the worklist (the index, the tags of
``self.<attr>``, a function's return tags). ``_infer`` and ``_frame`` use these and
``_analysis`` implements :class:`_Worklist`, so no module here imports ``_analysis`` back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from headaudit.astscan._records import Finding
from headaudit.astscan._source import _FuncDef, _Index
from headaudit.astscan._tags import _EMPTY, Tags

_CtxKey = tuple[str | None, str, str | None]  # (defining class, function name, class of self)
_Edge = tuple[_CtxKey, _FuncDef, dict[str, Tags], int]


@dataclass
class _Ctx:
    key: _CtxKey
    fn: _FuncDef
    params: dict[str, Tags]
    depth: int
    via: str
    root: bool = False
    ret: Tags = _EMPTY
    findings: tuple[Finding, ...] = ()


class _Worklist(Protocol):
    """What a frame asks of the interprocedural worklist (``_analysis._Analysis``)."""

    index: _Index

    def facts(self, cls: str) -> dict[str, Tags]:
        """Tags of ``self.<attr>`` for an instance of ``cls``."""
        ...

    def ret_of(self, key: _CtxKey, fn: _FuncDef) -> Tags:
        """The return tags of ``fn`` in the context ``key``, as far as they are known."""
        ...
