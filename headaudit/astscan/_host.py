"""Host-code scans: calls of the head (``self.head(...)``) and uses of the manager's attributes."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from pathlib import Path

from headaudit.astscan._records import AttributeUse, HeadCall
from headaudit.astscan._source import _Index, read_source


def _terminates(body: Sequence[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], (ast.Return, ast.Raise))


def _scoped(tree: ast.Module) -> Iterator[tuple[ast.AST, str, list[str]]]:
    """Every node with the qualified name of its enclosing function and its ``if`` guards."""

    def walk(node: ast.AST, scope: str, conds: list[str]) -> Iterator[tuple[ast.AST, str, list[str]]]:
        yield node, scope, conds
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            inner = f"{scope}.{node.name}" if scope != "<module>" else node.name
            for deco in node.decorator_list:
                yield from walk(deco, scope, conds)
            if not isinstance(node, ast.ClassDef):
                yield from walk(node.args, scope, conds)
            yield from block(node.body, inner, [])
            return
        if isinstance(node, ast.If):
            text = ast.unparse(node.test)
            yield from walk(node.test, scope, conds)
            yield from block(node.body, scope, [*conds, text])
            yield from block(node.orelse, scope, [*conds, f"not ({text})"])
            return
        if isinstance(node, ast.IfExp):
            text = ast.unparse(node.test)
            yield from walk(node.test, scope, conds)
            yield from walk(node.body, scope, [*conds, text])
            yield from walk(node.orelse, scope, [*conds, f"not ({text})"])
            return
        for field_name, value in ast.iter_fields(node):
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                yield from block(value, scope, conds)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        yield from walk(item, scope, conds)
            elif isinstance(value, ast.AST) and field_name != "ctx":
                yield from walk(value, scope, conds)

    def block(body: list[ast.stmt], scope: str, conds: list[str]) -> Iterator[tuple[ast.AST, str, list[str]]]:
        local = list(conds)
        for stmt in body:
            yield from walk(stmt, scope, local)
            if isinstance(stmt, ast.If):
                text = ast.unparse(stmt.test)
                if _terminates(stmt.body) and not _terminates(stmt.orelse):
                    local = [*local, f"not ({text})"]
                elif _terminates(stmt.orelse) and not _terminates(stmt.body):
                    local = [*local, text]

    yield from block(tree.body, "<module>", [])


def _parents(tree: ast.AST) -> dict[int, ast.AST]:
    return {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _usage(call: ast.Call, parents: dict[int, ast.AST]) -> tuple[str, int | None, bool, tuple[str, ...], str]:
    """``(usage, arity, starred, targets, detail)`` of a call's result."""
    parent = parents.get(id(call))
    detail = ""
    node: ast.AST = call
    if isinstance(parent, ast.Subscript) and parent.value is call:
        detail = f"[{ast.unparse(parent.slice)}]"
        node, parent = parent, parents.get(id(parent))
    targets: tuple[str, ...] = ()
    if isinstance(parent, (ast.Assign, ast.AnnAssign)) and parent.value is node:
        target = parent.targets[0] if isinstance(parent, ast.Assign) else parent.target
        if isinstance(target, (ast.Tuple, ast.List)) and not detail:
            names = tuple(ast.unparse(e) for e in target.elts)
            starred = any(isinstance(e, ast.Starred) for e in target.elts)
            return "unpack", len(target.elts) - int(starred), starred, names, ""
        targets = (ast.unparse(target),)
        return ("index" if detail else "assign"), None, False, targets, detail
    if detail:
        return "index", None, False, (), detail
    if isinstance(parent, ast.Return):
        return "return", None, False, (), ""
    if isinstance(parent, ast.Expr):
        return "discarded", None, False, (), ""
    if isinstance(parent, ast.Call) and parent.func is not call:
        return "argument", None, False, (), ast.unparse(parent.func)
    if isinstance(parent, ast.Attribute):
        return "attribute", None, False, (), parent.attr
    return "other", None, False, (), type(parent).__name__ if parent else ""


def _normalise_expr(text: str, what: str) -> str:
    try:
        return ast.unparse(ast.parse(text.strip(), mode="eval").body)
    except SyntaxError:
        raise ValueError(f"{what} {text!r} is not a Python expression; try 'self.head'") from None


def head_calls(source: str, filename: str = "<string>", receiver: str = "self.head") -> tuple[HeadCall, ...]:
    """Every call of ``receiver(...)`` (or ``receiver.forward(...)``) with its usage and guards."""
    wanted = _normalise_expr(receiver, "receiver")
    index = _Index(source, filename)
    parents = _parents(index.tree)
    out = []
    for node, scope, conds in _scoped(index.tree):
        if not isinstance(node, ast.Call):
            continue
        callee = ast.unparse(node.func)
        if callee not in (wanted, f"{wanted}.forward"):
            continue
        usage, arity, starred, targets, detail = _usage(node, parents)
        arguments = tuple(ast.unparse(a) for a in node.args) + tuple(
            f"{kw.arg}={ast.unparse(kw.value)}" if kw.arg else f"**{ast.unparse(kw.value)}" for kw in node.keywords
        )
        out.append(
            HeadCall(filename, node.lineno, index.col(node), index.text(node.lineno), wanted, scope, usage, arity,
                     starred, targets, detail, tuple(conds), arguments)
        )  # fmt: skip
    return tuple(sorted(out, key=lambda c: (c.file, c.line, c.col)))


def attribute_uses(source: str, filename: str = "<string>", base: str = "proto_manager") -> tuple[AttributeUse, ...]:
    """Every ``<owner>.<name>`` where ``owner`` ends in ``.<base>`` (or is a local alias of one)."""
    if not base.isidentifier():
        raise ValueError(f"base {base!r} is not an attribute name; try 'proto_manager'")
    index = _Index(source, filename)
    parents = _parents(index.tree)
    nodes = list(_scoped(index.tree))
    aliases: dict[str, set[str]] = {}
    for node, scope, _ in nodes:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        if isinstance(node.value, ast.Attribute) and node.value.attr == base:
            aliases.setdefault(scope, set()).add(node.targets[0].id)

    def is_manager(expr: ast.expr, scope: str) -> bool:
        if isinstance(expr, ast.Attribute):
            return expr.attr == base
        return isinstance(expr, ast.Name) and (expr.id == base or expr.id in aliases.get(scope, set()))

    out = []
    for node, scope, _ in nodes:
        if isinstance(node, ast.Attribute) and is_manager(node.value, scope):
            parent = parents.get(id(node))
            if isinstance(parent, ast.Call) and parent.func is node:
                access = "call"
            else:
                access = {ast.Store: "store", ast.Del: "delete"}.get(type(node.ctx), "load")
            name, owner = node.attr, node.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr", "delattr")
            and len(node.args) >= 2
            and is_manager(node.args[0], scope)
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            access, name, owner = node.func.id, node.args[1].value, node.args[0]
        else:
            continue
        line = getattr(node, "lineno", 0)
        out.append(
            AttributeUse(filename, line, index.col(node), index.text(line), base, name, ast.unparse(owner), access,
                         scope)
        )  # fmt: skip
    return tuple(sorted(out, key=lambda u: (u.file, u.line, u.col)))


def head_calls_in_file(path: str | Path, receiver: str = "self.head") -> tuple[HeadCall, ...]:
    """:func:`head_calls` on a file."""
    return head_calls(*read_source(path), receiver)


def attribute_uses_in_file(path: str | Path, base: str = "proto_manager") -> tuple[AttributeUse, ...]:
    """:func:`attribute_uses` on a file."""
    return attribute_uses(*read_source(path), base)
