"""The rules: one walk over a function's statements, reporting findings and calls."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from typing import cast

from headaudit.astscan._context import _Ctx, _Edge, _Worklist
from headaudit.astscan._infer import _Evaluator
from headaudit.astscan._records import Finding
from headaudit.astscan._source import _short
from headaudit.astscan._tags import (
    _APPENDERS,
    _CONVERTERS,
    _EMPTY,
    _MAX_PASSES,
    _SHAPE_SYNCS,
    BOOL,
    COUNT,
    PARAM,
    PCOUNT,
    PER_CLASS,
    TENSOR,
    Tags,
    _annotation_tags,
    _bool_mask_index,
    _container,
    _data_base,
    _is_object,
    _iter_tags,
    _loop_kind,
)


class _Frame(_Evaluator):
    """One function in one context: its statements walked to a fixed point, then its findings."""

    def __init__(self, analysis: _Worklist, ctx: _Ctx, facts_sink: dict[str, Tags] | None = None) -> None:
        super().__init__(analysis, ctx, facts_sink)
        self.findings: list[Finding] = []
        self.edges: list[_Edge] = []
        self.ret: Tags = _EMPTY
        self.collect = False
        self.cond_boolops: set[int] = set()  # ``and``/``or`` whose every operand Python tests

    def run(self, *, collect: bool) -> None:
        for _ in range(_MAX_PASSES):
            before = dict(self.env)
            self._block(self.ctx.fn.body, 0)
            if self.env == before:
                break
        if collect:
            self.collect = True
            self._block(self.ctx.fn.body, 0)

    def _report(self, rule: str, node: ast.AST, kind: str, detail: str, depth: int = 0) -> None:
        line = getattr(node, "lineno", 0)
        src = self.index.file_of(self.ctx.key[0])
        self.findings.append(
            Finding(rule, src.filename, line, src.col(node), src.text(line), kind, detail, self.qualname, depth)
        )

    # -- statements ------------------------------------------------------------------
    def _block(self, body: Sequence[ast.stmt], depth: int) -> None:
        for stmt in body:
            self._stmt(stmt, depth)

    def _stmt(self, s: ast.stmt, depth: int) -> None:
        env = self.env
        if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for param in [*s.args.posonlyargs, *s.args.args, *s.args.kwonlyargs]:
                env[param.arg] = env.get(param.arg, _EMPTY) | _annotation_tags(param.annotation)
            self._block(s.body, depth)
        elif isinstance(s, ast.Assign):
            tags = self._eval(s.value, env)
            for target in s.targets:
                self._bind(target, tags, s.value, depth, env)
                self._check_write(target, "index-assign")
            self._scan_all([*s.targets, s.value], depth, env)
        elif isinstance(s, ast.AugAssign):
            tags = self._binop(self._eval(s.target, env), s.op, self._eval(s.value, env))
            self._bind(s.target, tags, None, depth, env)
            self._check_write(s.target, "augmented-assign")
            self._scan_all([s.target, s.value], depth, env)
        elif isinstance(s, ast.AnnAssign):
            tags = _annotation_tags(s.annotation) | (self._eval(s.value, env) if s.value else _EMPTY)
            self._bind(s.target, tags, s.value, depth, env)
            if s.value is not None:
                self._check_write(s.target, "index-assign")
                self._scan_all([s.target, s.value], depth, env)
        elif isinstance(s, (ast.For, ast.AsyncFor)):
            it = self._eval(s.iter, env)
            self._bind_iter(s.target, s.iter, it, depth, env)
            self._scan_all([s.iter], depth, env)
            kind = _loop_kind(it)
            if kind and self.collect:
                self._report("class-loops", s, kind, f"for: {_short(s.iter)}", self.ctx.depth + depth + 1)
            self._block(s.body, depth + 1 if kind else depth)
            self._block(s.orelse, depth)
        elif isinstance(s, ast.While):
            self._condition(s.test, "while", env)
            self._scan_all([s.test], depth, env)
            kind = self._while_kind(s.test, env)
            if kind and self.collect:
                self._report("class-loops", s, kind, f"while: {_short(s.test)}", self.ctx.depth + depth + 1)
            self._block(s.body, depth + 1 if kind else depth)
            self._block(s.orelse, depth)
        elif isinstance(s, ast.If):
            self._condition(s.test, "if", env)
            self._scan_all([s.test], depth, env)
            self._block(s.body, depth)
            self._block(s.orelse, depth)
        elif isinstance(s, (ast.With, ast.AsyncWith)):
            for item in s.items:
                if item.optional_vars is not None:
                    self._bind(item.optional_vars, self._eval(item.context_expr, env), None, depth, env)
                self._scan_all([item.context_expr], depth, env)
            self._block(s.body, depth)
        elif isinstance(s, ast.Return):
            if s.value is not None:
                self.ret = self.ret | self._eval(s.value, env)
                self._scan_all([s.value], depth, env)
        elif isinstance(s, ast.Assert):
            self._condition(s.test, "assert", env)
            self._scan_all([s.test, *([s.msg] if s.msg else [])], depth, env)
        elif isinstance(s, ast.Expr):
            self._expr_stmt(s.value, depth, env)
            self._scan_all([s.value], depth, env)
        elif isinstance(s, ast.Raise):
            self._scan_all([e for e in (s.exc, s.cause) if e is not None], depth, env)
        elif isinstance(s, ast.Try) or type(s).__name__ == "TryStar":  # ``try*`` exists from Python 3.11
            block = cast("ast.Try", s)
            self._block(block.body, depth)
            for handler in block.handlers:
                if handler.name:
                    env.setdefault(handler.name, _EMPTY)
                self._block(handler.body, depth)
            self._block(block.orelse, depth)
            self._block(block.finalbody, depth)
        elif isinstance(s, ast.Match):
            self._scan_all([s.subject], depth, env)
            for case in s.cases:
                self._block(case.body, depth)

    def _expr_stmt(self, value: ast.expr, depth: int, env: dict[str, Tags]) -> None:
        """``lst.append(x)`` grows ``lst``; ``register_buffer``/``setattr`` feed the class facts."""
        if not isinstance(value, ast.Call):
            return
        func = value.func
        if isinstance(func, ast.Name) and func.id == "setattr":
            self._facts_call(value, env, is_setattr=True)
        elif not isinstance(func, ast.Attribute):
            return
        elif func.attr in _APPENDERS and isinstance(func.value, ast.Name) and value.args:
            name = func.value.id
            arg = self._eval(value.args[-1], env)
            grown = _iter_tags(arg) if func.attr == "extend" else _container(arg)
            if depth > self.bind_depth.get(name, 0):  # appended inside a class loop it does not live in
                grown = grown | {PER_CLASS}
            env[name] = env.get(name, _EMPTY) | grown
        elif func.attr in ("register_buffer", "register_parameter"):
            self._facts_call(value, env, is_setattr=False)

    def _facts_call(self, call: ast.Call, env: dict[str, Tags], *, is_setattr: bool) -> None:
        if self.sink is None:
            return
        args = call.args[1:] if is_setattr else call.args
        if is_setattr and not (call.args and isinstance(call.args[0], ast.Name) and call.args[0].id == self.self_name):
            return
        if len(args) >= 2 and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
            tags = self._eval(args[1], env)
            if not is_setattr:
                tags = tags | {TENSOR}
            self.sink[args[0].value] = self.sink.get(args[0].value, _EMPTY) | tags

    def _while_kind(self, test: ast.expr, env: dict[str, Tags]) -> str | None:
        if isinstance(test, ast.Compare):
            for operand in [test.left, *test.comparators]:
                tags = self._eval(operand, env)
                if TENSOR not in tags and COUNT in tags:
                    return "class-count-range"
                if TENSOR not in tags and PCOUNT in tags:
                    return "prototype-rows"
        return None

    def _scan_all(self, nodes: Iterable[ast.AST], depth: int, env: dict[str, Tags]) -> None:
        if self.collect:
            for node in nodes:
                self._scan(node, depth, env)

    def _scan_comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp, depth: int, env: dict[str, Tags]
    ) -> None:
        """Report a comprehension's class loops and conditions, then scan its parts."""
        local = dict(env)
        current = depth
        for gen in node.generators:
            self._scan(gen.iter, current, local)
            it = self._eval(gen.iter, local)
            self._bind_iter(gen.target, gen.iter, it, current, local)
            kind = _loop_kind(it)
            if kind:
                current += 1
                detail = f"comprehension: {_short(gen.iter)}"
                self._report("class-loops", gen.target, kind, detail, self.ctx.depth + current)
            for cond in gen.ifs:
                self._condition(cond, "comprehension-if", local)
                self._scan(cond, current, local)
        parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        for part in parts:
            self._scan(part, current, local)

    def _scan(self, node: ast.AST, depth: int, env: dict[str, Tags]) -> None:
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            self._scan_comprehension(node, depth, env)
            return
        if isinstance(node, ast.Lambda):
            local = dict(env)
            for param in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
                local[param.arg] = _EMPTY
            self._scan(node.body, depth, local)
            return
        if isinstance(node, ast.Call):
            self._check_call(node, depth, env)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            if any(BOOL in self._eval(part, env) for part in _bool_mask_index(node.slice)):
                self._report("host-syncs", node, "data-dependent-shape", f"boolean-mask index {_short(node, 60)}")
        elif isinstance(node, ast.BoolOp):
            self._check_boolop(node, env)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            if TENSOR in self._eval(node.operand, env):
                self._report("host-syncs", node.operand, "condition", "not")
        elif isinstance(node, ast.IfExp):
            self._condition(node.test, "ternary", env)
        elif isinstance(node, ast.FormattedValue):
            if TENSOR in self._eval(node.value, env):
                self._report("host-syncs", node.value, "conversion", "f-string")
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            self._method_reference(node, depth, env)
        for child in ast.iter_child_nodes(node):
            if isinstance(node, ast.Call) and child is node.func and isinstance(child, ast.Attribute):
                self._scan(child.value, depth, env)
            else:
                self._scan(child, depth, env)

    def _method_reference(self, node: ast.Attribute, depth: int, env: dict[str, Tags]) -> None:
        """``self.method`` without a call (a property or a callback) reaches the method."""
        for tag in sorted(self._eval(node.value, env)):
            if tag.startswith(("inst:", "super:")):
                for key, fn, _bind_from in self._method_targets(tag, node.attr, None, env):
                    self.edges.append((key, fn, {}, self.ctx.depth + depth))

    def _condition(self, test: ast.expr, what: str, env: dict[str, Tags]) -> None:
        if not self.collect:
            return
        if isinstance(test, ast.BoolOp):
            self.cond_boolops.add(id(test))
        elif isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            return
        elif TENSOR in self._eval(test, env):
            self._report("host-syncs", test, "condition", what)

    def _check_boolop(self, node: ast.BoolOp, env: dict[str, Tags]) -> None:
        tested = node.values if id(node) in self.cond_boolops else node.values[:-1]
        for operand in tested:
            if isinstance(operand, ast.BoolOp):
                self.cond_boolops.add(id(operand))
            elif isinstance(operand, ast.UnaryOp) and isinstance(operand.op, ast.Not):
                continue
            elif TENSOR in self._eval(operand, env):
                op = "and" if isinstance(node.op, ast.And) else "or"
                self._report("host-syncs", operand, "condition", f"{op} operand")

    def _check_call(self, call: ast.Call, depth: int, env: dict[str, Tags]) -> None:
        for key, fn, bind_from in self._resolve_call(call, env):
            self.edges.append((key, fn, self._bind_args(call, fn, bind_from, env), self.ctx.depth + depth))
        func = call.func
        sync = "host-syncs"
        any_tensor = any(TENSOR in self._eval(a, env) for a in call.args)
        if isinstance(func, ast.Attribute):
            method = func.attr
            recv = self._eval(func.value, env)
            plain = not _is_object(recv)
            if plain and method in ("item", "tolist", "numpy", "cpu"):
                self._report(sync, call, "conversion", f".{method}()")
            elif plain and method == "to" and self._targets_cpu(call):
                self._report(sync, call, "conversion", ".to('cpu')")
            elif TENSOR in recv and method in ("equal", "allclose"):
                self._report(sync, call, "conversion", f".{method}()")
            elif plain and method in _SHAPE_SYNCS and self.index.dotted(func) is None:
                self._report(sync, call, "data-dependent-shape", f".{method}()")
            self._check_inplace_method(call, func)
        dotted = self.index.dotted(func)
        if dotted is not None:
            last = dotted.rsplit(".", 1)[-1]
            if dotted.startswith("torch.") and (last in _SHAPE_SYNCS or (last == "where" and len(call.args) == 1)):
                self._report(sync, call, "data-dependent-shape", f"torch.{last}")
            elif dotted.startswith("torch.") and last in ("equal", "allclose", "is_nonzero"):
                self._report(sync, call, "conversion", f"torch.{last}")
            elif dotted.split(".")[0] in ("math", "numpy") and any_tensor:
                self._report(sync, call, "conversion", f"{dotted}(tensor)")
            if last.endswith("_") and not last.startswith("_") and call.args and _data_base(call.args[0]):
                self._report("data-writes", call, "in-place-function", f"{last}({_short(call.args[0], 60)})")
        elif isinstance(func, ast.Name) and func.id in _CONVERTERS and any_tensor and not self._shadowed(func.id, env):
            self._report(sync, call, "conversion", f"{func.id}(tensor)")
        for kw in call.keywords:
            if kw.arg == "out" and _data_base(kw.value):
                self._report("data-writes", kw.value, "out-argument", _short(kw.value, 60))

    def _targets_cpu(self, call: ast.Call) -> bool:
        values = [*call.args, *(kw.value for kw in call.keywords if kw.arg == "device")]
        for value in values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str) and value.value.startswith("cpu"):
                return True
            if isinstance(value, ast.Call) and self.index.dotted(value.func) == "torch.device":
                first = value.args[0] if value.args else None
                if isinstance(first, ast.Constant) and str(first.value).startswith("cpu"):
                    return True
        return False

    # -- data writes -----------------------------------------------------------------
    def _written(self, base: ast.Attribute) -> str:
        tags = self._eval(base.value, self.env)
        return _short(base.value, 60) + (" (parameter)" if PARAM in tags else "")

    def _check_write(self, target: ast.expr, indexed_kind: str) -> None:
        if not self.collect:
            return
        base = _data_base(target)
        if base is None or _is_object(self._eval(base.value, self.env)):
            return
        if base is target:
            kind = "augmented-assign" if indexed_kind == "augmented-assign" else "assign"
        else:
            kind = indexed_kind
        self._report("data-writes", target, kind, self._written(base))

    def _check_inplace_method(self, call: ast.Call, func: ast.Attribute) -> None:
        method = func.attr
        if not method.endswith("_") or method.startswith("_"):
            return
        base = _data_base(func.value)
        if base is not None and not _is_object(self._eval(base.value, self.env)):
            self._report("data-writes", call, "in-place-method", f"{self._written(base)}: .{method}()")
