"""A draft whose class embeddings (the prototype rows) are a plain tensor attribute.

``proto_manager.prototypes`` is neither an ``nn.Parameter`` nor a registered buffer: the
optimiser never sees it, ``state_dict`` never saves it, ``.to()`` never moves it. Not a
working head: every check that runs it is ``error`` naming the attribute, never a pass.
"""

from __future__ import annotations

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        rows = self.proto_manager.prototypes.detach().clone()
        del self.proto_manager.prototypes
        self.proto_manager.prototypes = rows.requires_grad_(True)  # a plain tensor, not registered
