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
  for the mode where they only read ``self.training`` and the forward's arguments);
- :func:`static_cells`: every cell of the matrix predicted from the host's source alone:
  its ``forward`` walked by :func:`headaudit.astscan.follow` for each head class's measured
  return (:meth:`HeadReturn.shape`) and mode, a ``len``/``isinstance`` dispatch evaluated;
  ``host.loss-dict`` judges by it the cells a host could not run here;
- the training wrapper's source (``trainer.*``, where the wrapper does not import):
  :func:`detection_site` finds where it decides that a head is multi-prototype,
  :class:`WrapperSource` evaluates that decision's own text without the file's imports or
  constructor, and :func:`call_sites` with ``receiver="self.model"`` reads its unpacks of
  what the host returns (:func:`host_return`), guards evaluated on the same view.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import textwrap
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from headaudit.astscan import HostPath, ReturnShape, follow, head_calls
from headaudit.context import Context
from headaudit.hosts import HostFile
from headaudit.names import forward_parameters
from headaudit.sandbox import SubjectRaised, call_subject, captured, describe_exception

__all__ = [
    "HEAD_CLASS_NEEDS",
    "MODES",
    "QUOTED_DETECTION",
    "CallSite",
    "Cell",
    "DetectionSite",
    "HeadReturn",
    "Prediction",
    "SourceDetection",
    "StaticCell",
    "Unresolved",
    "WrapperSource",
    "build_head",
    "call_sites",
    "constructor_locals",
    "detection_site",
    "forward_source",
    "head_classes",
    "head_returns",
    "host_return",
    "inputs",
    "run_cell",
    "run_matrix",
    "source_detection",
    "stand_in_backbone",
    "static_cells",
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


def _kind(value: Any) -> str:
    """The kind of a value as a host's dispatch reads it (:data:`headaudit.astscan.RETURN_KINDS`)."""
    if isinstance(value, tuple):
        return "tuple"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "dict"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, torch.Tensor):
        return "tensor"
    return "none" if value is None else "other"


@dataclass(frozen=True)
class HeadReturn:
    """What a head class's ``forward`` returned in one mode, called alone.

    ``kind`` is the returned value's kind, ``elements`` the kinds of a returned tuple's or
    list's items and ``element_keys`` the keys of each item that is a mapping (for a
    returned mapping: its keys, once); ``computed`` the loss terms the head's
    ``proto_loss_fn`` computed in the call (None: no ``proto_loss_fn`` to observe).
    """

    head: str
    mode: str
    values: int
    loss_terms: tuple[str, ...]  # keys of a returned dict
    kind: str = "other"
    elements: tuple[str, ...] = ()
    element_keys: tuple[tuple[str, ...], ...] = ()
    computed: tuple[str, ...] | None = None

    def shape(self) -> ReturnShape:
        return ReturnShape(self.kind, self.elements, self.element_keys)


def _return_of(name: str, mode: str, got: Any, computed: tuple[str, ...] | None) -> HeadReturn:
    items = list(got) if isinstance(got, (tuple, list)) else []
    keys = (
        tuple(tuple(str(k) for k in v) if isinstance(v, Mapping) else () for v in items)
        if items
        else ((tuple(str(k) for k in got),) if isinstance(got, Mapping) else ())
    )
    kinds = tuple(_kind(v) for v in items)
    return HeadReturn(name, mode, _count(got), tuple(_mapping_keys(got)), _kind(got), kinds, keys, computed)


def _labels_name(ctx: Context, cls: type) -> str:
    """The labels parameter of ``cls.forward``: the mapped name where it takes it, else
    ``labels`` where it names that (a compatibility ``Head`` keeps head.py's interface
    beside a renamed ``HeadOptimal``)."""
    name = ctx.parameter("forward.labels")
    found = forward_parameters(getattr(cls, "forward", None))
    if found is None or name in found[0] or found[1]:
        return name
    return "labels" if "labels" in found[0] else name


