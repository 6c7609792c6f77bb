"""A head whose attention block has no norm1/norm2/norm3: the gate checks cannot hook it."""

from __future__ import annotations

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        block = self.mixed_attn
        block.branch_norms = [block.norm1, block.norm2, block.norm3]
        del block.norm1, block.norm2, block.norm3
