"""What a host's method does with the head's return, read from its source alone.

A host that cannot be imported (the real one imports timm) can still be judged where its
source decides: ``head_output = self.head(...)`` followed by ``if len(head_output) == 3:
logits, loss, loss_dict = head_output`` / ``else: logits, loss = head_output``. Given the
*shape* of what the head returned (measured on the head alone: a tuple of 3 with a dict
last, say) and the mode, :func:`follow` walks the method's statements from its first line
and evaluates, on that shape, what decides the path:

- conditions: ``len(x)`` of the returned tuple, list or dict, comparisons (``==``, ``!=``,
  ``<``, ``<=``, ``>``, ``>=``, ``in``, ``is``), ``isinstance`` against ``tuple``,
  ``list``, ``dict``, ``Mapping``, ``Sequence`` and ``Tensor`` (for the return and for its
  elements), ``and``/``or``/``not``, ``self.training`` and whether the target argument
  was passed (``target is not None``);
- what can raise on the return's structure: an unpack (``a, b = head_output``, ``a, *rest
  = ...``), an index (``head_output[2]``, slices), an element used as what it is not (a
  returned tensor's ``.items()`` or ``**``, a returned dict's ``.detach()``), an explicit
  ``raise`` or ``assert``.
  The predicted error is the one Python gives for the same operation on a value of the
  same length (``ValueError: too many values to unpack (expected 2)``, ``IndexError:
  tuple index out of range``), produced by performing it here;
- where the head's loss dict goes: the keys of the mappings the method returns, as far as
  they follow from the source (a literal key, ``**loss_dict``, ``dict(loss_dict)``,
  ``.update(loss_dict)``, a comprehension over ``loss_dict.items()`` keyed by its key).

A condition that reads something the source alone does not give (an attribute only the
constructor sets, a call into the backbone) forks the walk; when both arms end alike it is
decided anyway, otherwise the path is ``undecided``, naming the condition and its line.
Anything done to a value derived from the head's return that is not modelled (unpacking
what a helper returned from it, a loop over it whose body returns) is ``undecided`` too:
the reader never guesses. Operations on other values (the backbone's tensors) are assumed
not to raise: the walk judges the call site, not the rest of the host.

Pure: no import of the file, nothing run but the stand-in operations on plain tuples.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HostPath", "ReturnShape", "follow"]

#: Kinds of a returned value or of one of its elements, as measured on the head.
KINDS = ("tuple", "list", "dict", "mapping", "tensor", "none", "other")
_MAX_PATHS = 256


@dataclass(frozen=True)
class ReturnShape:
    """What the head returned, as far as a host's dispatch can see it.

    ``kind`` is one of :data:`KINDS` (``dict``: a ``dict``; ``mapping``: another
    ``Mapping``; ``other``: none of the others). ``elements`` are the kinds of the items of
    a returned tuple or list, ``keys`` the keys of each item that is a mapping (empty
    otherwise); for a returned mapping, ``keys[0]`` are its keys and ``elements`` is empty.
    """

    kind: str
    elements: tuple[str, ...] = ()
    keys: tuple[tuple[str, ...], ...] = ()

    @property
    def sized(self) -> bool:
        return self.kind in ("tuple", "list", "dict", "mapping")

    def length(self) -> int:
        return len(self.elements) if self.kind in ("tuple", "list") else len(self.keys[0] if self.keys else ())


@dataclass(frozen=True)
class HostPath:
    """Where the walk of one host method ended, for one return shape and mode.

    ``outcome``: ``returns`` (the method returns), ``raises`` (``detail`` is the predicted
    exception, ``operation`` what raised: ``unpack:N`` (N names, ``unpack:N+`` with a
    starred name), ``index:TEXT``, ``attribute:NAME`` (a dict's method read on a returned
    tensor, a tensor's on a returned dict), ``spread`` (``**`` of a returned tensor),
    ``raise`` or ``assert``, at ``line``) or ``undecided``
    (``detail`` says what the source does not give, at ``line``). ``branches`` are the
    conditions the path evaluated, ``"LINE: TEXT -> True|False"``. ``called``: whether the
    head was called on the path. ``keys``: the keys of the mappings the method returns
    (top level, or items of a returned tuple), as far as the source gives them;
    ``open_keys``: a returned value derived from the head may hold other keys.
    """

    outcome: str
    detail: str = ""
    line: int | None = None
    operation: str = ""
    branches: tuple[str, ...] = ()
    called: bool = False
    keys: tuple[str, ...] = ()
    open_keys: bool = False

    def ending(self) -> tuple[Any, ...]:
        """What two paths must share to end alike (their branches aside)."""
        return (self.outcome, self.detail, self.line, self.operation, self.called, self.keys, self.open_keys)


# --- abstract values ---------------------------------------------------------------------------

_RETURN = "return"  # taint of the head's whole return


@dataclass(frozen=True)
class _V:
    """An abstract value.

    ``kind``: ``known`` (``value`` is the Python value), ``return`` (the head's return),
    ``elem`` (``value`` its index, ``type`` its kind), ``seq`` (``value``: the items, a
    tuple or list built in the host, ``type`` which), ``dict`` (``value``: entries
    ``(key value or None for a spread, value)``), ``view`` (``value``: (method, mapping)
    from ``.items()``/``.keys()``/``.values()``), ``loopkey`` (a loop's key over a
    mapping, ``value`` the mapping), ``arg`` (a passed argument), ``self``, ``head`` (the
    head, callable), ``opaque`` (not known: ``why`` says what it is).
    ``taint``: what of the head it derives from (``return``, ``elem:I``, ``head``).
    """

    kind: str
    value: Any = None
    type: str = ""
    taint: frozenset[str] = frozenset()
    why: str = ""


def _known(value: Any) -> _V:
    return _V("known", value)


def _opaque(why: str, *parts: _V) -> _V:
    taint: frozenset[str] = frozenset().union(*(p.taint for p in parts)) if parts else frozenset()
    return _V("opaque", why=why, taint=taint)


class _Raised(Exception):
    def __init__(self, detail: str, line: int, operation: str) -> None:
        super().__init__(detail)
        self.detail, self.line, self.operation = detail, line, operation


class _Undecided(Exception):
    def __init__(self, why: str, line: int) -> None:
        super().__init__(why)
        self.why, self.line = why, line


def _described(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _stand_in(kind: str, length: int) -> Any:
    items = tuple(range(length))
    return list(items) if kind == "list" else ({f"k{i}": i for i in items} if kind in ("dict", "mapping") else items)


def _unpack_error(names: int, starred: bool, kind: str, length: int) -> str | None:
    """What ``a, b(, *c) = value`` raises for a ``kind`` value of ``length`` items (None: nothing)."""
    targets = [f"_{i}" for i in range(names)] + (["*_rest"] if starred else [])
    code = compile(f"{', '.join(targets)}, = value", "<unpack>", "exec")
    try:
        exec(code, {"__builtins__": {}}, {"value": _stand_in(kind, length)})  # a stand-in of the same length
    except ValueError as exc:
        return _described(exc)
    return None


class Tensor:
    """A stand-in named as torch's tensor class, for the messages of what a tensor lacks."""


#: Attributes of a dict that a tensor does not have (a dict's API used on a tensor element).
_MAPPING_ONLY = ("items", "keys", "get", "update", "setdefault", "popitem")


def _attribute_error(kind: str, name: str) -> str | None:
    """What reading ``.name`` of an element of ``kind`` raises (None: nothing, or not known).

    A ``dict`` or ``None`` element is the real thing; a tensor is judged only on a dict's
    own methods, which it lacks (the message is the one torch gives, ``'Tensor' object has
    no attribute 'items'``); other kinds are not judged."""
    value: Any
    if kind == "dict":
        value = {}
    elif kind == "none":
        value = None
    elif kind == "tensor" and name in _MAPPING_ONLY:
        value = Tensor()
    else:
        return None
    try:
        getattr(value, name)
    except AttributeError as exc:
        return _described(exc)
    return None


def _index_error(kind: str, length: int, index: Any) -> str | None:
    try:
        _stand_in(kind, length)[index]
    except (IndexError, TypeError) as exc:
        return _described(exc)
    return None


#: isinstance truth per (kind of the value, type name); None where the kind does not decide it.
_ISINSTANCE: dict[str, dict[str, bool | None]] = {
    "tuple": {"tuple": True, "list": False, "dict": False, "Mapping": False, "MutableMapping": False,
              "Sequence": True, "Tensor": False, "NoneType": False},
    "list": {"tuple": False, "list": True, "dict": False, "Mapping": False, "MutableMapping": False,
             "Sequence": True, "Tensor": False, "NoneType": False},
    "dict": {"tuple": False, "list": False, "dict": True, "Mapping": True, "MutableMapping": True,
             "Sequence": False, "Tensor": False, "NoneType": False},
    "mapping": {"tuple": False, "list": False, "dict": False, "Mapping": True, "MutableMapping": None,
                "Sequence": False, "Tensor": False, "NoneType": False},
    "tensor": {"tuple": False, "list": False, "dict": False, "Mapping": False, "MutableMapping": False,
               "Sequence": False, "Tensor": True, "NoneType": False},
    "none": {"tuple": False, "list": False, "dict": False, "Mapping": False, "MutableMapping": False,
             "Sequence": False, "Tensor": False, "NoneType": True},
    "other": {"tuple": False, "list": False, "dict": False, "Mapping": False, "MutableMapping": False,
              "Sequence": None, "Tensor": False, "NoneType": False},
}  # fmt: skip
_TYPE_NAMES = {"Dict": "dict", "Tuple": "tuple", "List": "list"}

_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}  # fmt: skip
_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}  # fmt: skip