def head_returns(ctx: Context, classes: Sequence[type]) -> tuple[HeadReturn, ...]:
    images, labels = inputs(ctx)
    global_features, patches = stand_in_backbone(images)
    out = []
    for cls in classes:
        for mode in MODES:
            head = build_head(ctx, cls, train=mode == "train")
            target = None if mode == "eval-no-target" else labels
            computed: list[str] = []

            def observe(_module: nn.Module, _args: Any, output: Any, into: list[str] = computed) -> None:
                into.extend(_mapping_keys(output))

            loss_fn = ctx.get(head, "proto_loss_fn") if ctx.has("proto_loss_fn") else None
            handle = loss_fn.register_forward_hook(observe) if isinstance(loss_fn, nn.Module) else None
            try:
                labelled = {_labels_name(ctx, cls): target}  # the class's own name (after --map)
                got = call_subject(f"{cls.__name__}.forward", head, patches, global_features, **labelled)
            finally:
                if handle is not None:
                    handle.remove()
            terms = tuple(sorted(set(computed))) if handle is not None else None
            out.append(_return_of(cls.__name__, mode, got, terms))
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


def _set_in_file(host: HostFile) -> set[str]:
    """Attributes some method of the host file sets (``self.<name> = ...``)."""
    tree = ast.parse(host.source)
    return {a for node in ast.walk(tree) if isinstance(node, ast.ClassDef) for a in _assignments(node)}


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
            if (
                missing
                and missing.group(1) not in ("forward_train", "head")
                and (not seen["entered"] or missing.group(1) in _set_in_file(host))
            ):  # an attribute only a constructor the audit never runs sets: not the host's defect
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


def _reached(
    conditions: Sequence[str], params: Sequence[str], train: bool, target: bool, this: Any = None
) -> bool | None:
    """Whether the guards hold; ``self`` is ``this`` where given, else a view of the mode alone."""
    if not conditions:
        return True
    names: dict[str, Any] = {}
    for i, param in enumerate(params):
        names[param] = (
            (this if this is not None else _ModeView(train)) if i == 0 else (_Value() if i == 1 or target else None)
        )
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


def call_sites(
    host: HostFile,
    returns: Sequence[HeadReturn],
    *,
    receiver: str = "self.head",
    view: Callable[[HeadReturn], Any] | None = None,
) -> tuple[CallSite, ...]:
    """The host class's ``receiver(...)`` calls and what each does with each return.

    ``receiver`` is ``self.head`` for a host, ``self.model`` for the training wrapper (whose
    ``returns`` are then what the host returned to it); ``view(r)`` is the ``self`` its
    guards are evaluated on for the return ``r`` (default: one that knows only the mode).
    """
    tree = ast.parse(host.source)
    sites = []
    for call in head_calls(host.source, host.display, receiver):
        if call.function.split(".")[0] != host.class_name:
            continue
        node = _function(tree, call.function)
        params = [a.arg for a in node.args.args] if node is not None else []
        predictions = []
        for r in returns:
            this = view(r) if view is not None else None
            reached = _reached(call.conditions, params, r.mode == "train", r.mode != "eval-no-target", this)
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


@dataclass(frozen=True)
class StaticCell:
    """One cell of the matrix predicted from the host's source (:func:`static_cells`).

    ``outcome``: ``works``, ``loses-breakdown`` (``lost``, ``lost_in`` as in :class:`Cell`),
    ``raises`` (``detail`` the predicted exception, raised by ``operation`` at ``line``),
    ``runs`` (does not raise; whether the breakdown is kept the source does not say:
    ``lost`` are the terms it does not show kept) or ``undecided`` (``detail``: what the
    source alone does not give, at ``line``). ``branches``: the conditions the path
    decided, ``"LINE: TEXT -> True|False"``; ``returned``: the head's value count.
    """

    host: str
    head: str
    mode: str
    outcome: str
    detail: str | None = None
    line: int | None = None
    operation: str = ""
    branches: tuple[str, ...] = ()
    returned: int = 0
    lost: tuple[str, ...] = ()
    lost_in: str | None = None


