"""The unit of measurement: one training step, or one forward pass, as a closure.

BENCH.md defines the step: ``zero_grad(set_to_none=True)``, forward in train mode with
labels, ``loss.backward()``. Forward-only is measured separately, in eval mode under
``torch.no_grad()`` (inference as a deployed model runs it).

A head reaches the bench as a :data:`HeadFactory`: ``factory(num_classes, emb_dim)``
returns a built module. The factory decides everything else (heads, prototypes, image
feature width, dropout); :func:`head_factory` makes one from a head class with dropout
off, which is what timing needs (dropout adds random-number kernels that depend on
nothing the head decides). How the loss is read from the forward's return value is a
:data:`LossFn`; the default takes element ``[1]`` (both references return
``(logits, loss, ...)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from headaudit.bench.results import GridPoint, Kind

__all__ = [
    "HeadFactory",
    "LossFn",
    "Step",
    "StepInputs",
    "build_head",
    "covering_labels",
    "default_loss",
    "forward_step",
    "head_factory",
    "make_inputs",
    "make_step",
    "reference_factories",
    "train_step",
]

#: ``factory(num_classes, emb_dim) -> built head``.
HeadFactory = Callable[[int, int], nn.Module]
#: Reads the loss tensor from whatever the head's forward returned.
LossFn = Callable[[Any], torch.Tensor]
#: A step closure: runs one step, returns nothing.
Step = Callable[[], None]


def default_loss(output: Any) -> torch.Tensor:
    """Element ``[1]`` of the forward's return: ``(logits, loss)`` or ``(logits, loss, loss_dict)``."""
    loss = output[1]
    if not isinstance(loss, torch.Tensor):
        raise TypeError(f"element [1] of the forward's return is {type(loss).__name__}, not a loss tensor")
    return loss


@dataclass(frozen=True)
class StepInputs:
    """The three forward inputs of one grid point, on one device."""

    pool_img_features: torch.Tensor
    img_features: torch.Tensor
    labels: torch.Tensor
    point: GridPoint


def covering_labels(batch: int, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """``(batch,)`` int64 labels in a seeded random order that cover every class when
    ``batch >= num_classes`` (class ``c`` appears ``batch // num_classes`` or one more
    times), so every per-class loop of the loss runs and counts do not depend on luck."""
    labels = torch.arange(batch, dtype=torch.int64) % num_classes
    return labels[torch.randperm(batch, generator=generator)]


def make_inputs(
    point: GridPoint, *, device: str | torch.device = "cpu", seed: int = 0, dtype: torch.dtype = torch.float32
) -> StepInputs:
    """Seeded random inputs for ``point``: drawn on the CPU with their own generator (the
    same numbers on every device, the global RNG untouched), then moved to ``device``."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    pool = torch.randn(point.batch, point.patches, point.img_feat_dim, generator=gen, dtype=dtype)
    img = torch.randn(point.batch, point.img_feat_dim, generator=gen, dtype=dtype)
    labels = covering_labels(point.batch, point.num_classes, gen)
    return StepInputs(pool.to(device), img.to(device), labels.to(device), point)


def build_head(
    factory: HeadFactory, point: GridPoint, *, device: str | torch.device = "cpu", seed: int = 0
) -> nn.Module:
    """``factory(point.num_classes, point.emb_dim)`` under a forked global RNG seeded with
    ``seed`` (the same parameters on every call; the caller's RNG state is left as it
    was), moved to ``device``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = factory(point.num_classes, point.emb_dim)
    if not isinstance(head, nn.Module):
        raise TypeError(f"the head factory returned {type(head).__name__}, not a torch.nn.Module")
    return head.to(device)


def train_step(head: nn.Module, inputs: StepInputs, loss_fn: LossFn = default_loss) -> Step:
    """A training step closure. Puts ``head`` in train mode NOW (not on every call, which
    would time ``Module.train`` too): build the closure right before using it.

    The loss may have shape ``(1,)`` (the references' uncertainty weights are ``(1,)``
    parameters), so ``.sum()`` makes it a scalar for ``backward``.
    """
    head.train()
    pool, img, labels = inputs.pool_img_features, inputs.img_features, inputs.labels

    def step() -> None:
        head.zero_grad(set_to_none=True)
        loss_fn(head(pool, img, labels)).sum().backward()

    return step


def forward_step(head: nn.Module, inputs: StepInputs) -> Step:
    """A forward-only closure: eval mode (set NOW), ``torch.no_grad()``, no labels."""
    head.eval()
    pool, img = inputs.pool_img_features, inputs.img_features

    def step() -> None:
        with torch.no_grad():
            head(pool, img)

    return step


def make_step(kind: Kind, head: nn.Module, inputs: StepInputs, loss_fn: LossFn = default_loss) -> Step:
    """:func:`train_step` or :func:`forward_step` by ``kind``."""
    if kind == "train":
        return train_step(head, inputs, loss_fn)
    if kind == "forward":
        return forward_step(head, inputs)
    raise ValueError(f"unknown step kind {kind!r}; use 'train' or 'forward'")


def head_factory(cls: Callable[..., nn.Module], *, num_heads: int = 8, **kwargs: Any) -> HeadFactory:
    """A factory for a head class with the references' constructor
    ``cls(num_classes, emb_dim, num_heads, img_feat_dim, ..., dropout_rate=...)``.

    ``img_feat_dim`` is ``emb_dim``, as in :meth:`GridPoint.of` (a factory with another
    width needs grid points built with that ``img_feat_dim``); ``dropout_rate`` defaults
    to ``0.0``; other keywords pass through. ``num_heads`` must divide every ``emb_dim``
    used (8 divides 256 and 768).
    """
    kwargs.setdefault("dropout_rate", 0.0)

    def factory(num_classes: int, emb_dim: int) -> nn.Module:
        return cls(num_classes, emb_dim, num_heads, emb_dim, **kwargs)

    factory.__qualname__ = f"head_factory({getattr(cls, '__qualname__', cls)!s})"
    return factory


def reference_factories(*, num_heads: int = 8) -> dict[str, HeadFactory]:
    """``{"head.py": Head, "head_optimal.py": HeadOptimal}`` from the bundled references,
    dropout off; ``head.py`` first (it is the reference the ratios divide by)."""
    from headaudit.reference.head import Head
    from headaudit.reference.head_optimal import HeadOptimal

    return {
        "head.py": head_factory(Head, num_heads=num_heads),
        "head_optimal.py": head_factory(HeadOptimal, num_heads=num_heads),
    }
