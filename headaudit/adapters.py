"""One adapter per difference between head files, through declared names only.

The two files differ in shape: ``expand_prototypes`` vs ``expand_prototype``, a loss
``forward`` with or without ``max_prototypes``, per-term methods in one and inline terms
in the other, deferred (``apply_momentum_updates``) or immediate momentum updates.
Checks call these functions instead of either spelling, so the same check runs on any
copy that keeps (or maps) the names in BEHAVIOR.md. Each function states the names it
touches in a ``*_NEEDS`` tuple that checks add to their own declaration.
"""

from __future__ import annotations

import copy
import inspect
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from headaudit.context import Context, NameMissing
from headaudit.names import NameMap, labels_keyword, walk
from headaudit.sandbox import SubjectRaised, call_subject

__all__ = [
    "APPLY_NEEDS",
    "CONTRASTIVE_NEEDS",
    "EXPAND_NEEDS",
    "LAYOUT_NEEDS",
    "LOSS_CALL_NEEDS",
    "Head",
    "apply_pending_updates",
    "as_term",
    "contrastive_term",
    "expand",
    "forward_loss_keys",
    "loss_terms",
    "proto_loss_keys",
    "set_counts",
    "term_value",
    "unit_rows",
]

#: A subject's head. It is reached only through declared names on whatever class the
#: user wrote, so it is typed dynamically on purpose.
Head = Any

LAYOUT_NEEDS = (
    "proto_manager.num_classes",
    "proto_manager.max_prototypes",
    "proto_manager.protos_per_class",
    "proto_manager.valid_mask",
)
LOSS_CALL_NEEDS = (*LAYOUT_NEEDS, "proto_loss_fn", "proto_manager.get_prototype_indices")
CONTRASTIVE_NEEDS = (
    *LOSS_CALL_NEEDS,
    "proto_loss_fn.compute_contrastive_loss|proto_loss_fn[contrastive_loss]",
    "?proto_loss_fn.contrastive_scale",
)
EXPAND_NEEDS = ("proto_manager.expand_prototype|proto_manager.expand_prototypes",)
APPLY_NEEDS = ("?proto_manager.apply_momentum_updates",)


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows L2-normalised (a local helper so checks never rely on the subject's)."""
    return F.normalize(x, p=2, dim=-1)


@torch.no_grad()
def set_counts(ctx: Context, head: Head, counts: Sequence[int]) -> None:
    """Set every class's number of valid prototypes through the public buffers."""
    per_class = int(ctx.get(head, "proto_manager.max_prototypes"))
    num_classes = int(ctx.get(head, "proto_manager.num_classes"))
    if len(counts) != num_classes or any(not 0 <= k <= per_class for k in counts):
        raise ValueError(f"counts {list(counts)!r} do not fit {num_classes} classes x {per_class}")
    per = ctx.get(head, "proto_manager.protos_per_class")
    per.copy_(torch.tensor(list(counts), dtype=per.dtype))
    valid = ctx.get(head, "proto_manager.valid_mask")
    mask = torch.zeros_like(valid)
    for c, k in enumerate(counts):
        mask[c * per_class : c * per_class + k] = True
    valid.copy_(mask)


def expand(ctx: Context, head: Head, class_idx: int, new_proto: torch.Tensor) -> bool:
    """Add a prototype to a class (``expand_prototype`` or ``expand_prototypes``)."""
    for name in ("proto_manager.expand_prototype", "proto_manager.expand_prototypes"):
        if ctx.has(name):
            return bool(call_subject(name, ctx.get(head, name), class_idx, new_proto))
    raise NameMissing("proto_manager.expand_prototype", "proto_manager.expand_prototype(s)", None)


def apply_pending_updates(ctx: Context, head: Head) -> bool:
    """Call ``apply_momentum_updates()`` where the manager has it; True if it did."""
    name = "proto_manager.apply_momentum_updates"
    if not ctx.has(name):
        return False
    call_subject(name, ctx.get(head, name))
    return True


def as_term(value: object, dtype: torch.dtype, where: str) -> torch.Tensor:
    """A loss term as a tensor, whether the subject returned a tensor or a plain number.

    The original heads start their accumulators at the Python number ``0.0``, so a term
    with nothing to measure (no class present, no class with two prototypes) comes back
    as ``0.0``, not a tensor. That is a value, not a defect: it becomes a constant 0-d
    tensor in ``dtype`` (the dtype the loss was fed), with no graph, which is what the
    number means. Anything else (a string, ``None``) is the subject's own error.
    """
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, numbers.Real):
        return torch.tensor(float(value), dtype=dtype)
    raise SubjectRaised(where, TypeError(f"returned a {type(value).__name__}, not a number or a tensor"))


def term_value(value: object) -> float:
    """A loss term's value as a float: a one-element tensor's value, a plain number as is,
    NaN otherwise (so a comparison with it fails and reports what was there)."""
    if isinstance(value, torch.Tensor):
        return float(value.detach()) if value.numel() == 1 else float("nan")
    if isinstance(value, numbers.Real):
        return float(value)
    return float("nan")


def _call_loss(loss_fn: Any, available: Mapping[str, Any], where: str) -> dict[str, torch.Tensor]:
    forward = getattr(loss_fn, "forward", loss_fn)
    try:
        params: Mapping[str, inspect.Parameter] = inspect.signature(forward).parameters
    except (TypeError, ValueError):
        params = {}
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    for name, p in params.items():
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is p.empty and name not in available:
            raise NameMissing(f"proto_loss_fn.forward({name})", f"a loss argument named {name!r}", None)
    args = dict(available) if takes_kwargs else {k: v for k, v in available.items() if k in params}
    out = call_subject(where, loss_fn, **args)
    if not isinstance(out, Mapping):
        raise SubjectRaised(where, TypeError(f"returned {type(out).__name__}, not a dict of loss terms"))
    dtype = available["similarities"].dtype
    return {k: as_term(v, dtype, f"{where}[{k}]") for k, v in out.items()}