def _static_cell(variant: str, r: HeadReturn, path: HostPath) -> StaticCell:
    base = StaticCell(variant, r.head, r.mode, "works", None, path.line, path.operation, path.branches, r.values)
    if path.outcome == "raises":
        return dataclasses.replace(base, outcome="raises", detail=path.detail)
    if path.outcome == "undecided":
        return dataclasses.replace(base, outcome="undecided", detail=path.detail)
    if not path.called:
        why = "the head is not called on this path of `forward` (a call in another method is not followed)"
        return dataclasses.replace(base, outcome="undecided", detail=why)
    if r.mode != "train" or not r.computed:  # as the run: only training computes a breakdown
        return base
    lost = tuple(t for t in r.computed if not any(k == t or k.endswith(t) for k in path.keys))
    if not lost:
        return base
    if path.open_keys:
        return dataclasses.replace(base, outcome="runs", lost=lost)
    lost_in = "host" if set(r.loss_terms) & set(lost) else "head"
    return dataclasses.replace(base, outcome="loses-breakdown", lost=lost, lost_in=lost_in)


def static_cells(variant: str, host: HostFile, returns: Sequence[HeadReturn]) -> tuple[StaticCell, ...]:
    """Every cell of ``host`` predicted from its source: its class's ``forward`` walked for
    each head class's measured return in each mode (:func:`headaudit.astscan.follow`)."""
    tree = ast.parse(host.source)
    forward = _function(tree, f"{host.class_name}.forward")
    out = []
    for r in returns:
        if forward is None:
            why = f"`{host.class_name}` defines no `forward` in this file"
            out.append(StaticCell(variant, r.head, r.mode, "undecided", why, returned=r.values))
            continue
        path = follow(forward, r.shape(), training=r.mode == "train", target=r.mode != "eval-no-target")
        out.append(_static_cell(variant, r, path))
    return tuple(out)


def host_return(ctx: Context, host: HostFile, cls: type, mode: str) -> int | None:
    """How many values ``host``'s ``forward`` returns with a ``cls`` head in ``mode`` (with a
    target, as the training wrapper calls it); None when it raised or did not import."""
    if host.host_cls is None:
        return None
    images, labels = inputs(ctx)
    head = build_head(ctx, cls, train=mode == "train")
    obj = host.stand_in(head, stand_in_backbone)
    _set_mode(obj, head, mode == "train")
    args, kwargs = _call_args(host.host_cls, images, None if mode == "eval-no-target" else labels)
    try:
        return _count(call_subject(f"{host.class_name}.forward", obj, *args, **kwargs))
    except SubjectRaised:
        return None


# --- the training wrapper's source ----------------------------------------------------
#
# The wrapper under audit may not import here (the real one imports timm and its project's
# packages). What its source says is still judged: where it decides that the model's head
# is a multi-prototype head (:func:`detection_site`), what that decision gives for a head
# (:class:`WrapperSource`: the decision's own text, and the wrapper methods and file
# functions it calls, compiled from the source alone and evaluated on the host holding the
# head), and how its ``self.model(...)`` calls unpack what the host returns
# (:func:`call_sites` with ``receiver="self.model"``, guards evaluated on the same view).
# Nothing the file imports is assumed: a name it imports is imported by itself where this
# machine has the module, and a name from a module that is missing (or from the file's
# constructor arguments the audit does not pass) makes that part unresolved, naming it.

