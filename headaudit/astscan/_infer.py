"""Tag inference for one function in one context: evaluation, binding and call resolution."""

from __future__ import annotations

import ast

from headaudit.astscan._context import _Ctx, _CtxKey, _Worklist
from headaudit.astscan._source import _decorator_names, _FuncDef, _qualname
from headaudit.astscan._tags import (
    _ATTR_SEEDS,
    _BOOL_FUNCS,
    _CONSTRUCTORS,
    _EMPTY,
    _HOST_ATTRS,
    _HOST_METHODS,
    _HOST_PREFIXES,
    _ITER_BUILTINS,
    _METHOD_SEEDS,
    _NAME_SEEDS,
    _ROW_KEEP_METHODS,
    _TENSOR_ATTRS,
    _TENSOR_CLASSES,
    _TENSOR_MODULES,
    _TORCH_HOST,
    BOOL,
    CLASS_RANGE,
    COUNT,
    DICT_TENSOR,
    ELEM_TENSOR,
    NNMOD,
    PARAM,
    PCOUNT,
    PER_CLASS,
    ROW_RANGE,
    ROWS,
    SHAPE,
    SHAPE_ROWS,
    TENSOR,
    Tags,
    _annotation_tags,
    _bool_mask_index,
    _container,
    _elements,
    _is_self_attr,
    _iter_tags,
    _loop_kind,
    _objects,
)


