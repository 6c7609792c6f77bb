"""Running the subject's heads inside the host files, and reading the hosts' call sites.

Shared by ``host.loss-dict`` and the ``trainer.*`` checks:

- :func:`head_classes`: the head classes of the subject file: its ``HeadOptimal`` and
  its compatibility ``Head`` where it defines them (declared ``?module:`` names), and its
  head class in any case;
- :func:`head_returns`: what each head class's ``forward`` returns, per mode, measured on
  the head alone;
- :func:`run_matrix`: the host variant x head class x mode matrix. A host is never built
  with its constructor: each cell makes an instance without ``__init__``
  (:meth:`headaudit.hosts.HostFile.stand_in`) holding the head under test and a stand-in
  ``forward_train`` that returns the given patch features ``(B, 49, D)`` and their mean
  ``(B, 1, D)``. A cell ``works``, ``loses-breakdown`` (terms the head's loss computed,
  seen by a hook on ``proto_loss_fn``, are missing from what the host returns; ``lost_in``
  says whether the head or the host dropped them), ``raises`` (the host raised after or
  before calling the head; the exception is the cell's measurement), is ``unrunnable``
  (the host's forward needs an attribute only its constructor sets) or ``unavailable``
  (the host file did not import). The head raising is a subject exception: ``error``;
- :func:`call_sites`: the static side, from the host's source alone: every
  ``self.head(...)`` call of the host class, its unpack arity and guards, and what the
  unpack does with each head class's measured return in each mode (guards are evaluated
  for the mode where they only read ``self.training`` and the forward's arguments).
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from headaudit.astscan import head_calls
from headaudit.context import Context
from headaudit.hosts import HostFile
from headaudit.sandbox import SubjectRaised, call_subject

__all__ = [
    "HEAD_CLASS_NEEDS",
    "MODES",
    "CallSite",
    "Cell",
    "HeadReturn",
    "Prediction",
    "build_head",
    "call_sites",
    "forward_source",
    "head_classes",
    "head_returns",
    "inputs",
    "run_cell",
    "run_matrix",
    "stand_in_backbone",
]

#: Train with a target, eval with a target, eval without one.
MODES = ("train", "eval", "eval-no-target")
HEAD_CLASS_NEEDS = ("?module:HeadOptimal", "?module:Head", "?proto_loss_fn")
_CLASSES, _EMB, _BATCH, _PATCHES = 3, 16, 4, 49
_NO_ATTRIBUTE = re.compile(r"has no attribute '(\w+)'")


def head_classes(ctx: Context) -> list[type]:
    """``HeadOptimal`` and ``Head`` of the subject's file where defined, then its head class."""
    found: list[type] = []
    for name in ("module:HeadOptimal", "module:Head"):
        if ctx.has(name):
            value = ctx.from_module(name)
            if isinstance(value, type) and value not in found:
                found.append(value)
    if ctx.subject.head_cls not in found:
        found.append(ctx.subject.head_cls)
    return found


