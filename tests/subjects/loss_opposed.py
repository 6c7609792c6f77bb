"""A baseline whose contrastive term is minus its diversity term: they conflict in every state."""

from __future__ import annotations

from headaudit.reference.head import Head as _Base


class Head(_Base):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        loss = self.proto_loss_fn
        original = loss.forward

        def forward(*f_args, **f_kwargs):  # type: ignore[no-untyped-def]
            terms = original(*f_args, **f_kwargs)
            terms["contrastive_loss"] = -terms["div_loss"]
            return terms

        loss.forward = forward  # type: ignore[method-assign]
