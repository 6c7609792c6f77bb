"""The precision a compared value was actually computed in, and the one tolerance rule built on it.

A head can compute in a coarser dtype than the tensors it returns: under
``torch.autocast`` its matrix products run in bfloat16 or float16 while normalisation and
the values handed back stay float32; with bfloat16 parameters everything rounds at
bfloat16; a float64 head may compute one term in float32 and cast it back. Comparing
such a value at its returned dtype's rounding blames the head for its precision, not for
what it computes; comparing every value at the coarsest dtype seen anywhere hides
defects (one unused bfloat16 tensor would loosen every comparison of a float32 head).

**The rule: a comparison's tolerance comes from the lowest precision on the path that
produced the compared value.** Every call into a subject
(:func:`headaudit.sandbox.call_subject`) runs under a
:class:`~torch.overrides.TorchFunctionMode` that gives each tensor a subject's torch call
produces a node: its own dtype (after autocast chose it) and the nodes of the call's tensor
inputs (a map of weak references, so nothing is kept alive). A tensor nobody recorded (the checker
made it: inputs, a detached copy; or a parameter) is a leaf carrying just its own dtype.
:func:`computed_in` walks back from the compared value(s):

- on their own, through every value they were computed from: a float32 Gram matrix cast
  to float64 is float32, a float64 head fed float32 inputs is float32;
- with ``sources``, the subject's tensors an oracle was computed from (the returned
  logits a cross-entropy oracle reads), only through what was computed after them:
  whatever produced a source is shared by both sides of the comparison and cancels. An
  autocast region that produced the logits does not loosen the comparison of a loss
  computed from them; a bfloat16 tensor that does not lead to the value never counts.

:func:`tolerance` (and :func:`amplified`, for a quantity solved for from compared values)
takes the compared value(s), or the precision :func:`computed_in` already found, and is
the only tolerance rule of the checks: ``ulps`` units of that dtype's epsilon, times
``max(1, magnitude)`` (64 ulps covers the rounding of a few dozen float32 operations; a
real defect moves a value by orders of magnitude more); for bfloat16 or float16, at least
:data:`REDUCED_ROUNDINGS` units of its epsilon times the magnitude. Reduced-precision
kernels accumulate in float32 and round once per operation, so a correct head's error is
about one unit at the value's magnitude; eight leave room for a chain of them and still
catch a wrong formula, which moves a value by tens of percent. A check whose measured
effect falls below that resolution has learnt nothing (:func:`is_reduced` says whether a
precision is reduced): it says so, it does not fail the head.

Recording is per check: the runner opens :func:`recording` around a check's measurement;
each tolerance notes the dtype it was taken at, :func:`compared_at` lists them for the
evidence, and the checks name the dtype next to each tolerance they report. The recorder
runs on every torch call a subject makes, so it does as little as it can: a call that
returns no tensor costs one type test, one that does costs one small node per output.
Limits, on the safe side: a tensor written in place through a view keeps its old node
(its view's new node records the write), and a value the checker derived outside a
subject call (``.detach()``, ``.double()``) is a leaf of its own dtype, which can only
make a comparison stricter, so checks pass the subject's own tensors.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

__all__ = [
    "REDUCED_ROUNDINGS",
    "Compared",
    "amplified",
    "coarsest",
    "compared_at",
    "computed_in",
    "derived",
    "dtype_name",
    "is_reduced",
    "moved_in",
    "observing",
    "recording",
    "tolerance",
]

#: Units of a reduced-precision dtype's epsilon (times the magnitude) that a correct head
#: computing in it may be off by.
REDUCED_ROUNDINGS = 8.0

_FLOAT32_EPS = torch.finfo(torch.float32).eps

#: What a comparison can name: the compared tensor(s) (their provenance decides), or a
#: dtype (a value the checker computed itself, at that dtype).
Compared = torch.Tensor | Sequence[object] | Mapping[str, object] | torch.dtype


#: Epsilon of each floating dtype (``torch.finfo`` builds an object per call: too slow here).
_EPS: dict[torch.dtype, float] = {
    d: torch.finfo(d).eps for d in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
}


def _eps(dtype: torch.dtype | None) -> float:
    """Epsilon of a floating dtype; 0 for anything exact (integers, booleans, no dtype)."""
    if dtype is None:
        return 0.0
    found = _EPS.get(dtype)
    if found is None:
        found = _EPS[dtype] = torch.finfo(dtype).eps if dtype.is_floating_point else 0.0
    return found


class _Node:
    """One tensor a subject's torch call produced (or a tensor it read that nobody recorded).

    ``dtype`` is the tensor's own floating dtype (None for an exact one: integers, booleans),
    ``parents`` the nodes of the call's tensor inputs, ``worst`` the coarsest floating dtype
    among itself and all its ancestors (its provenance, kept so the common query is O(1)).
    Nodes hold no tensor data: the graph outlives the intermediate tensors cheaply.
    """

    __slots__ = ("dtype", "parents", "worst")

    dtype: torch.dtype | None
    parents: tuple[_Node, ...]
    worst: torch.dtype | None

    def __init__(self, dtype: torch.dtype, parents: tuple[_Node, ...]) -> None:
        own = dtype if _eps(dtype) else None
        self.dtype = own
        self.parents = parents
        worst, coarse = own, _eps(own)
        for parent in parents:
            if _eps(parent.worst) > coarse:
                worst, coarse = parent.worst, _eps(parent.worst)
        self.worst = worst


class _Ref(weakref.ref):
    """A weak reference that remembers the id it is filed under."""

    __slots__ = ("key",)
    key: int


class _Seen:
    """One check's record: the provenance graph, the dtypes compared at, whether a call is open.

    The graph maps ``id(tensor)`` to a weak reference and the tensor's node; the reference's
    callback drops the entry when the tensor dies (before its id can be reused), so nothing
    is kept alive and a lookup is one dict access (cheaper than a weak-keyed dictionary).
    """

    def __init__(self) -> None:
        self.nodes: dict[int, tuple[_Ref, _Node]] = {}
        self.compared: set[torch.dtype] = set()
        self.depth = 0
        self.forget = self._forget  # one bound method for every reference's callback

    def node(self, tensor: torch.Tensor) -> _Node:
        """The tensor's node; one it has never seen is a leaf carrying just its own dtype.

        A tensor whose dtype is no longer its node's had its data replaced since
        (``module.double()`` assigns ``param.data``): it is a new leaf, not what its old
        data was computed from."""
        entry = self.nodes.get(id(tensor))
        current = tensor.dtype if _eps(tensor.dtype) else None
        if entry is not None and entry[0]() is tensor and entry[1].dtype == current:
            return entry[1]
        return self.set(tensor, _Node(tensor.dtype, ()))

    def set(self, tensor: torch.Tensor, node: _Node) -> _Node:
        ref = _Ref(tensor, self.forget)
        ref.key = id(tensor)
        self.nodes[ref.key] = (ref, node)
        return node

    def _forget(self, ref: _Ref) -> None:
        entry = self.nodes.get(ref.key)
        if entry is not None and entry[0] is ref:
            del self.nodes[ref.key]


_CURRENT: ContextVar[_Seen | None] = ContextVar("headaudit_precision", default=None)
_SETITEM = torch.Tensor.__setitem__


def _has_tensor(value: object) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (tuple, list)):
        return any(_has_tensor(item) for item in value)
    return False


def _inputs(values: Iterable[object], seen: _Seen, into: list[_Node]) -> None:
    for value in values:
        if isinstance(value, torch.Tensor):
            into.append(seen.node(value))
        elif isinstance(value, (tuple, list)) and value:
            _inputs(value, seen, into)


def _produce(value: object, parents: tuple[_Node, ...], seen: _Seen) -> None:
    if isinstance(value, torch.Tensor):
        seen.set(value, _Node(value.dtype, parents))
    elif isinstance(value, (tuple, list)):
        for item in value:
            _produce(item, parents, seen)


class _Recorder(TorchFunctionMode):
    """Gives every tensor a subject's torch call returns a node: its dtype (after autocast
    chose it) and the nodes of the call's tensor inputs. An in-place call (or
    ``__setitem__``) gives the written tensor a new node whose parents include its old one.
    Calls that return no tensor (``size``, ``item``, ``__repr__``) cost one type test."""

    def __init__(self, seen: _Seen) -> None:
        super().__init__()
        self.seen = seen

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        out = func(*args, **kwargs) if kwargs else func(*args)
        written = args[0] if func is _SETITEM and args else out
        if not isinstance(written, torch.Tensor) and not (isinstance(written, (tuple, list)) and _has_tensor(written)):
            return out
        seen = self.seen
        parents: list[_Node] = []
        for value in args:
            if isinstance(value, torch.Tensor):
                parents.append(seen.node(value))
            elif isinstance(value, (tuple, list)) and value:
                _inputs(value, seen, parents)
        if kwargs:
            _inputs(kwargs.values(), seen, parents)
        if isinstance(written, torch.Tensor):
            seen.set(written, _Node(written.dtype, tuple(parents)))
        else:
            _produce(written, tuple(parents), seen)
        return out


@contextlib.contextmanager
def recording() -> Iterator[None]:
    """Record, for the duration, how subjects compute (one check's measurement)."""
    seen = _Seen()
    token = _CURRENT.set(seen)
    try:
        yield
    finally:
        _CURRENT.reset(token)
        seen.nodes.clear()  # long-lived tensors' callbacks keep the record: not its graph


@contextlib.contextmanager
def observing() -> Iterator[None]:
    """Around one call into the subject: record the provenance of what its torch calls produce.

    Nested calls share the outer observation; outside :func:`recording` it does nothing,
    and it never runs while ``torch.compile`` traces.
    """
    seen = _CURRENT.get()
    if seen is None or seen.depth or torch.compiler.is_compiling():
        yield
        return
    seen.depth += 1
    try:
        with _Recorder(seen):
            yield
    finally:
        seen.depth -= 1


def _tensors(values: object) -> list[torch.Tensor]:
    """The tensors in ``values``: a tensor, or tuples, lists and dict values holding them."""
    if isinstance(values, torch.Tensor):
        return [values]
    if isinstance(values, Mapping):
        values = list(values.values())
    if not isinstance(values, (tuple, list)):
        return []
    found: list[torch.Tensor] = []
    for value in values:
        found += _tensors(value)
    return found


def _ancestry(starts: Iterable[_Node]) -> set[int]:
    """The ids of ``starts`` and of every node they were computed from."""
    found: set[int] = set()
    stack = list(starts)
    while stack:
        node = stack.pop()
        if id(node) not in found:
            found.add(id(node))
            stack.extend(node.parents)
    return found


def computed_in(compared: object, sources: object = (), default: torch.dtype = torch.float32) -> torch.dtype:
    """The precision of ``compared``: the coarsest floating dtype on the path that produced it.

    ``compared`` is a tensor or any nesting of tuples, lists and dict values holding tensors
    (several values compared together: the coarsest of them). Each counts its own dtype
    and the dtypes of the values it was computed from; with ``sources`` (the subject's
    tensors the oracle was computed from), only what was computed after them: values that
    were already part of producing a source are shared by both sides of the comparison
    and do not count, so an autocast region upstream of the returned logits does not
    loosen the comparison of a loss computed from those logits. A tensor nothing recorded
    (the checker made it, or no check is recording) carries just its own dtype;
    ``default`` answers when ``compared`` holds no tensor at all (a plain number).
    """
    tensors = _tensors(compared)
    if not tensors:
        return default
    seen = _CURRENT.get()
    found: list[torch.dtype | None] = [t.dtype for t in tensors]
    if seen is not None:
        shared = _ancestry(seen.node(t) for t in _tensors(sources))
        for tensor in tensors:
            node = seen.node(tensor)
            found += _outside(shared, node) if shared else [node.worst]
    return _coarsest_of(found) or default


def _coarsest_of(dtypes: Iterable[torch.dtype | None]) -> torch.dtype | None:
    """The floating dtype with the largest epsilon, the first of equals; None where none
    is floating (integers, booleans and exact nodes have no rounding)."""
    return max((d for d in dtypes if _eps(d)), key=_eps, default=None)


def moved_in(compared: object, moved: object, default: torch.dtype = torch.float32) -> torch.dtype:
    """The precision a finite difference of ``compared`` along ``moved`` sees: the coarsest
    floating dtype on the paths from the ``moved`` tensors to it (theirs included).

    Unlike :func:`computed_in`, what fed the computation without depending on ``moved``
    (a float32 class weight in a float64 loss) does not count: it is the same value at
    every step of the difference, so its rounding cancels. Only right where both sides
    of the comparison are the same function of ``moved`` (a finite difference against
    autograd); an oracle that recomputes an input itself needs :func:`computed_in`.
    Where ``compared`` is not computed from ``moved`` at all, :func:`computed_in`.
    """
    seen = _CURRENT.get()
    tensors = _tensors(compared)
    if seen is None or not tensors:
        return computed_in(compared, default=default)
    starts = {id(seen.node(t)) for t in _tensors(moved)}
    found: list[torch.dtype | None] = []
    for tensor in tensors:
        on_path = _between(starts, seen.node(tensor))
        found += on_path if on_path is not None else [computed_in(tensor, default=default)]
    return _coarsest_of(found) or default


def _between(sources: set[int], node: _Node) -> list[torch.dtype | None] | None:
    """The dtypes of the nodes on a path from a source to ``node`` (sources included), or
    None when no path leads there."""
    reaches: dict[int, bool] = {}
    order: list[_Node] = []
    stack: list[tuple[_Node, bool]] = [(node, False)]
    while stack:  # iterative post-order: graphs of a long forward are deep
        current, done = stack.pop()
        key = id(current)
        if done:
            reaches[key] = any(reaches.get(id(p), False) for p in current.parents)
            order.append(current)
            continue
        if key in reaches:
            continue
        if key in sources:  # a source: what it was computed from does not move
            reaches[key] = True
            order.append(current)
            continue
        reaches[key] = False  # seen; set for real once its parents are done (a DAG: no cycle)
        stack.append((current, True))
        stack.extend((p, False) for p in current.parents)
    if not reaches.get(id(node), False):
        return None
    return [n.dtype for n in order if reaches.get(id(n), False)]


def _outside(shared: set[int], node: _Node) -> list[torch.dtype | None]:
    """The dtypes of ``node`` and what it was computed from, less the ``shared`` nodes."""
    found: list[torch.dtype | None] = []
    stack, visited = [node], set(shared)
    while stack:
        current = stack.pop()
        if id(current) in visited:
            continue
        visited.add(id(current))
        found.append(current.dtype)
        stack.extend(current.parents)
    return found


def derived(copy: torch.Tensor, *originals: torch.Tensor) -> torch.Tensor:
    """Let a tensor the checker derived from the subject's (a ``.detach()``, a ``.clone()``)
    carry their provenance, and return it (outside :func:`recording`, just return it)."""
    seen = _CURRENT.get()
    if seen is not None:
        seen.set(copy, _Node(copy.dtype, tuple(seen.node(t) for t in originals)))
    return copy


def is_reduced(dtype: torch.dtype) -> bool:
    """Whether ``dtype`` is coarser than float32 (bfloat16, float16): the reduced-precision rule."""
    return _eps(dtype) > _FLOAT32_EPS


def tolerance(compared: Compared, magnitude: float = 1.0, ulps: float = 64.0, *, sources: object = ()) -> float:
    """How far a compared value of about ``magnitude`` may be off (the rule above).

    ``compared`` is the compared value(s), whose precision :func:`computed_in` finds (with
    ``sources``, the subject's tensors the oracle was computed from), or that precision
    already found (a dtype). ``ulps`` applies at float32 or finer; bfloat16 and float16
    get the reduced-precision rule. The dtype is noted for the check's evidence.
    """
    dtype = compared if isinstance(compared, torch.dtype) else computed_in(compared, sources)
    seen = _CURRENT.get()
    if seen is not None:
        seen.compared.add(dtype)
    eps = _eps(dtype) or torch.finfo(torch.float64).eps
    scale = max(1.0, abs(magnitude))
    if not is_reduced(dtype):
        return float(ulps * eps * scale)
    return float(max(ulps * _FLOAT32_EPS, REDUCED_ROUNDINGS * eps) * scale)


def amplified(
    compared: Compared, magnitude: float, condition: float, ulps: float = 64.0, *, sources: object = ()
) -> float:
    """Tolerance on a quantity solved for from compared values (a least-squares fit).

    Two sources: the quantity's own rounding where it was computed (:func:`tolerance` of
    ``compared`` at ``magnitude``, the precision of its path and the reduced-precision rule
    included), and the rounding of the values it is read from as they are stored (``ulps``
    of the coarsest dtype of ``compared`` and ``sources``), amplified by the fit's
    ``condition`` number. A bfloat16 step inside the computation widens the first, not the
    amplified second: the fit reads the stored values, not the step.
    """
    if isinstance(compared, torch.dtype):
        precision = stored = compared
    else:
        precision = computed_in(compared, sources)
        read = [t.dtype for t in _tensors(compared) + _tensors(sources)]
        stored = max(read, key=_eps) if read else precision
    eps = _eps(stored) or torch.finfo(torch.float64).eps
    read_rounding = ulps * eps * max(1.0, abs(condition)) * max(1.0, abs(magnitude))
    return float(max(tolerance(precision, magnitude, ulps), read_rounding))


def compared_at() -> tuple[torch.dtype, ...]:
    """The precisions this check's tolerances were taken at, coarsest first."""
    seen = _CURRENT.get()
    if seen is None:
        return ()
    return tuple(sorted(seen.compared, key=lambda d: (-_eps(d), str(d))))


def coarsest(*dtypes: torch.dtype) -> torch.dtype:
    """The floating dtype with the largest epsilon among ``dtypes`` (the precision a result
    can be trusted to when its inputs or its computation had that precision): a float64
    head fed float32 inputs is compared at float32's rounding."""
    floating = [d for d in dtypes if d.is_floating_point] or [torch.float64]
    return max(floating, key=lambda d: torch.finfo(d).eps)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")