def stand_in_backbone(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``forward_train`` of a stand-in host: ``(global (B, 1, D), patches (B, 49, D))``."""
    return images.mean(dim=1, keepdim=True), images


def inputs(ctx: Context, salt: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Patch features ``(B, 49, D)`` (the stand-in backbone's "images") and labels."""
    gen = ctx.generator(salt)
    return torch.randn(_BATCH, _PATCHES, _EMB, generator=gen), torch.arange(_BATCH) % _CLASSES


def build_head(ctx: Context, cls: type, train: bool) -> Any:
    torch.manual_seed(ctx.seed)
    return ctx.build(head_cls=cls, num_classes=_CLASSES, emb_dim=_EMB, train=train)


def _mapping_keys(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        return [str(k) for k in value]
    if isinstance(value, (tuple, list)):
        return [str(k) for v in value if isinstance(v, Mapping) for k in v]
    return []


def _count(value: Any) -> int:
    return len(value) if isinstance(value, (tuple, list)) else 1


@dataclass(frozen=True)
class HeadReturn:
    """What a head class's ``forward`` returned in one mode, called alone."""

    head: str
    mode: str
    values: int
    loss_terms: tuple[str, ...]  # keys of a returned dict


def head_returns(ctx: Context, classes: Sequence[type]) -> tuple[HeadReturn, ...]:
    images, labels = inputs(ctx)
    global_features, patches = stand_in_backbone(images)
    out = []
    for cls in classes:
        for mode in MODES:
            head = build_head(ctx, cls, train=mode == "train")
            target = None if mode == "eval-no-target" else labels
            got = call_subject(f"{cls.__name__}.forward", head, patches, global_features, labels=target)
            out.append(HeadReturn(cls.__name__, mode, _count(got), tuple(_mapping_keys(got))))
    return tuple(out)


@dataclass(frozen=True)
class Cell:
    """One cell of the matrix: a host variant, a head class and a mode."""

    host: str
    head: str
    mode: str
    outcome: str  # works | loses-breakdown | raises | unrunnable | unavailable
    detail: str | None = None  # the exception, the attribute it needs, or why it did not import
    lost: tuple[str, ...] = ()
    lost_in: str | None = None  # "head": it returned no such term; "host": it dropped what the head returned
    head_values: int | None = None  # how many values the head returned in this cell
    terms_computed: int | None = None  # loss terms the head's loss computed (None: not observable)


def _set_mode(obj: Any, head: Any, train: bool) -> None:
    if isinstance(obj, nn.Module):
        obj.train(train)
    else:
        obj.training = train
        head.train(train)


def _call_args(host_cls: type, images: torch.Tensor, target: torch.Tensor | None) -> tuple[tuple[Any, ...], dict]:
    """How the host's ``forward`` takes the target: ``target=`` or its second argument."""
    if target is None:
        return (images,), {}
    try:
        forward: Any = getattr(host_cls, "forward", None)
        params = list(inspect.signature(forward).parameters)[1:]
    except (TypeError, ValueError, AttributeError):
        params = []
    if "target" in params:
        return (images,), {"target": target}
    return ((images, target), {}) if len(params) >= 2 else ((images,), {})


def run_cell(
    ctx: Context, variant: str, host: HostFile, cls: type, mode: str, images: torch.Tensor, labels: torch.Tensor
) -> Cell:
    """Run one cell; raises :class:`SubjectRaised` only when the head itself raised."""
    name = cls.__name__
    if host.host_cls is None:
        return Cell(variant, name, mode, "unavailable", host.unavailable)
    head = build_head(ctx, cls, train=mode == "train")
    seen: dict[str, Any] = {"entered": False, "returned": False, "out": None}
    computed: list[str] = []

    def entered(_module: nn.Module, _args: Any) -> None:
        seen["entered"] = True

    def returned(_module: nn.Module, _args: Any, output: Any) -> None:
        seen["returned"], seen["out"] = True, output

    def terms(_module: nn.Module, _args: Any, output: Any) -> None:
        computed.extend(_mapping_keys(output))

    handles = [head.register_forward_pre_hook(entered), head.register_forward_hook(returned)]
    loss_fn = ctx.get(head, "proto_loss_fn") if ctx.has("proto_loss_fn") else None
    observable = isinstance(loss_fn, nn.Module)
    if isinstance(loss_fn, nn.Module):
        handles.append(loss_fn.register_forward_hook(terms))
    try:
        obj = host.stand_in(head, stand_in_backbone)
        _set_mode(obj, head, mode == "train")
        args, kwargs = _call_args(host.host_cls, images, None if mode == "eval-no-target" else labels)
        try:
            out = call_subject(f"{host.class_name}.forward", obj, *args, **kwargs)
        except SubjectRaised as raised:
            if seen["entered"] and not seen["returned"]:  # the head raised: not the host's behaviour
                raise SubjectRaised(f"{name}.forward (called by {host.display})", raised.exc) from raised
            values = _count(seen["out"]) if seen["returned"] else None
            missing = _NO_ATTRIBUTE.search(str(raised.exc)) if isinstance(raised.exc, AttributeError) else None
            if not seen["entered"] and missing and missing.group(1) not in ("forward_train", "head"):
                return Cell(variant, name, mode, "unrunnable", missing.group(1))
            return Cell(variant, name, mode, "raises", raised.detail, head_values=values)
    finally:
        for handle in handles:
            handle.remove()
    values = _count(seen["out"]) if seen["returned"] else None
    known = len(computed) if observable else None
    if mode == "train" and computed:
        keys = _mapping_keys(out)
        lost = tuple(t for t in sorted(set(computed)) if not any(k == t or k.endswith(t) for k in keys))
        if lost:
            from_head = set(_mapping_keys(seen["out"]))
            lost_in = "host" if from_head & set(lost) else "head"
            return Cell(variant, name, mode, "loses-breakdown", None, lost, lost_in, values, known)
    return Cell(variant, name, mode, "works", head_values=values, terms_computed=known)


def run_matrix(ctx: Context, classes: Sequence[type], variants: Iterable[tuple[str, HostFile]]) -> tuple[Cell, ...]:
    """Every cell, in variant, class, mode order."""
    images, labels = inputs(ctx)
    return tuple(
        run_cell(ctx, variant, host, cls, mode, images, labels)
        for variant, host in variants
        for cls in classes
        for mode in MODES
    )


# --- the static side ---------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """What a call site's unpack does with one head class's return in one mode."""

    head: str
    mode: str
    returned: int
    reached: bool | None  # the guards hold in this mode (None: they read something else)
    outcome: str  # raises | unpacks | not-reached | depends | no-unpack


@dataclass(frozen=True)
class CallSite:
    line: int
    source: str
    function: str
    usage: str
    arity: int | None
    starred: bool
    conditions: tuple[str, ...]
    predictions: tuple[Prediction, ...]


class _ModeView:
    """``self`` while a guard is evaluated: only ``training`` is known."""

    def __init__(self, training: bool) -> None:
        self.training = training


class _Value:
    """A forward argument that was passed (its value is not known statically)."""


def _function(tree: ast.Module, qualname: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    parts = qualname.split(".")
    body: list[ast.stmt] = tree.body
    found: ast.AST | None = None
    for part in parts:
        found = next(
            (
                n
                for n in body
                if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == part
            ),
            None,
        )
        if found is None:
            return None
        body = found.body
    return found if isinstance(found, (ast.FunctionDef, ast.AsyncFunctionDef)) else None


def _reached(conditions: Sequence[str], params: Sequence[str], train: bool, target: bool) -> bool | None:
    if not conditions:
        return True
    names: dict[str, Any] = {}
    for i, param in enumerate(params):
        names[param] = _ModeView(train) if i == 0 else _Value() if i == 1 or target else None
    try:
        return all(
            bool(eval(c, {"__builtins__": {}}, dict(names))) for c in conditions
        )  # the guard's own text, no builtins
    except Exception:
        return None


def forward_source(host: HostFile) -> str | None:
    """The source of the host-class method that calls the head (for the report's advice)."""
    tree = ast.parse(host.source)
    for call in head_calls(host.source, host.display):
        if call.function.split(".")[0] == host.class_name:
            node = _function(tree, call.function)
            if node is not None:
                text = ast.get_source_segment(host.source, node)
                return textwrap.dedent("    " + text) if text else None
    return None


def call_sites(host: HostFile, returns: Sequence[HeadReturn]) -> tuple[CallSite, ...]:
    """The host class's ``self.head(...)`` calls and what each does with each return."""
    tree = ast.parse(host.source)
    sites = []
    for call in head_calls(host.source, host.display):
        if call.function.split(".")[0] != host.class_name:
            continue
        node = _function(tree, call.function)
        params = [a.arg for a in node.args.args] if node is not None else []
        predictions = []
        for r in returns:
            reached = _reached(call.conditions, params, r.mode == "train", r.mode != "eval-no-target")
            if call.usage != "unpack" or call.arity is None:
                outcome = "no-unpack"
            elif reached is False:
                outcome = "not-reached"
            elif r.values == call.arity or (call.starred and r.values >= call.arity):
                outcome = "unpacks" if reached else "depends"
            else:
                outcome = "raises" if reached else "depends"
            predictions.append(Prediction(r.head, r.mode, r.values, reached, outcome))
        sites.append(
            CallSite(
                call.line,
                call.source,
                call.function,
                call.usage,
                call.arity,
                call.starred,
                call.conditions,
                tuple(predictions),
            )
        )
    return tuple(sites)
