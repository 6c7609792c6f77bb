"""One adapter per difference between head files, through the public names only.

The two files differ in shape: ``expand_prototypes`` vs ``expand_prototype``, a loss
``forward`` with or without ``max_prototypes``, per-term methods in one and inline
terms in the other. Checks call these functions instead of either spelling, so the
same check runs on any copy that keeps the names in BEHAVIOR.md.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
import torch.nn.functional as F

from headaudit.subjects import Subject

__all__ = [
    "Head",
    "SubjectRaised",
    "accepted_kwargs",
    "apply_pending_updates",
    "build_head",
    "call_subject",
    "contrastive_term",
    "expand",
    "loss_terms",
    "set_counts",
    "set_manager_counts",
]

T = TypeVar("T")

#: A subject's head. It is reached only through the public names of BEHAVIOR.md on
#: whatever class the user wrote, so it is typed dynamically on purpose.
Head = Any


class SubjectRaised(Exception):
    """The subject itself raised while a check was measuring it."""

    def __init__(self, where: str, exc: BaseException) -> None:
        self.where = where
        self.exc = exc
        super().__init__(f"{where} raised {type(exc).__name__}: {exc}")


def call_subject(where: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call into the subject, re-raising its exceptions as :class:`SubjectRaised`."""
    try:
        return fn(*args, **kwargs)
    except SubjectRaised:
        raise
    except Exception as exc:
        raise SubjectRaised(where, exc) from exc


def accepted_kwargs(fn: Callable[..., Any], kwargs: dict[str, Any], named_only: bool = False) -> dict[str, Any]:
    """The subset of ``kwargs`` that ``fn`` accepts.

    All of them when ``fn`` takes ``**kwargs``, unless ``named_only``.
    """
    params = inspect.signature(fn).parameters
    if not named_only and any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(kwargs)
    return {k: v for k, v in kwargs.items() if k in params}


def build_head(
    subject: Subject,
    *,
    num_classes: int,
    emb_dim: int,
    num_heads: int = 1,
    img_feat_dim: int | None = None,
    num_prototypes: int = 2,
    max_prototypes: int = 4,
    train: bool = False,
    **extra: Any,
) -> Head:
    """Build the subject's head with dropout 0, in eval mode unless ``train``.

    Every keyword is passed; when the constructor refuses one with TypeError, it is
    called again with only the keywords its signature names (the compatibility ``Head``
    fixes ``max_prototypes`` itself). So read sizes back from ``head.proto_manager``.
    """
    positional = (num_classes, emb_dim, num_heads, img_feat_dim if img_feat_dim is not None else emb_dim)
    wanted = {"num_prototypes": num_prototypes, "max_prototypes": max_prototypes, "dropout_rate": 0.0, **extra}
    where = f"{subject.head_cls.__name__}(...)"
    try:
        head = subject.head_cls(*positional, **wanted)
    except TypeError:
        # A constructor that refuses a keyword (the compatibility ``Head`` fixes
        # ``max_prototypes`` itself): pass only what it names; a real TypeError recurs.
        head = call_subject(
            where, subject.head_cls, *positional, **accepted_kwargs(subject.head_cls, wanted, named_only=True)
        )
    except Exception as exc:
        raise SubjectRaised(where, exc) from exc
    head.train(train)
    return head


def set_counts(head: Head, counts: Sequence[int]) -> None:
    """Set every class's number of valid prototypes of ``head``."""
    set_manager_counts(head.proto_manager, counts)


@torch.no_grad()
def set_manager_counts(manager: Any, counts: Sequence[int]) -> None:
    """Set every class's number of valid prototypes through the public buffers."""
    per_class = int(manager.max_prototypes)
    if len(counts) != int(manager.num_classes) or any(not 0 <= k <= per_class for k in counts):
        raise ValueError(f"counts {list(counts)!r} do not fit {manager.num_classes} classes x {per_class}")
    manager.protos_per_class.copy_(torch.tensor(list(counts), dtype=manager.protos_per_class.dtype))
    mask = torch.zeros_like(manager.valid_mask)
    for c, k in enumerate(counts):
        mask[c * per_class : c * per_class + k] = True
    manager.valid_mask.copy_(mask)


def expand(head: Head, class_idx: int, new_proto: torch.Tensor) -> bool:
    """Add a prototype to a class (``expand_prototype`` or ``expand_prototypes``)."""
    manager = head.proto_manager
    fn = getattr(manager, "expand_prototype", None) or manager.expand_prototypes
    return bool(call_subject("expand", fn, class_idx, new_proto))


def apply_pending_updates(head: Head) -> bool:
    """Call ``apply_momentum_updates()`` where the manager has it; True if it did."""
    fn = getattr(head.proto_manager, "apply_momentum_updates", None)
    if fn is None:
        return False
    call_subject("apply_momentum_updates", fn)
    return True


def loss_terms(
    head: Head,
    prototypes: torch.Tensor,
    similarities: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Call ``head.proto_loss_fn`` and return its dict of (scaled) terms.

    Without ``labels`` the batch is empty: per-class terms skip every class, so only
    the prototype-only terms (diversity, contrastive) remain. The loss ``forward`` is
    called by keyword with the arguments its signature names.
    """
    manager = head.proto_manager
    num_classes, per_class = int(manager.num_classes), int(manager.max_prototypes)
    if labels is None:
        labels = torch.zeros(0, dtype=torch.long)
    if similarities is None:
        similarities = torch.zeros(labels.numel(), num_classes, per_class, dtype=prototypes.dtype)
    available = {
        "similarities": similarities,
        "labels": labels,
        "prototypes": prototypes,
        "proto_indices": manager.get_prototype_indices(),
        "valid_mask": manager.valid_mask,
        "max_prototypes": per_class,
    }
    loss_fn = head.proto_loss_fn
    return dict(call_subject("proto_loss_fn.forward", loss_fn, **accepted_kwargs(loss_fn.forward, available)))


def contrastive_term(head: Head, prototypes: torch.Tensor) -> torch.Tensor:
    """The unscaled contrastive term for ``prototypes`` (a full ``(P, E)`` matrix).

    Uses ``compute_contrastive_loss`` where the loss has it; otherwise isolates the term
    through the loss forward with an empty label batch and divides out
    ``contrastive_scale``.
    """
    manager, loss_fn = head.proto_manager, head.proto_loss_fn
    method = getattr(loss_fn, "compute_contrastive_loss", None)
    if method is not None:
        value = call_subject(
            "compute_contrastive_loss", method, prototypes, manager.valid_mask, manager.get_prototype_indices()
        )
        return torch.as_tensor(value)
    terms = loss_terms(head, prototypes)
    return terms["contrastive_loss"] / float(loss_fn.contrastive_scale)


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows L2-normalised (a local helper so checks never rely on the subject's)."""
    return F.normalize(x, p=2, dim=-1)
