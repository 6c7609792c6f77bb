"""Strategies and helpers shared by the component-contract areas (forward, loss, attn, manager).

Every contract measures a head that is seeded, built small (dropout 0, eval unless a
check is about training), given an exact layout of valid rows through the public buffers
(:func:`~headaudit.adapters.set_counts`, so ``valid_mask``, ``protos_per_class`` and
``get_prototype_indices()`` always agree, as in every state a head can reach), and whose
parameters are moved off their initialisation (:func:`~headaudit.checks._oracles.perturb`)
so that parts which are equal at init (two LayerNorms, two log sigmas) are told apart.
"""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import strategies as st

from headaudit.adapters import Head, set_counts
from headaudit.checks._common import Layout
from headaudit.checks._oracles import perturb
from headaudit.context import Context

__all__ = ["build_contract_head", "contract_layouts", "features", "logits_of"]


@st.composite
def contract_layouts(
    draw: st.DrawFn, max_classes: int = 5, max_per_class: int = 4, min_count: int = 1, min_classes: int = 2
) -> Layout:
    """Layouts for the contracts: ``min_classes``-``max_classes`` classes, every count >= ``min_count``."""
    num_classes = draw(st.integers(min_classes, max_classes))
    per_class = draw(st.integers(max(1, min_count), max_per_class))
    counts = draw(st.lists(st.integers(min_count, per_class), min_size=num_classes, max_size=num_classes))
    return Layout(num_classes, per_class, tuple(counts))


def build_contract_head(
    ctx: Context,
    layout: Layout,
    salt: int,
    *,
    emb_dim: int = 8,
    img_feat_dim: int | None = None,
    perturbed: bool = True,
    train: bool = False,
    **settings: Any,
) -> tuple[Head, Layout]:
    """A seeded head with exactly ``layout``'s valid rows (clipped to the head's own capacity)."""
    torch.manual_seed(ctx.seed * 7_919 + salt)
    head = ctx.build(
        num_classes=layout.num_classes,
        emb_dim=emb_dim,
        img_feat_dim=img_feat_dim,
        num_prototypes=1,
        max_prototypes=layout.max_prototypes,
        train=train,
        **settings,
    )
    per_class = int(ctx.get(head, "proto_manager.max_prototypes"))
    built = Layout(layout.num_classes, per_class, tuple(min(k, per_class) for k in layout.counts))
    set_counts(ctx, head, built.counts)
    if perturbed:
        perturb(head, ctx.generator(50_000 + salt))
    return head, built


def features(
    ctx: Context, salt: int, batch: int, patches: int, dim: int, tokens: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded ``pool_img_features (B, N, D)`` and ``img_features`` (``(B, D)``, or ``(B, T, D)`` for ``tokens``)."""
    gen = ctx.generator(90_000 + salt)
    pool = torch.randn(batch, patches, dim, generator=gen)
    img = torch.randn(batch, tokens, dim, generator=gen) if tokens else torch.randn(batch, dim, generator=gen)
    return pool, img


def logits_of(out: Any) -> Any:
    """The logits of a forward's result: its first value when it returns a tuple."""
    return out[0] if isinstance(out, (tuple, list)) and out else out