class _Evaluator:
    """The tags of a function's names and expressions, in one context (see the package docstring)."""

    def __init__(self, analysis: _Worklist, ctx: _Ctx, facts_sink: dict[str, Tags] | None = None) -> None:
        self.a = analysis
        self.index = analysis.index
        self.ctx = ctx
        self.owner, self.name, self.self_cls = ctx.key
        self.qualname = _qualname(self.owner, self.name)
        self.sink = facts_sink
        self.env: dict[str, Tags] = {}
        self.bind_depth: dict[str, int] = {}  # shallowest class-loop depth a name is bound at
        self.self_name: str | None = None
        self._init_params()

    # -- setup -----------------------------------------------------------------------
    def _init_params(self) -> None:
        fn, args = self.ctx.fn, self.ctx.fn.args
        positional = [*args.posonlyargs, *args.args]
        decorators = _decorator_names(fn)
        if self.owner is not None and positional and "staticmethod" not in decorators:
            self.self_name = positional[0].arg
        every = [*positional, *args.kwonlyargs]
        for extra in (args.vararg, args.kwarg):
            if extra is not None:
                every.append(extra)
        for param in every:
            tags = _annotation_tags(param.annotation) | _NAME_SEEDS.get(param.arg, _EMPTY)
            tags |= self.ctx.params.get(param.arg, _EMPTY)
            if self.ctx.root and param.annotation is None and param is not args.vararg and param is not args.kwarg:
                tags |= {TENSOR}
            self.env[param.arg] = tags
            self.bind_depth[param.arg] = 0
        if self.self_name is not None and self.self_cls is not None:
            prefix = "cls:" if "classmethod" in decorators else "inst:"
            self.env[self.self_name] = frozenset({prefix + self.self_cls})

    # -- binding -------------------------------------------------------------------
    def _bind(self, target: ast.expr, tags: Tags, value: ast.expr | None, depth: int, env: dict[str, Tags]) -> None:
        if isinstance(target, ast.Name):
            env[target.id] = env.get(target.id, _EMPTY) | tags
            self.bind_depth[target.id] = min(self.bind_depth.get(target.id, depth), depth)
        elif isinstance(target, (ast.Tuple, ast.List)):
            literal = isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts)
            if literal and value is not None and not any(isinstance(e, ast.Starred) for e in target.elts):
                assert isinstance(value, (ast.Tuple, ast.List))
                for sub, sub_value in zip(target.elts, value.elts, strict=True):
                    self._bind(sub, self._eval(sub_value, env), sub_value, depth, env)
                return
            items = _elements(tags)
            for sub in target.elts:
                if isinstance(sub, ast.Starred):
                    self._bind(sub.value, _container(items), None, depth, env)
                else:
                    self._bind(sub, items, None, depth, env)
        elif isinstance(target, ast.Starred):
            self._bind(target.value, tags, None, depth, env)
        elif self.sink is not None and _is_self_attr(target, self.self_name):  # ``self.<attr> = v`` in __init__
            assert isinstance(target, ast.Attribute)
            self.sink[target.attr] = self.sink.get(target.attr, _EMPTY) | tags

    def _bind_iter(self, target: ast.expr, it_node: ast.expr, it: Tags, depth: int, env: dict[str, Tags]) -> None:
        """Bind a loop target; ``enumerate``/``zip``/``.items()`` pair their parts."""
        if isinstance(target, ast.Tuple) and isinstance(it_node, ast.Call):
            func, args = it_node.func, it_node.args
            if isinstance(func, ast.Name) and func.id == "enumerate" and len(target.elts) == 2 and args:
                self._bind(target.elts[0], _EMPTY, None, depth, env)
                self._bind(target.elts[1], _elements(self._eval(args[0], env)), None, depth, env)
                return
            if isinstance(func, ast.Name) and func.id == "zip" and len(target.elts) == len(args):
                for sub, arg in zip(target.elts, args, strict=True):
                    self._bind(sub, _elements(self._eval(arg, env)), None, depth, env)
                return
            if isinstance(func, ast.Attribute) and func.attr == "items" and len(target.elts) == 2:
                owner = self._eval(func.value, env)
                self._bind(target.elts[0], _EMPTY, None, depth, env)
                self._bind(target.elts[1], frozenset({TENSOR}) if DICT_TENSOR in owner else _EMPTY, None, depth, env)
                return
        self._bind(target, _elements(it), None, depth, env)

    # -- evaluation ------------------------------------------------------------------
    def _eval(self, node: ast.expr | None, env: dict[str, Tags]) -> Tags:
        if node is None or isinstance(node, ast.Constant):
            return _EMPTY
        if isinstance(node, ast.Name):
            return self._eval_name(node.id, env)
        if isinstance(node, ast.Attribute):
            return self._eval_attr(node, env)
        if isinstance(node, ast.Call):
            return self._eval_call(node, env)
        if isinstance(node, ast.BinOp):
            return self._binop(self._eval(node.left, env), node.op, self._eval(node.right, env))
        if isinstance(node, ast.UnaryOp):
            operand = self._eval(node.operand, env)
            if isinstance(node.op, ast.Not):
                return _EMPTY
            if TENSOR not in operand:
                return _EMPTY
            keep = {TENSOR, ROWS} | ({BOOL} if isinstance(node.op, ast.Invert) else set())
            return operand & keep
        if isinstance(node, ast.Compare):
            if all(isinstance(op, (ast.Is, ast.IsNot, ast.In, ast.NotIn)) for op in node.ops):
                return _EMPTY
            if any(TENSOR in self._eval(x, env) for x in [node.left, *node.comparators]):
                return frozenset({TENSOR, BOOL})
            return _EMPTY
        if isinstance(node, ast.BoolOp):
            return frozenset().union(*(self._eval(v, env) for v in node.values))
        if isinstance(node, ast.IfExp):
            return self._eval(node.body, env) | self._eval(node.orelse, env)
        if isinstance(node, ast.Subscript):
            return self._eval_subscript(node, env)
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return frozenset().union(_EMPTY, *(_container(self._eval(e, env)) for e in node.elts))
        if isinstance(node, ast.Dict):
            values = frozenset().union(_EMPTY, *(self._eval(v, env) for v in node.values))
            return frozenset({DICT_TENSOR}) if values & {TENSOR, ELEM_TENSOR, DICT_TENSOR} else _EMPTY
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            local, per_class = self._comprehension_env(node.generators, env)
            if isinstance(node, ast.DictComp):
                out = {DICT_TENSOR} if TENSOR in self._eval(node.value, local) else set()
            else:
                out = set(_container(self._eval(node.elt, local)))
            return frozenset(out | ({PER_CLASS} if per_class else set()))
        if isinstance(node, ast.Starred):
            return self._eval(node.value, env)
        if isinstance(node, ast.NamedExpr):
            tags = self._eval(node.value, env)
            env[node.target.id] = env.get(node.target.id, _EMPTY) | tags
            return tags
        return _EMPTY

    def _eval_name(self, name: str, env: dict[str, Tags]) -> Tags:
        if name in env:
            return env[name] | _NAME_SEEDS.get(name, _EMPTY)
        if name in self.index.classes:
            return frozenset({"cls:" + name})
        if name in self.index.functions:
            return frozenset({"fn:" + name})
        return _NAME_SEEDS.get(name, _EMPTY)

    def _eval_attr(self, node: ast.Attribute, env: dict[str, Tags]) -> Tags:
        base = self._eval(node.value, env)
        attr = node.attr
        out: set[str] = set(_ATTR_SEEDS.get(attr, _EMPTY))
        for tag in base:
            if tag.startswith(("inst:", "cls:")):
                cls = tag.split(":", 1)[1]
                if cls not in self.index.classes:
                    continue
                out |= self.a.facts(cls).get(attr, _EMPTY)
                found = self.index.lookup(cls, attr)
                if found is not None and _decorator_names(found[1]) & {"property", "cached_property"}:
                    out |= self.a.ret_of((found[0], attr, cls), found[1])
        if NNMOD in base and attr in ("weight", "bias"):
            out |= {TENSOR, PARAM}
        if TENSOR in base:
            if attr == "shape":
                out |= {SHAPE} | ({SHAPE_ROWS} if ROWS in base else set())
            elif attr in _TENSOR_ATTRS:
                keep = base & {TENSOR, BOOL, ROWS, PARAM} if attr in ("data", "T", "mT", "H", "mH") else {TENSOR}
                out |= keep
        if attr in _HOST_ATTRS:
            return _EMPTY
        return frozenset(out)

    def _eval_subscript(self, node: ast.Subscript, env: dict[str, Tags]) -> Tags:
        base = self._eval(node.value, env)
        index = node.slice
        out: set[str] = set(_objects(base))
        if SHAPE in base:
            first = isinstance(index, ast.Constant) and index.value == 0
            return frozenset({PCOUNT}) if first and SHAPE_ROWS in base else _EMPTY
        if TENSOR in base:
            out.add(TENSOR)
            out |= base & {BOOL}
            parts = _bool_mask_index(index)
            keeps_rows = isinstance(parts[0], ast.Slice) or BOOL in self._eval(parts[0], env)
            if keeps_rows:
                out |= base & {ROWS}
        if DICT_TENSOR in base:
            out.add(TENSOR)
        if ELEM_TENSOR in base:
            out.add(ELEM_TENSOR if isinstance(index, ast.Slice) else TENSOR)
        if PER_CLASS in base and isinstance(index, ast.Slice):
            out.add(PER_CLASS)
        if NNMOD in base:
            out.add(NNMOD)
        return frozenset(out)

    def _binop(self, left: Tags, op: ast.operator, right: Tags) -> Tags:
        both = left | right
        if TENSOR in both:
            out = {TENSOR} | (both & {ROWS})
            if isinstance(op, (ast.BitAnd, ast.BitOr, ast.BitXor)) and BOOL in both:
                out.add(BOOL)
            return frozenset(out)
        if isinstance(op, ast.Mult) and both & {COUNT, PCOUNT} and not both & {PER_CLASS, ELEM_TENSOR}:
            return frozenset({PCOUNT})
        if isinstance(op, (ast.Add, ast.Sub)):
            return both & {COUNT, PCOUNT, PER_CLASS, ELEM_TENSOR}
        return _EMPTY

    def _shadowed(self, name: str, env: dict[str, Tags]) -> bool:
        return name in env or name in self.index.functions or name in self.index.classes

    def _eval_call(self, call: ast.Call, env: dict[str, Tags]) -> Tags:
        func = call.func
        out: set[str] = set()
        for key, fn, _bind_from in self._resolve_call(call, env):
            out |= self.a.ret_of(key, fn)
            if key[1] == "__init__" and key[2] is not None:
                out.add("inst:" + key[2])
        if isinstance(func, ast.Name) and func.id in self.index.classes:
            out.add("inst:" + func.id)
        callee = self._eval(func, env)
        if NNMOD in callee:
            out.add(TENSOR)
        if isinstance(func, ast.Name) and not self._shadowed(func.id, env):
            return frozenset(out | self._builtin_call(func.id, call, env))
        dotted = self.index.dotted(func)
        if dotted is not None:
            return frozenset(out | self._module_call(dotted, call, env))
        if isinstance(func, ast.Attribute):
            out |= _METHOD_SEEDS.get(func.attr, _EMPTY)
            recv = self._eval(func.value, env)
            if TENSOR in recv:
                out |= self._tensor_method(func.attr, recv, call, env)
            elif DICT_TENSOR in recv and func.attr in ("get", "pop", "setdefault"):
                out.add(TENSOR)
            elif DICT_TENSOR in recv and func.attr == "values":
                out.add(ELEM_TENSOR)
            elif func.attr == "copy":
                out |= recv
        return frozenset(out)

    def _builtin_call(self, name: str, call: ast.Call, env: dict[str, Tags]) -> Tags:
        args = [self._eval(a, env) for a in call.args]
        if name == "super" and self.owner is not None:
            if not call.args and self.self_cls is not None:
                return frozenset({f"super:{self.owner}:{self.self_cls}"})
            if len(call.args) == 2 and isinstance(call.args[0], ast.Name) and call.args[0].id in self.index.classes:
                selves = [t.split(":", 1)[1] for t in args[1] if t.startswith(("inst:", "cls:"))]
                return frozenset(f"super:{call.args[0].id}:{s}" for s in selves)
            return _EMPTY
        if name == "len" and args:
            if PER_CLASS in args[0]:
                return frozenset({COUNT})
            return frozenset({PCOUNT}) if ROWS in args[0] else _EMPTY
        if name == "range" and args:
            stop = args[0] if len(args) == 1 else args[1]
            if TENSOR in stop:
                return _EMPTY
            if COUNT in stop:
                return frozenset({CLASS_RANGE})
            return frozenset({ROW_RANGE}) if PCOUNT in stop else _EMPTY
        if name in _ITER_BUILTINS:
            return frozenset().union(_EMPTY, *(_iter_tags(a) for a in args))
        if name in ("min", "max", "abs", "sum", "round") and args:
            every = frozenset.intersection(*args) if len(args) > 1 else args[0]
            tensor = {TENSOR} if any(TENSOR in a for a in args) else set()
            return frozenset(tensor | (every & {COUNT, PCOUNT}))
        if name == "getattr" and len(call.args) >= 2 and isinstance(call.args[1], ast.Constant):
            attr = call.args[1].value
            if isinstance(attr, str):
                return self._eval_attr(ast.Attribute(value=call.args[0], attr=attr, ctx=ast.Load()), env)
        return _EMPTY

    def _module_call(self, dotted: str, call: ast.Call, env: dict[str, Tags]) -> Tags:
        parts = dotted.split(".")
        if parts[0] != "torch" or any(part.startswith("_") for part in parts[1:]):
            return _EMPTY  # not torch, or a private helper: unknown
        module, last = ".".join(parts[:-1]), parts[-1]
        args = [self._eval(a, env) for a in call.args]
        if last in _TORCH_HOST or last.startswith(_HOST_PREFIXES):
            return _EMPTY
        if last[:1].isupper():
            if last in _TENSOR_CLASSES:
                out = {TENSOR} | (set(args[0] & {ROWS, BOOL}) if args else set())
                if last == "Parameter":
                    out.add(PARAM)
                if last == "BoolTensor":
                    out.add(BOOL)
                return frozenset(out)
            if dotted.startswith(("torch.nn.", "torch.ao.nn.")):
                objs = frozenset().union(_EMPTY, *(_objects(a) for a in args))
                return objs | {NNMOD}
            return _EMPTY
        if module not in _TENSOR_MODULES:
            return _EMPTY
        out = {TENSOR}
        if last in _BOOL_FUNCS or self._bool_dtype(call):
            out.add(BOOL)
        if last in _CONSTRUCTORS and call.args:
            first = call.args[0]
            if isinstance(first, (ast.Tuple, ast.List)) and first.elts:
                first = first.elts[0]
            if self._eval(first, env) & {COUNT, PCOUNT}:
                out.add(ROWS)
        if last.endswith("_like") and args and ROWS in args[0]:
            out.add(ROWS)
        if last == "normalize" and args:
            out |= args[0] & {ROWS}
        if last == "bincount" and any(
            kw.arg == "minlength" and self._eval(kw.value, env) & {COUNT} for kw in call.keywords
        ):
            out.add(ROWS)
        if last in ("split", "chunk", "unbind", "meshgrid") or (last == "where" and len(call.args) == 1):
            return frozenset({ELEM_TENSOR})
        return frozenset(out)

    def _tensor_method(self, method: str, recv: Tags, call: ast.Call, env: dict[str, Tags]) -> Tags:
        if method in _HOST_METHODS:
            first = call.args[0] if call.args else None
            if method == "size" and isinstance(first, ast.Constant) and first.value == 0 and ROWS in recv:
                return frozenset({PCOUNT})
            if method == "size" and first is None:
                return frozenset({SHAPE} | ({SHAPE_ROWS} if ROWS in recv else set()))
            if method == "tolist" and ROWS in recv:
                return frozenset({PER_CLASS})
            return _EMPTY
        if method in ("split", "chunk", "unbind"):
            return frozenset({ELEM_TENSOR})
        out = {TENSOR}
        if method in _BOOL_FUNCS or self._bool_dtype(call):
            out.add(BOOL)
        elif method.endswith("_") and not method.startswith("_"):
            out |= recv & {BOOL}
        if method in _ROW_KEEP_METHODS or (method.endswith("_") and not method.startswith("_")):
            out |= recv & {ROWS}
        return frozenset(out)

    def _bool_dtype(self, call: ast.Call) -> bool:
        candidates = [kw.value for kw in call.keywords if kw.arg == "dtype"] + list(call.args)
        return any(self.index.dotted(c) == "torch.bool" for c in candidates)

    # -- call resolution -------------------------------------------------------------
    def _resolve_call(self, call: ast.Call, env: dict[str, Tags]) -> list[tuple[_CtxKey, _FuncDef, int]]:
        """In-file functions a call may run: ``(context key, def, first bound parameter)``."""
        out: list[tuple[_CtxKey, _FuncDef, int]] = []
        func = call.func
        if isinstance(func, ast.Attribute):
            for tag in sorted(self._eval(func.value, env)):
                out.extend(self._method_targets(tag, func.attr, call, env))
        for tag in sorted(self._eval(func, env)):
            kind, _, name = tag.partition(":")
            if kind == "inst" and name in self.index.classes:
                found = self.index.lookup(name, "__call__") or self.index.lookup(name, "forward")
                if found is not None:
                    out.append(((found[0], found[1].name, name), found[1], 1))
            elif kind == "cls" and name in self.index.classes:
                found = self.index.lookup(name, "__init__")
                if found is not None:
                    out.append(((found[0], "__init__", name), found[1], 1))
            elif kind == "fn" and name in self.index.functions:
                out.append(((None, name, None), self.index.functions[name], 0))
        return list(dict.fromkeys(out))

    def _method_targets(
        self, tag: str, attr: str, call: ast.Call | None, env: dict[str, Tags]
    ) -> list[tuple[_CtxKey, _FuncDef, int]]:
        kind, _, rest = tag.partition(":")
        if kind == "super":
            after, _, self_cls = rest.partition(":")
            found = self.index.lookup(self_cls, attr, after=after)
            return [((found[0], attr, self_cls), found[1], 1)] if found else []
        if kind not in ("inst", "cls"):
            return []
        found = self.index.lookup(rest, attr)
        if found is None:
            return []
        owner, fn = found
        decorators = _decorator_names(fn)
        if "staticmethod" in decorators:
            return [((owner, attr, rest), fn, 0)]
        if kind == "inst" or "classmethod" in decorators:
            return [((owner, attr, rest), fn, 1)]
        # ``Base.method(obj, ...)``: an unbound call; ``self`` is the first argument.
        selves = set()
        if call is not None and call.args:
            selves = {t.split(":", 1)[1] for t in self._eval(call.args[0], env) if t.startswith("inst:")}
        return [((owner, attr, s), fn, 0) for s in sorted(selves or {rest})]

    def _bind_args(self, call: ast.Call, fn: _FuncDef, bind_from: int, env: dict[str, Tags]) -> dict[str, Tags]:
        params = [*fn.args.posonlyargs, *fn.args.args][bind_from:]
        names = {p.arg for p in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]}
        out: dict[str, Tags] = {}
        for param, arg in zip(params, call.args, strict=False):
            if isinstance(arg, ast.Starred):
                break
            out[param.arg] = out.get(param.arg, _EMPTY) | self._eval(arg, env)
        for kw in call.keywords:
            if kw.arg is not None and kw.arg in names:
                out[kw.arg] = out.get(kw.arg, _EMPTY) | self._eval(kw.value, env)
        return out

    def _comprehension_env(
        self, generators: list[ast.comprehension], env: dict[str, Tags]
    ) -> tuple[dict[str, Tags], bool]:
        """A copy of ``env`` with the comprehension's targets bound; True when it iterates classes."""
        local = dict(env)
        per_class = False
        for gen in generators:
            it = self._eval(gen.iter, local)
            self._bind_iter(gen.target, gen.iter, it, 0, local)
            per_class = per_class or _loop_kind(it) is not None
        return local, per_class