#: The detection method as the original report quotes it (the fallback when no guard names one).
QUOTED_DETECTION = "_detect_multi_prototype_head"
_SAFE_BUILTINS = (
    "hasattr", "getattr", "isinstance", "issubclass", "callable", "type", "bool", "len", "any", "all", "str",
    "int", "float", "tuple", "list", "dict", "set", "frozenset", "iter", "next", "min", "max", "sum", "sorted",
    "reversed", "enumerate", "zip", "range", "repr", "AttributeError", "Exception", "TypeError", "KeyError",
    "ValueError", "RuntimeError", "NotImplementedError",
)  # fmt: skip


@dataclass(frozen=True)
class DetectionSite:
    """Where the wrapper decides that its model's head is a multi-prototype head.

    ``expression`` is the decision as written (``self._detect_multi_prototype_head()``),
    ``function`` and ``line`` where it is written, ``flag`` the attribute that keeps it
    (read by the guards of ``self.model(...)``), ``found_by`` how it was found: ``guard``
    (a flag or a call in the guards of the wrapper's ``self.model(...)`` calls) or
    ``name`` (the method name the original report quotes).
    """

    expression: str
    function: str
    line: int
    flag: str | None
    found_by: str


@dataclass(frozen=True)
class SourceDetection:
    """What the detection, read from the source, gives for one head (None: unresolved)."""

    head: str
    detected: bool | None
    unresolved: str | None = None  # what it needs that the source alone does not give


class Unresolved(Exception):
    """The wrapper's source needs a name only its import, or its constructor, provides."""

    def __init__(self, name: str, module: str | None = None, detail: str | None = None) -> None:
        self.name, self.module, self.detail = name, module, detail
        where = f" (from `{module}`)" if module else ""
        super().__init__(f"`{name}`{where}" + (f": {detail}" if detail else ""))


def _class_node(tree: ast.Module, name: str) -> ast.ClassDef | None:
    return next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)


def _self_attr(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr
    return None


def _assignments(cls: ast.ClassDef) -> dict[str, list[tuple[str, ast.stmt]]]:
    """``self.<attr> = ...`` statements of the class: attr -> [(method, statement)]."""
    out: dict[str, list[tuple[str, ast.stmt]]] = {}
    for method in cls.body:
        if not isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(method):
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, (ast.AnnAssign, ast.AugAssign))
                else []
            )
            for target in targets:
                attr = _self_attr(target)
                if attr is not None and isinstance(node, ast.stmt):
                    out.setdefault(attr, []).append((method.name, node))
    return out


def _methods(cls: ast.ClassDef) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}


def detection_site(wrapper: HostFile) -> DetectionSite | None:
    """Where the wrapper class decides that the head is multi-prototype (None: nowhere found).

    The decision is what selects which ``self.model(...)`` call runs: the first guard of
    those calls (other than ``self.training``) that calls a method of the class or a
    function of the file, or reads an attribute the class computes (``self.<flag> =
    <expression>``, not a plain copy of an argument); failing that, the class's method
    with the name the original report quotes (:data:`QUOTED_DETECTION`).
    """
    tree = ast.parse(wrapper.source)
    cls = _class_node(tree, wrapper.class_name)
    if cls is None:
        return None
    methods = _methods(cls)
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assigned = _assignments(cls)
    for call in head_calls(wrapper.source, wrapper.display, "self.model"):
        if call.function.split(".")[0] != wrapper.class_name:
            continue
        for condition in call.conditions:
            for node in ast.walk(ast.parse(condition, mode="eval")):
                if isinstance(node, ast.Call) and (
                    _self_attr(node.func) in methods or (isinstance(node.func, ast.Name) and node.func.id in functions)
                ):
                    return DetectionSite(ast.unparse(node), call.function, call.line, None, "guard")
                attr = _self_attr(node)
                if attr is None or attr == "training" or attr in methods or attr not in assigned:
                    continue
                where, stmt = assigned[attr][0]
                value = getattr(stmt, "value", None)
                if value is not None and not isinstance(value, (ast.Name, ast.Constant)):
                    return DetectionSite(ast.unparse(value), f"{cls.name}.{where}", stmt.lineno, attr, "guard")
    quoted = methods.get(QUOTED_DETECTION)
    if quoted is None:
        return None
    wanted = f"self.{QUOTED_DETECTION}()"
    flag = next(
        (a for a, places in assigned.items() for _, st in places if ast.unparse(getattr(st, "value", st)) == wanted),
        None,
    )
    return DetectionSite(wanted, f"{cls.name}.{QUOTED_DETECTION}", quoted.lineno, flag, "name")