# --- the walk ----------------------------------------------------------------------------------


@dataclass
class _State:
    env: dict[str, _V]
    branches: list[str] = field(default_factory=list)
    called: bool = False

    def fork(self) -> _State:
        return _State(dict(self.env), list(self.branches), self.called)


@dataclass
class _End:
    """A block's end: ``path`` set when the method ended (returned, raised, undecided)."""

    state: _State
    path: HostPath | None = None
    raised_type: str | None = None  # the exception type of a raise (for an enclosing try)


class _Walk:
    def __init__(self, shape: ReturnShape, training: bool, receiver: str) -> None:
        self.shape, self.training, self.receiver = shape, training, receiver
        self.paths = 0

    # --- expressions ------------------------------------------------------------------------

    def ev(self, node: ast.expr, st: _State) -> _V:
        if isinstance(node, ast.Constant):
            return _known(node.value)
        if isinstance(node, ast.Name):
            return st.env.get(node.id) or _opaque(node.id)
        if ast.unparse(node) in (self.receiver, f"{self.receiver}.forward"):
            return _V("head", taint=frozenset({"head"}))
        if isinstance(node, ast.Attribute):
            return self._attribute(node, st)
        if isinstance(node, ast.Call):
            return self._call(node, st)
        if isinstance(node, ast.Subscript):
            return self._subscript(node, st)
        if isinstance(node, (ast.Tuple, ast.List)):
            items = self._items(node.elts, st, node.lineno)
            if items is None:
                return _opaque(ast.unparse(node), *(self._taint_of(e, st) for e in node.elts))
            if all(i.kind == "known" for i in items):
                values = [i.value for i in items]
                return _known(tuple(values) if isinstance(node, ast.Tuple) else values)
            return _V("seq", tuple(items), "tuple" if isinstance(node, ast.Tuple) else "list")
        if isinstance(node, ast.Dict):
            entries = []
            for key, value in zip(node.keys, node.values, strict=True):
                k = self.ev(key, st) if key is not None else None
                v = self.ev(value, st)
                if k is None and v.kind == "elem" and v.type in ("tensor", "none"):
                    spread = Tensor() if v.type == "tensor" else None
                    try:  # the same spread, on a stand-in
                        exec(compile("{**value}", "<spread>", "eval"), {"__builtins__": {}}, {"value": spread})
                    except TypeError as exc:
                        raise _Raised(_described(exc), node.lineno, "spread") from None
                entries.append((k, v))
            return _V("dict", tuple(entries))
        if isinstance(node, ast.DictComp):
            return self._dict_comp(node, st)
        if isinstance(node, ast.Compare):
            return self._compare(node, st)
        if isinstance(node, ast.BoolOp):
            return self._bool_op(node, st)
        if isinstance(node, ast.UnaryOp):
            operand = self.ev(node.operand, st)
            if isinstance(node.op, ast.Not):
                truth = self.truth(operand)
                return _known(not truth) if truth is not None else _opaque(ast.unparse(node), operand)
            return _known(-operand.value) if operand.kind == "known" and isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.IfExp):
            test = self.ev(node.test, st)
            truth = self.truth(test)
            if truth is not None:
                return self.ev(node.body if truth else node.orelse, st)
            arms = []
            for arm in (node.body, node.orelse):
                try:
                    arms.append(self.ev(arm, st))
                except _Raised as exc:
                    raise _Undecided(f"`{ast.unparse(node.test)}`", node.lineno) from exc
            return arms[0] if arms[0] == arms[1] else _opaque(ast.unparse(node), test, *arms)
        if isinstance(node, ast.BinOp):
            left, right = self.ev(node.left, st), self.ev(node.right, st)
            op = _BINARY.get(type(node.op))
            if op is not None and left.kind == right.kind == "known":
                try:
                    return _known(op(left.value, right.value))
                except Exception:
                    pass
            return _opaque(ast.unparse(node), left, right)
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.GeneratorExp)):
            first = [self.ev(node.generators[0].iter, st)] if not isinstance(node, ast.Lambda) else []
            return _opaque(ast.unparse(node), *first, self._taint_of(node, st))
        if isinstance(node, ast.Starred):
            return self.ev(node.value, st)
        if isinstance(node, ast.NamedExpr):
            named = self.ev(node.value, st)
            self.bind(node.target, named, st, node.lineno)
            return named
        if isinstance(node, ast.Slice):
            bounds = [self.ev(b, st) if b is not None else _known(None) for b in (node.lower, node.upper, node.step)]
            if all(b.kind == "known" for b in bounds):
                return _known(slice(*(b.value for b in bounds)))
            return _opaque(ast.unparse(node), *bounds)
        parts = [self.ev(child, st) for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr)]
        return _opaque(ast.unparse(node), *parts)

    def _taint_of(self, node: ast.AST, st: _State) -> _V:
        """The taint of every name ``node`` reads (for what is not evaluated, e.g. a lambda)."""
        names = [st.env[n.id] for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in st.env]
        return _opaque("", *names)

    def _attribute(self, node: ast.Attribute, st: _State) -> _V:
        base = self.ev(node.value, st)
        if base.kind == "self":
            if node.attr == "training":
                return _known(self.training)
            return st.env.get(f"self.{node.attr}") or _opaque(f"self.{node.attr}")
        if base.kind == "head":
            return _V("head", taint=base.taint) if node.attr == "forward" else _opaque(ast.unparse(node), base)
        if node.attr in ("items", "keys", "values", "copy", "get") and self._mapping(base):
            return _V("method", (node.attr, base), taint=base.taint)
        if base.kind == "elem":
            error = _attribute_error(base.type, node.attr)
            if error is not None:
                raise _Raised(error, node.lineno, f"attribute:{node.attr}")
        return _opaque(ast.unparse(node), base)

    def _mapping(self, v: _V) -> bool:
        return v.kind == "dict" or (v.kind == "elem" and v.type in ("dict", "mapping"))

    def _call(self, node: ast.Call, st: _State) -> _V:
        func = node.func
        name = func.id if isinstance(func, ast.Name) and func.id not in st.env else None
        args = [self.ev(a, st) for a in node.args]
        kwargs = [self.ev(k.value, st) for k in node.keywords]
        if name == "len" and len(args) == 1:
            return self._len(args[0])
        if name == "isinstance" and len(args) == 2:
            return self._isinstance(args[0], node.args[1], node)
        if name in ("tuple", "list") and len(args) == 1 and args[0].kind in ("return", "seq"):
            items = self._iterate(args[0], node.lineno)
            if items is not None:
                return _V("seq", tuple(items), name)
        if name == "dict" and not node.keywords and len(args) == 1 and self._mapping(args[0]):
            return _V("dict", ((None, args[0]),))
        if name == "dict" and not node.args and all(k.arg is None for k in node.keywords):
            return _V("dict", tuple((None, k) for k in kwargs))
        callee = self.ev(func, st)
        if callee.kind == "head":
            st.called = True
            return _V("return", taint=frozenset({_RETURN}))
        if callee.kind == "method":
            method, mapping = callee.value
            if method == "copy":
                return _V("dict", ((None, mapping),))
            if method in ("items", "keys", "values"):
                return _V("view", (method, mapping), taint=mapping.taint)
        return _opaque(ast.unparse(node), callee, *args, *kwargs)

    def _len(self, v: _V) -> _V:
        if v.kind == "return" and self.shape.sized:
            return _known(self.shape.length())
        if v.kind == "seq":
            return _known(len(v.value))
        if v.kind == "known":
            try:
                return _known(len(v.value))
            except TypeError:
                pass
        return _opaque("len", v)

    def _kind_of(self, v: _V) -> str | None:
        if v.kind == "return":
            return self.shape.kind
        if v.kind == "elem":
            return v.type
        if v.kind == "seq":
            return str(v.type)
        if v.kind == "dict":
            return "dict"
        if v.kind == "known":
            value = v.value
            return {tuple: "tuple", list: "list", dict: "dict", type(None): "none"}.get(type(value), "other")
        return None

    def _isinstance(self, v: _V, spec: ast.expr, node: ast.Call) -> _V:
        kind = self._kind_of(v)
        specs = spec.elts if isinstance(spec, ast.Tuple) else [spec]
        names = []
        for s in specs:
            text = ast.unparse(s)
            last = "NoneType" if text == "type(None)" else text.rsplit(".", 1)[-1]
            names.append(_TYPE_NAMES.get(last, last))
        if kind is None or any(n not in _ISINSTANCE["tuple"] for n in names):
            return _opaque(ast.unparse(node), v)
        truths = [_ISINSTANCE[kind][n] for n in names]
        if any(t is True for t in truths):
            return _known(True)
        if all(t is False for t in truths):
            return _known(False)
        return _opaque(ast.unparse(node), v)

    def _elements(self, v: _V) -> list[_V] | None:
        """The items of a returned tuple/list or a seq; None where not known."""
        if v.kind == "seq":
            return list(v.value)
        if v.kind == "return" and self.shape.kind in ("tuple", "list"):
            return [_V("elem", i, kind, frozenset({f"elem:{i}"})) for i, kind in enumerate(self.shape.elements)]
        if v.kind == "return" and self.shape.kind in ("dict", "mapping"):
            return [_V("known", k, taint=frozenset({_RETURN})) for k in (self.shape.keys[0] if self.shape.keys else ())]
        if v.kind == "known" and isinstance(v.value, (tuple, list)):
            return [_known(x) for x in v.value]
        return None

    def _iterate(self, v: _V, line: int) -> list[_V] | None:
        items = self._elements(v)
        if items is None and v.kind == "return":
            raise _Undecided(f"the head returns a {self.shape.kind}, whose items are not known", line)
        return items

    def _subscript(self, node: ast.Subscript, st: _State) -> _V:
        base = self.ev(node.value, st)
        index = self.ev(node.slice, st)
        if base.kind in ("return", "seq") and not (base.kind == "return" and self.shape.kind in ("dict", "mapping")):
            items = self._iterate(base, node.lineno)
            assert items is not None
            kind = "list" if (base.kind == "return" and self.shape.kind == "list") or base.type == "list" else "tuple"
            if index.kind != "known":
                if base.kind == "return":
                    raise _Undecided(f"`{ast.unparse(node)}`: the index is not known", node.lineno)
                return _opaque(ast.unparse(node), base, index)
            error = _index_error(kind, len(items), index.value)
            if error is not None:
                raise _Raised(error, node.lineno, f"index:{ast.unparse(node.slice)}")
            picked = items[index.value]
            return _V("seq", tuple(picked), kind) if isinstance(picked, list) else picked
        if base.kind == "known" and index.kind == "known":
            try:
                return _known(base.value[index.value])
            except Exception as exc:
                raise _Raised(_described(exc), node.lineno, f"index:{ast.unparse(node.slice)}") from None
        return _opaque(ast.unparse(node), base, index)

    def _items(self, elts: Sequence[ast.expr], st: _State, line: int) -> list[_V] | None:
        out: list[_V] = []
        for e in elts:
            if isinstance(e, ast.Starred):
                inner = self._elements(self.ev(e.value, st))
                if inner is None:
                    return None
                out.extend(inner)
            else:
                out.append(self.ev(e, st))
        return out

    def _dict_comp(self, node: ast.DictComp, st: _State) -> _V:
        gen = node.generators[0]
        source = self.ev(gen.iter, st)
        if len(node.generators) == 1 and source.kind == "view":
            method, mapping = source.value
            key_name = None
            if method == "items" and isinstance(gen.target, ast.Tuple) and len(gen.target.elts) == 2:
                first = gen.target.elts[0]
                key_name = first.id if isinstance(first, ast.Name) else None
            elif method == "keys" and isinstance(gen.target, ast.Name):
                key_name = gen.target.id
            if key_name is not None and _ends_with_name(node.key, key_name):
                return _V("dict", ((None, mapping),))  # every key kept (a prefix keeps the name)
        if (
            len(node.generators) == 1
            and self._mapping(source)
            and isinstance(gen.target, ast.Name)
            and _ends_with_name(node.key, gen.target.id)
        ):
            return _V("dict", ((None, source),))
        return _opaque(ast.unparse(node), source, self._taint_of(node, st))

    def _compare(self, node: ast.Compare, st: _State) -> _V:
        left = self.ev(node.left, st)
        parts = [left]
        result = True
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.ev(right_node, st)
            parts.append(right)
            truth = self._compare_one(op, left, right)
            if truth is None:
                return _opaque(ast.unparse(node), *parts)
            result = result and truth
            left = right
        return _known(result)

    def _compare_one(self, op: ast.cmpop, left: _V, right: _V) -> bool | None:
        if isinstance(op, (ast.Is, ast.IsNot)) and (right.kind == "known" and right.value is None):
            null = self._is_none(left)
            return None if null is None else (null if isinstance(op, ast.Is) else not null)
        if left.kind == right.kind == "known":
            try:
                return bool(_COMPARE[type(op)](left.value, right.value))
            except Exception:
                return None
        return None

    def _is_none(self, v: _V) -> bool | None:
        if v.kind == "known":
            return v.value is None
        if v.kind == "elem":
            return v.type == "none"
        if v.kind in ("return", "seq", "dict", "arg", "head", "self", "view"):
            return v.kind == "return" and self.shape.kind == "none"
        return None

    def _bool_op(self, node: ast.BoolOp, st: _State) -> _V:
        seen: list[_V] = []
        unknown = False
        for value_node in node.values:
            try:
                value = self.ev(value_node, st)
            except _Raised as exc:
                if unknown:  # evaluated only if the operands before it decide so
                    raise _Undecided(f"`{ast.unparse(node)}`", node.lineno) from exc
                raise
            seen.append(value)
            truth = self.truth(value)
            if truth is None:
                unknown = True
                continue
            if not unknown and truth == isinstance(node.op, ast.Or):
                return value  # short-circuit: this operand is the result
        if unknown:
            return _opaque(ast.unparse(node), *seen)
        return seen[-1]

    def truth(self, v: _V) -> bool | None:
        if v.kind == "known":
            try:
                return bool(v.value)
            except Exception:
                return None
        if v.kind == "seq":
            return bool(v.value)
        if v.kind == "return" and self.shape.kind in ("tuple", "list"):
            return self.shape.length() > 0
        if v.kind == "return" and self.shape.kind == "none":
            return False
        if v.kind == "elem" and v.type == "none":
            return False
        if v.kind in ("head", "self"):
            return True
        if v.kind == "dict" and all(k is not None for k, _ in v.value):  # a spread may be empty
            return bool(v.value)
        return None

    # --- statements ---------------------------------------------------------------------------

    def block(self, body: Sequence[ast.stmt], st: _State) -> _End:
        for i, stmt in enumerate(body):
            try:
                if isinstance(stmt, ast.If):
                    test = self.ev(stmt.test, st)
                    truth = self.truth(test)
                    text = ast.unparse(stmt.test)
                    if truth is None:
                        return self._fork(stmt, list(body[i + 1 :]), st)
                    st.branches.append(f"{stmt.lineno}: {text} -> {truth}")
                    end = self.block(stmt.body if truth else stmt.orelse, st)
                    if end.path is not None or end.raised_type is not None:
                        return end
                    st = end.state
                elif isinstance(stmt, ast.Return):
                    value = self.ev(stmt.value, st) if stmt.value is not None else _known(None)
                    keys, open_keys = _returned_keys(value, self.shape)
                    return _End(st, HostPath("returns", "", stmt.lineno, "", tuple(st.branches), st.called,
                                             tuple(sorted(set(keys))), open_keys))  # fmt: skip
                elif isinstance(stmt, ast.Raise):
                    if stmt.exc is None:
                        raise _Undecided("a bare `raise`", stmt.lineno)
                    self.ev(stmt.exc, st)  # what building the exception raises comes first
                    return self._raise(stmt, st)
                elif isinstance(stmt, ast.Assert):
                    test = self.ev(stmt.test, st)
                    truth = self.truth(test)
                    if truth is False:
                        msg = f": {stmt.msg.value!s}" if isinstance(stmt.msg, ast.Constant) else ""
                        raise _Raised(f"AssertionError{msg}", stmt.lineno, "assert")
                    if truth is None and test.taint:
                        raise _Undecided(f"`assert {ast.unparse(stmt.test)}`", stmt.lineno)
                elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                    if stmt.value is None:
                        continue
                    value = self.ev(stmt.value, st)
                    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                    for target in targets:
                        self.bind(target, value, st, stmt.lineno)
                elif isinstance(stmt, ast.AugAssign):
                    value = self.ev(stmt.value, st)
                    old = self.ev(stmt.target, st) if isinstance(stmt.target, ast.Name) else _opaque("")
                    self.bind(stmt.target, _opaque(ast.unparse(stmt), old, value), st, stmt.lineno)
                elif isinstance(stmt, ast.Expr):
                    self._expression_statement(stmt.value, st)
                elif isinstance(stmt, (ast.With, ast.AsyncWith)):
                    for item in stmt.items:
                        ctx = self.ev(item.context_expr, st)
                        if item.optional_vars is not None:
                            self.bind(item.optional_vars, _opaque(ast.unparse(item.context_expr), ctx), st, stmt.lineno)
                    return self.block([*stmt.body, *body[i + 1 :]], st)
                elif isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
                    st = self._loop(stmt, st)
                elif isinstance(stmt, ast.Try):
                    end = self._try(stmt, st)
                    if end.path is not None or end.raised_type is not None:
                        return end
                    st = end.state
                elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    st.env[stmt.name] = _opaque(stmt.name, self._taint_of(stmt, st))
                elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
                    for alias in stmt.names:
                        bound = alias.asname or alias.name.split(".")[0]
                        st.env[bound] = _opaque(bound)
                elif isinstance(stmt, (ast.Break, ast.Continue)):
                    return _End(st)
                elif isinstance(stmt, ast.Delete):
                    for target in stmt.targets:
                        if isinstance(target, ast.Name):
                            st.env.pop(target.id, None)
                elif isinstance(stmt, (ast.Pass, ast.Global, ast.Nonlocal)):
                    continue
                else:
                    raise _Undecided(f"a `{type(stmt).__name__}` statement", stmt.lineno)
            except _Raised as exc:
                path = HostPath("raises", exc.detail, exc.line, exc.operation, tuple(st.branches), st.called)
                return _End(st, path, exc.detail.split(":")[0])
            except _Undecided as exc:
                return _End(st, HostPath("undecided", exc.why, exc.line, "", tuple(st.branches), st.called))
        return _End(st)

    def _raise(self, stmt: ast.Raise, st: _State) -> _End:
        assert stmt.exc is not None
        exc = stmt.exc
        func = exc.func if isinstance(exc, ast.Call) else exc
        type_name = ast.unparse(func).rsplit(".", 1)[-1]
        first = exc.args[0] if isinstance(exc, ast.Call) and exc.args else None
        detail = f"{type_name}: {first.value!s}" if isinstance(first, ast.Constant) else ast.unparse(exc)
        path = HostPath("raises", detail, stmt.lineno, "raise", tuple(st.branches), st.called)
        return _End(st, path, type_name)

    def _fork(self, stmt: ast.If, rest: list[ast.stmt], st: _State) -> _End:
        self.paths += 2
        text = ast.unparse(stmt.test)
        if self.paths > _MAX_PATHS:
            return _End(st, HostPath("undecided", "too many branches to follow", stmt.lineno, "", tuple(st.branches)))
        ends = []
        for arm in (stmt.body, stmt.orelse):
            arm_state = st.fork()
            arm_state.branches.append(f"{stmt.lineno}: {text} -> ?")
            ends.append(self.block([*arm, *rest], arm_state))
        first, second = ends
        if first.path is not None and second.path is not None and first.path.ending() == second.path.ending():
            return first
        if (
            first.path is None
            and second.path is None
            and (first.state.env, first.state.called) == (second.state.env, second.state.called)
        ):
            return first  # both reached the end of a nested block with the same names: the rest runs alike
        why = f"`{text}`"
        return _End(st, HostPath("undecided", why, stmt.lineno, "", tuple(st.branches), st.called))

    def _expression_statement(self, node: ast.expr, st: _State) -> None:
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "update"
            and isinstance(node.func.value, ast.Name)
            and st.env.get(node.func.value.id, _V("")).kind == "dict"
            and len(node.args) == 1
            and not node.keywords
        ):
            name = node.func.value.id
            added = self.ev(node.args[0], st)
            st.env[name] = _V("dict", (*st.env[name].value, (None, added)))
            return
        self.ev(node, st)

    def bind(self, target: ast.expr, value: _V, st: _State, line: int) -> None:
        if isinstance(target, ast.Name):
            st.env[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            starred = [i for i, e in enumerate(target.elts) if isinstance(e, ast.Starred)]
            names = len(target.elts) - len(starred)
            items = self._elements(value)
            if items is None:
                if value.kind == "return" or _RETURN in value.taint:
                    what = f"a {self.shape.kind}" if value.kind == "return" else f"`{value.why}`"
                    raise _Undecided(f"unpacking {what} derived from the head's return", line)
                for e in target.elts:
                    self.bind(e.value if isinstance(e, ast.Starred) else e, _opaque("", value), st, line)
                return
            kind = str(value.type) if value.kind == "seq" else (self.shape.kind if value.kind == "return" else "tuple")
            error = _unpack_error(names, bool(starred), kind, len(items))
            if error is not None:
                raise _Raised(error, line, f"unpack:{names}{'+' if starred else ''}")
            if starred:
                at = starred[0]
                tail = len(target.elts) - at - 1
                rest = items[at : len(items) - tail]
                parts = [*items[:at], _V("seq", tuple(rest), "list"), *items[len(items) - tail :]]
            else:
                parts = items
            for e, part in zip(target.elts, parts, strict=True):
                self.bind(e.value if isinstance(e, ast.Starred) else e, part, st, line)
        elif isinstance(target, ast.Subscript):
            base = self.ev(target.value, st)
            key = self.ev(target.slice, st)
            if isinstance(target.value, ast.Name) and base.kind == "dict":
                loop = next(
                    (
                        st.env[n]
                        for n in {x.id for x in ast.walk(target.slice) if isinstance(x, ast.Name)}
                        if st.env.get(n, _V("")).kind == "loopkey" and _ends_with_name(target.slice, n)
                    ),
                    None,
                )
                entry = (None, loop.value) if loop is not None else (key, value)
                st.env[target.value.id] = _V("dict", (*base.value, entry))
        elif isinstance(target, ast.Attribute):
            owner = self.ev(target.value, st)
            if owner.kind == "self":
                st.env[f"self.{target.attr}"] = value
        elif isinstance(target, ast.Starred):
            self.bind(target.value, value, st, line)

    def _loop(self, stmt: ast.For | ast.AsyncFor | ast.While, st: _State) -> _State:
        """A loop's body once, on a copy: what it may assign becomes what either gives."""
        body_state = st.fork()
        if isinstance(stmt, ast.While):
            self.ev(stmt.test, st)
        else:
            source = self.ev(stmt.iter, st)
            if source.kind == "view" and isinstance(stmt.target, ast.Tuple) and source.value[0] == "items":
                key, value = stmt.target.elts[0], stmt.target.elts[1]
                self.bind(key, _V("loopkey", source.value[1], taint=source.taint), body_state, stmt.lineno)
                self.bind(value, _opaque(ast.unparse(value), source), body_state, stmt.lineno)
            elif (source.kind == "view" and source.value[0] == "keys") or self._mapping(source):
                mapping = source.value[1] if source.kind == "view" else source
                self.bind(stmt.target, _V("loopkey", mapping, taint=mapping.taint), body_state, stmt.lineno)
            elif source.kind == "return" or _RETURN in source.taint:
                raise _Undecided(f"a loop over `{ast.unparse(stmt.iter)}`", stmt.lineno)
            else:
                self.bind(stmt.target, _opaque(ast.unparse(stmt.target), source), body_state, stmt.lineno)
        end = self.block([*stmt.body, *stmt.orelse], body_state)
        if end.path is not None or end.raised_type is not None:  # whether the body runs is not known
            raise _Undecided("a loop whose body may end the method", stmt.lineno)
        out = st.fork()
        for name, after in end.state.env.items():
            before = st.env.get(name)
            if before == after:
                continue
            grown = before is not None and before.kind == after.kind == "dict"
            if grown and before is not None and after.value[: len(before.value)] == before.value:
                out.env[name] = after  # entries only added: a spread of an empty mapping adds nothing
            else:
                out.env[name] = _opaque(name, after, *([before] if before else []))
        out.called = st.called or end.state.called
        return out

    def _try(self, stmt: ast.Try, st: _State) -> _End:
        end = self.block(stmt.body, st.fork())
        if end.raised_type is not None:
            for handler in stmt.handlers:
                names = (
                    []
                    if handler.type is None
                    else [ast.unparse(t).rsplit(".", 1)[-1] for t in getattr(handler.type, "elts", [handler.type])]
                )
                if handler.type is None or end.raised_type in names or {"Exception", "BaseException"} & set(names):
                    state = end.state
                    state.branches.append(f"{handler.lineno}: except {', '.join(names) or '*'} -> {end.raised_type}")
                    if handler.name:
                        state.env[handler.name] = _opaque(handler.name)
                    end = self.block(handler.body, state)
                    break
        elif end.path is None:
            end = self.block(stmt.orelse, end.state)
        if stmt.finalbody:
            if end.path is not None and end.path.outcome == "undecided":
                return end
            after = self.block(stmt.finalbody, end.state.fork())
            if after.path is not None or after.raised_type is not None:
                return after
        return end


def _ends_with_name(node: ast.expr, name: str) -> bool:
    """The key expression is ``name``, or a text ending in it (``f"head/{k}"``, ``"head/" + k``)."""
    if isinstance(node, ast.Name):
        return node.id == name
    if isinstance(node, ast.JoinedStr) and node.values:
        last = node.values[-1]
        return (
            isinstance(last, ast.FormattedValue)
            and last.conversion == -1
            and not last.format_spec
            and (isinstance(last.value, ast.Name) and last.value.id == name)
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _ends_with_name(node.right, name)
    return False


def _returned_keys(value: _V, shape: ReturnShape) -> tuple[list[str], bool]:
    """Keys of the mappings a returned value holds (top level or as tuple items), and whether more may be."""
    if value.kind == "seq":
        keys: list[str] = []
        open_keys = False
        for item in value.value:
            k, o = _mapping_keys(item, shape)
            keys += k
            open_keys = open_keys or o
        return keys, open_keys
    if value.kind == "return" and shape.kind in ("tuple", "list"):
        return [k for ks in shape.keys for k in ks], False
    return _mapping_keys(value, shape)


def _mapping_keys(value: _V, shape: ReturnShape) -> tuple[list[str], bool]:
    if value.kind == "dict":
        keys: list[str] = []
        open_keys = False
        for key, item in value.value:
            if key is None:
                k, o = _mapping_keys(item, shape)
                keys += k
                open_keys = open_keys or o or not (item.kind == "dict" or item.kind == "elem")
            elif key.kind == "known" and isinstance(key.value, str):
                keys.append(key.value)
            elif key.taint or item.taint:  # a key not known, for a value from the head
                open_keys = True
        return keys, open_keys
    if value.kind == "elem":
        if value.type in ("dict", "mapping"):
            return list(shape.keys[value.value]) if value.value < len(shape.keys) else [], False
        return [], False
    if value.kind == "return":
        return (list(shape.keys[0]) if shape.keys else []) if shape.kind in ("dict", "mapping") else [], False
    if value.kind == "opaque":
        return [], bool(value.taint)
    return [], False


def follow(
    function: ast.FunctionDef | ast.AsyncFunctionDef,
    shape: ReturnShape,
    *,
    training: bool,
    target: bool,
    receiver: str = "self.head",
) -> HostPath:
    """Walk ``function`` (a host method) for a head returning ``shape`` (see the module docstring).

    The method is called as the audit calls a host: ``forward(images)`` without a target,
    ``forward(images, target=labels)`` (or the target as its second argument) with one;
    the other arguments take their defaults (a constant default is known, others are not).
    """
    walk = _Walk(shape, training, receiver)
    env: dict[str, _V] = {}
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    given = {"self": _V("self")} if positional else {}
    names = [a.arg for a in positional[1:]] + [a.arg for a in args.kwonlyargs]
    if names:
        given[names[0]] = _V("arg")
    if target:
        slot = "target" if "target" in names else (names[1] if len(positional) >= 3 else None)
        if slot is not None:
            given[slot] = _V("arg")
    for a, default in [*zip(positional, defaults, strict=True), *zip(args.kwonlyargs, args.kw_defaults, strict=True)]:
        if a.arg in given or (positional and a is positional[0]):
            env[a.arg] = given.get(a.arg, _V("self"))
        elif isinstance(default, ast.Constant):
            env[a.arg] = _known(default.value)
        else:
            env[a.arg] = _opaque(a.arg)
    if args.vararg is not None:
        env[args.vararg.arg] = _known(())
    if args.kwarg is not None:
        env[args.kwarg.arg] = _V("dict", ())
    end = walk.block(function.body, _State(env))
    if end.path is not None:
        return end.path
    if end.raised_type is not None:  # pragma: no cover - a raise always carries its path
        return HostPath("raises", end.raised_type)
    return HostPath("returns", "", None, "", tuple(end.state.branches), end.state.called, (), False)
