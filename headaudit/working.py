"""Is the subject a working head at all? One training step and one eval pass, before any check.

A draft that is not a working head (a loss method missing ``self``, class embeddings
kept as plain tensors, a ``.cuda()`` on a machine without CUDA) would otherwise be judged
part by part: the checks that never reach its broken part would pass, and a report
would show passes for a head that cannot train. So before a check measures a subject,
the runner asks :func:`not_working` once per subject: the head is built at its probe
sizes, run forward in training with labels, its total backpropagated, and run in eval
without labels. If any of that raises, or a trainable tensor is a plain attribute
(neither an ``nn.Parameter`` nor a registered buffer, so an optimiser never sees it,
``state_dict`` never saves it and ``.to()`` never moves it), every check that runs the
head is ``error`` with that reason, in the subject's own words. Missing names still give
``n/a`` first; checks that only read the source (``static.*``) never wait on this step.

The labels go in under the forward's own name for them (``forward.labels`` after the
user's maps: ``targets``). A forward with no parameter of that name is not called with
labels here (passing them in some other place could be the wrong argument and make a
working head look broken): its training forward runs without them, and the checks that
need the labels are ``n/a`` naming the parameter.

It costs one small step per subject (milliseconds).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from headaudit.build import construct
from headaudit.names import NameMap, labels_keyword, walk
from headaudit.sandbox import SubjectRaised, call_subject

__all__ = ["not_working"]

_BATCH = 4
_PATCHES = 5


#: Settings tried in turn: the head's own defaults, then the small layout the checks use
#: (a head broken only at its defaults, say more prototypes than slots, still gets judged).
_SETTINGS: tuple[dict[str, Any], ...] = (
    {"dropout_rate": 0.0},
    {"dropout_rate": 0.0, "num_prototypes": 2, "max_prototypes": 3},
)


def not_working(cls: type, sizes: tuple[int, int, int, int], names: NameMap) -> str | None:
    """Why a head of ``cls`` at ``sizes`` cannot be used, or None when it trains and evaluates
    with some setting of :data:`_SETTINGS` (the reason is the first setting's).

    Raises :class:`~headaudit.sandbox.CheckTimeout` through (a head that hangs is the
    time limit's to report).
    """
    first = None
    for settings in _SETTINGS:
        reason = _step(cls, sizes, names, settings)
        if reason is None:
            return None
        first = first or reason
    return first


def _step(cls: type, sizes: tuple[int, int, int, int], names: NameMap, settings: dict[str, Any]) -> str | None:
    try:
        head = construct(cls, sizes, settings, names).head
    except SubjectRaised as exc:
        return f"{exc.where} raised {exc.detail}"
    plain = _plain_tensors(head, names)
    if plain:
        return (
            f"{', '.join(f'`{p}`' for p in plain)} is a plain tensor attribute, not an nn.Parameter or a "
            "registered buffer: training, state_dict and .to() never see it (wrap it in nn.Parameter or "
            "register it with register_buffer)"
        )
    found, forward, _ = walk(head, names.apply("forward"))
    if not found:
        return None  # the checks that need a forward say it is missing
    gen = torch.Generator().manual_seed(0)
    num_classes, dim = sizes[0], sizes[3]
    pool = torch.randn(_BATCH, _PATCHES, dim, generator=gen)
    img = torch.randn(_BATCH, dim, generator=gen)
    labels = torch.arange(_BATCH) % num_classes
    keyword = labels_keyword(forward, names)
    try:
        if isinstance(head, nn.Module):
            head.train(True)
        if keyword is None:
            out = call_subject("forward (training)", forward, pool, img)
        else:
            out = call_subject("forward (training, with labels)", forward, pool, img, **{keyword: labels})
        total = out[1] if isinstance(out, (tuple, list)) and len(out) > 1 else out
        if isinstance(total, torch.Tensor) and total.requires_grad:
            call_subject("the training total's backward()", total.sum().backward)
        if isinstance(head, nn.Module):
            head.train(False)
        with torch.no_grad():
            call_subject("forward (eval)", forward, pool, img)
    except SubjectRaised as exc:
        return f"{exc.where} raised {exc.detail}"
    return None


def _plain_tensors(head: Any, names: NameMap) -> list[str]:
    """Attributes of the head's modules that hold a tensor meant to train, unregistered.

    A plain tensor that requires grad is never in ``parameters()``; the prototypes
    (``proto_manager.prototypes``, the class embeddings of this family) as a plain tensor
    are not in ``state_dict`` either. Other plain tensors (a cached mask) are left alone.
    """
    if not isinstance(head, nn.Module):
        return []
    found, protos, _ = walk(head, names.apply("proto_manager.prototypes"))
    plain = []
    for path, module in head.named_modules():
        for name, value in vars(module).items():
            if name.startswith("_") or not isinstance(value, torch.Tensor) or isinstance(value, nn.Parameter):
                continue
            if value.requires_grad or (found and value is protos):
                plain.append(f"{path}.{name}" if path else name)
    return sorted(plain)