def constructor_locals(cls: type, model: Any) -> dict[str, Any]:
    """The wrapper constructor's arguments as the checks build it: ``cls(model)``, defaults for the rest."""
    try:
        bound = inspect.signature(cls).bind_partial(model)
    except (TypeError, ValueError):
        return {}
    bound.apply_defaults()
    return dict(bound.arguments)


def _compile_def(node: ast.stmt, filename: str) -> Any:
    import __future__

    module = ast.Module(body=[node], type_ignores=[])
    return compile(module, filename, "exec", flags=__future__.annotations.compiler_flag, dont_inherit=True)


class _SourceSelf:
    """``self`` of the wrapper as its source describes it, its constructor never run.

    It holds ``model`` and ``training``; a method of the class is its source compiled alone;
    an attribute the constructor sets once, at the top of ``__init__``, is that statement's
    value evaluated when first read (``__init__``'s arguments as ``cls(model)`` binds them).
    """

    def __init__(self, source: WrapperSource, model: Any, training: bool) -> None:
        self.__dict__.update(model=model, training=training, _headaudit_source=source, _headaudit_busy=set())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self.__dict__["_headaudit_source"].attribute(self, name)


class WrapperSource:
    """The wrapper class and the file's functions, compiled from the source alone (see above)."""

    def __init__(self, wrapper: HostFile) -> None:
        import builtins

        self.file = wrapper
        tree = ast.parse(wrapper.source)
        self._globals: dict[str, Any] = {
            "__builtins__": {n: getattr(builtins, n) for n in _SAFE_BUILTINS},
            "__name__": "headaudit_wrapper_source",
        }
        self._imports: dict[str, tuple[str, str | None]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    top = alias.name.split(".")[0]
                    self._imports.setdefault(alias.asname or top, (alias.name if alias.asname else top, None))
            elif isinstance(node, ast.ImportFrom):
                base = "." * node.level + (node.module or "")
                for alias in node.names:
                    if alias.name != "*":
                        self._imports.setdefault(alias.asname or alias.name, (base, alias.name))
        self._broken: dict[str, str] = {}
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.decorator_list:
                self._define(node, self._globals)
        cls = _class_node(tree, wrapper.class_name)
        self._methods: dict[str, Any] = {}
        self._init_params: tuple[str, ...] = ()
        self._init_locals_src: dict[str, ast.expr | None] = {}
        self._attrs: dict[str, list[tuple[str, ast.stmt]]] = {}
        self._init_top: set[int] = set()
        if cls is not None:
            for node in _methods(cls).values():
                if not node.decorator_list:
                    self._define(node, self._methods)
            self._attrs = _assignments(cls)
            init = _methods(cls).get("__init__")
            if init is not None:
                args = init.args
                positional = [*args.posonlyargs, *args.args][1:]
                defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
                self._init_locals_src = dict(zip((a.arg for a in positional), defaults, strict=True))
                for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
                    self._init_locals_src[arg.arg] = default
                self._init_top = {id(st) for st in init.body}

    def _define(self, node: ast.FunctionDef, namespace: dict[str, Any]) -> None:
        try:
            exec(_compile_def(node, self.file.display), self._globals, namespace)  # the file's own def, alone
        except Exception as exc:
            self._broken[node.name] = describe_exception(exc)

    def instance(self, model: Any, training: bool = False) -> Any:
        """A ``self`` of the wrapper class holding ``model``."""
        return _SourceSelf(self, model, training)

    def init_locals(self, obj: Any) -> dict[str, Any]:
        """``__init__``'s arguments as ``cls(model)`` binds them: the model first, defaults after."""
        out: dict[str, Any] = {}
        for i, (name, default) in enumerate(self._init_locals_src.items()):
            if i == 0:
                out[name] = obj.__dict__["model"]
            elif default is not None:
                try:
                    out[name] = self.evaluate(ast.unparse(default), {})
                except Exception:
                    continue
        return out

    def attribute(self, obj: Any, name: str) -> Any:
        if name in self._methods:
            return types.MethodType(self._methods[name], obj)
        if name in self._broken:
            raise Unresolved(f"self.{name}", None, f"its source cannot be compiled alone ({self._broken[name]})")
        places = self._attrs.get(name)
        if not places:
            raise AttributeError(f"{self.file.class_name!r} object has no attribute {name!r}")
        where, stmt = places[0]
        value = getattr(stmt, "value", None)
        if (
            len(places) > 1
            or where != "__init__"
            or id(stmt) not in self._init_top
            or not isinstance(stmt, (ast.Assign, ast.AnnAssign))
            or value is None
        ):
            raise Unresolved(f"self.{name}", None, "set where the source alone cannot tell its value")
        busy: set[str] = obj.__dict__["_headaudit_busy"]
        if name in busy:
            raise Unresolved(f"self.{name}", None, "its value refers to itself")
        busy.add(name)
        try:
            result = self.evaluate(ast.unparse(value), {"self": obj, **self.init_locals(obj)})
        finally:
            busy.discard(name)
        obj.__dict__[name] = result
        return result

    def evaluate(self, expression: str, local: dict[str, Any]) -> Any:
        """``expression`` evaluated on ``local``; raises :class:`Unresolved` naming what it lacks."""
        code = compile(expression, self.file.display, "eval")
        for _ in range(64):
            try:
                return eval(code, self._globals, dict(local))  # the wrapper's own text
            except NameError as exc:
                self._resolve(exc.name or str(exc))
        raise Unresolved(expression, None, "needs too many imported names")

    def _resolve(self, name: str) -> None:
        if name in self._broken:
            raise Unresolved(name, None, f"its source cannot be compiled alone ({self._broken[name]})")
        if name not in self._imports:
            if name in self._init_locals_src:
                raise Unresolved(name, None, "a constructor argument the audit does not pass")
            raise Unresolved(name)
        module, attr = self._imports[name]
        missing = self.file.missing_module
        if module.startswith("."):
            raise Unresolved(name, module, "a relative import of the wrapper's package")
        if missing and (module == missing or module.startswith(missing + ".") or missing.startswith(module + ".")):
            raise Unresolved(name, module, "not importable here")
        import importlib

        try:
            with captured():
                value: Any = importlib.import_module(module)
                if attr is not None:
                    value = (
                        getattr(value, attr) if hasattr(value, attr) else importlib.import_module(f"{module}.{attr}")
                    )
        except (Exception, SystemExit) as exc:
            raise Unresolved(name, module, describe_exception(exc)) from None
        self._globals[name] = value


def source_detection(source: WrapperSource, site: DetectionSite, model: Any, head: str) -> SourceDetection:
    """What ``site`` gives for a ``model`` holding the head, read from the source alone."""
    obj = source.instance(model, training=False)
    local = {"self": obj, **(source.init_locals(obj) if site.function.endswith(".__init__") else {})}
    try:
        with captured():
            value = source.evaluate(site.expression, local)
        return SourceDetection(head, bool(value))
    except Unresolved as exc:
        return SourceDetection(head, None, str(exc))
    except (Exception, SystemExit) as exc:  # the source's own raise, on a wrapper made without its constructor
        return SourceDetection(head, None, describe_exception(exc))