def _loss_inputs(
    manager_get: Any,
    prototypes: torch.Tensor,
    similarities: torch.Tensor | None,
    labels: torch.Tensor | None,
) -> dict[str, Any]:
    num_classes, per_class, valid, indices = manager_get
    if labels is None:
        labels = torch.zeros(0, dtype=torch.long)
    if similarities is None:
        similarities = torch.zeros(labels.numel(), num_classes, per_class, dtype=prototypes.dtype)
    return {
        "similarities": similarities,
        "labels": labels,
        "prototypes": prototypes,
        "proto_indices": indices,
        "valid_mask": valid,
        "max_prototypes": per_class,
    }


def loss_terms(
    ctx: Context,
    head: Head,
    prototypes: torch.Tensor,
    similarities: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Call ``head.proto_loss_fn`` and return its dict of (scaled) terms.

    Without ``labels`` the batch is empty: per-class terms skip every class, so only the
    prototype-only terms (diversity, contrastive) remain. The loss ``forward`` is called
    by keyword with the arguments its signature names.
    """
    indices = call_subject("get_prototype_indices", ctx.get(head, "proto_manager.get_prototype_indices"))
    manager = (
        int(ctx.get(head, "proto_manager.num_classes")),
        int(ctx.get(head, "proto_manager.max_prototypes")),
        ctx.get(head, "proto_manager.valid_mask"),
        indices,
    )
    available = _loss_inputs(manager, prototypes, similarities, labels)
    return _call_loss(ctx.get(head, "proto_loss_fn"), available, "proto_loss_fn")


def contrastive_term(ctx: Context, head: Head, prototypes: torch.Tensor, *, unscaled: bool) -> torch.Tensor:
    """The contrastive term for ``prototypes`` (a full ``(P, E)`` matrix).

    Uses ``compute_contrastive_loss`` where the loss has it (an unscaled term); otherwise
    isolates the term through the loss forward with an empty label batch, and divides
    out ``contrastive_scale`` when ``unscaled`` is asked for (``n/a`` without it).
    """
    method = "proto_loss_fn.compute_contrastive_loss"
    if ctx.has(method):
        valid = ctx.get(head, "proto_manager.valid_mask")
        indices = call_subject("get_prototype_indices", ctx.get(head, "proto_manager.get_prototype_indices"))
        value = call_subject("compute_contrastive_loss", ctx.get(head, method), prototypes, valid, indices)
        return as_term(value, prototypes.dtype, method)
    value = ctx.key(loss_terms(ctx, head, prototypes), "proto_loss_fn[contrastive_loss]")
    if not unscaled:
        return torch.as_tensor(value)
    scale = float(ctx.get(head, "proto_loss_fn.contrastive_scale"))
    return torch.as_tensor(value) / scale


# --- resolving loss-dict keys on a subject, before any check runs -------------------


def _probe_inputs(head: Head, names: NameMap) -> tuple[Any, ...] | None:
    get = {n: walk(head, names.apply(f"proto_manager.{n}")) for n in ("num_classes", "max_prototypes")}
    if not all(found for found, _, _ in get.values()):
        return None
    num_classes, per_class = int(get["num_classes"][1]), int(get["max_prototypes"][1])
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(2 * num_classes) % num_classes
    sims = torch.rand(labels.numel(), num_classes, per_class, generator=gen) * 2 - 1
    return num_classes, per_class, labels, sims


def proto_loss_keys(head: Head, names: NameMap) -> set[str] | None:
    """The keys ``proto_loss_fn`` returns on a copy of ``head`` with every class present.

    None when the names needed to call it are missing; raises :class:`SubjectRaised`
    when the subject raises.
    """
    head = copy.deepcopy(head)
    inputs = _probe_inputs(head, names)
    parts = {n: walk(head, names.apply(n)) for n in ("proto_loss_fn", "proto_manager.get_prototype_indices")}
    parts.update({n: walk(head, names.apply(n)) for n in ("proto_manager.valid_mask", "proto_manager.prototypes")})
    if inputs is None or not all(found for found, _, _ in parts.values()):
        return None
    num_classes, per_class, labels, sims = inputs
    indices = call_subject("get_prototype_indices", parts["proto_manager.get_prototype_indices"][1])
    manager = (num_classes, per_class, parts["proto_manager.valid_mask"][1], indices)
    available = _loss_inputs(manager, parts["proto_manager.prototypes"][1], sims, labels)
    try:
        return set(_call_loss(parts["proto_loss_fn"][1], available, "proto_loss_fn"))
    except NameMissing:
        return None


def forward_loss_keys(head: Head, names: NameMap, img_feat_dim: int) -> set[str] | None:
    """The keys of the loss dict a training ``forward`` with labels returns (None: no dict, or
    a forward that takes no labels parameter by the mapped name: ``forward.labels`` says so)."""
    head = copy.deepcopy(head)
    inputs = _probe_inputs(head, names)
    found, forward, _ = walk(head, names.apply("forward"))
    keyword = labels_keyword(forward, names) if found else "labels"
    if inputs is None or keyword is None:
        return None
    labels = inputs[2]
    gen = torch.Generator().manual_seed(1)
    pool = torch.randn(labels.numel(), 4, img_feat_dim, generator=gen)
    img = torch.randn(labels.numel(), img_feat_dim, generator=gen)
    head.train(True)
    out = call_subject("forward", head, pool, img, **{keyword: labels})
    if isinstance(out, tuple) and len(out) >= 3 and isinstance(out[2], Mapping):
        return set(out[2])
    return None
