"""The interprocedural worklist, and the public forward-path and scanning functions."""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

from headaudit.astscan._context import _Ctx, _CtxKey, _Edge
from headaudit.astscan._frame import _Frame
from headaudit.astscan._records import RULES, AstScanError, Finding, FunctionRef, StaticAnalysis
from headaudit.astscan._source import _FuncDef, _Index, _qualname, read_source
from headaudit.astscan._tags import _EMPTY, _MAX_DEPTH, Tags, _annotation_tags


class _Analysis:
    """Worklist over (function, class of ``self``) contexts until tags, returns and depths settle."""

    def __init__(self, index: _Index) -> None:
        self.index = index
        self.ctxs: dict[_CtxKey, _Ctx] = {}
        self.callers: dict[_CtxKey, set[_CtxKey]] = {}
        self.queue: deque[_CtxKey] = deque()
        self._facts: dict[str, dict[str, Tags]] = {}

    # -- class attributes ------------------------------------------------------------
    def facts(self, cls: str) -> dict[str, Tags]:
        """Tags of ``self.<attr>`` for an instance of ``cls``, from ``__init__`` and class bodies."""
        if cls in self._facts:
            return self._facts[cls]
        facts: dict[str, Tags] = {}
        self._facts[cls] = facts  # visible, partial, to the frames evaluating __init__
        for _ in range(4):
            before = dict(facts)
            for owner in reversed(self.index.mro(cls)):
                info = self.index.classes[owner]
                for stmt in info.node.body:
                    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                        facts[stmt.target.id] = facts.get(stmt.target.id, _EMPTY) | _annotation_tags(stmt.annotation)
                init = info.methods.get("__init__")
                if init is not None:
                    ctx = _Ctx((owner, "__init__", cls), init, {}, 0, "")
                    _Frame(self, ctx, facts_sink=facts).run(collect=False)
            if facts == before:
                break
        return facts

    # -- the worklist ----------------------------------------------------------------
    def add_root(self, key: _CtxKey, fn: _FuncDef, *, root: bool) -> None:
        if key not in self.ctxs:
            self.ctxs[key] = _Ctx(key, fn, {}, 0, "", root=root)
            self.queue.append(key)

    def _reach(self, caller: _CtxKey, edge: _Edge) -> None:
        key, fn, params, depth = edge
        depth = min(depth, _MAX_DEPTH)
        self.callers.setdefault(key, set()).add(caller)
        ctx = self.ctxs.get(key)
        if ctx is None:
            self.ctxs[key] = _Ctx(key, fn, dict(params), depth, _qualname(caller[0], caller[1]))
            self.queue.append(key)
            return
        changed = depth > ctx.depth
        ctx.depth = max(ctx.depth, depth)
        for name, tags in params.items():
            merged = ctx.params.get(name, _EMPTY) | tags
            if merged != ctx.params.get(name, _EMPTY):
                ctx.params[name] = merged
                changed = True
        if changed and key not in self.queue:
            self.queue.append(key)

    def run(self) -> None:
        budget = 200 + 60 * (len(self.index.functions) + sum(len(c.methods) for c in self.index.classes.values()))
        while self.queue and budget > 0:
            budget -= 1
            key = self.queue.popleft()
            ctx = self.ctxs[key]
            frame = _Frame(self, ctx)
            frame.run(collect=True)
            ctx.findings = tuple(frame.findings)
            if not frame.ret <= ctx.ret:
                ctx.ret = ctx.ret | frame.ret
                for caller in sorted(self.callers.get(key, ()), key=repr):
                    if caller not in self.queue:
                        self.queue.append(caller)
            for edge in frame.edges:
                self._reach(key, edge)

    def ret_of(self, key: _CtxKey, fn: _FuncDef) -> Tags:
        ctx = self.ctxs.get(key)
        return _annotation_tags(fn.returns) | (ctx.ret if ctx else _EMPTY)

    def findings(self) -> list[Finding]:
        best: dict[tuple[str, int, int, str, str], Finding] = {}
        for ctx in self.ctxs.values():
            for f in ctx.findings:
                key = (f.rule, f.line, f.col, f.kind, f.detail)
                if key not in best or f.depth > best[key].depth:
                    best[key] = f
        return sorted(best.values(), key=lambda f: (f.file, f.line, f.col, f.rule, f.detail))


def _head_root(index: _Index, head_class: str) -> tuple[_CtxKey, _FuncDef]:
    if head_class not in index.classes:
        known = ", ".join(sorted(index.classes)) or "none"
        raise AstScanError(f"{index.filename}: no class {head_class!r} at module level (classes: {known})")
    found = index.lookup(head_class, "forward")
    if found is None:
        raise AstScanError(
            f"{index.filename}: class {head_class!r} has no forward() in this file "
            "(is it inherited from a class defined elsewhere?)"
        )
    return (found[0], "forward", head_class), found[1]


def _refs(index: _Index, analysis: _Analysis) -> tuple[FunctionRef, ...]:
    seen: dict[tuple[str | None, str], FunctionRef] = {}
    for key, ctx in analysis.ctxs.items():
        ident = (key[0], key[1])
        if ident not in seen:
            fn = ctx.fn
            seen[ident] = FunctionRef(
                _qualname(key[0], key[1]),
                index.file_of(key[0]).filename,
                fn.lineno,
                fn.end_lineno or fn.lineno,
                ctx.via,
            )
    return tuple(sorted(seen.values(), key=lambda r: (r.file, r.line, r.qualname)))


def _forward_analysis(index: _Index, head_class: str) -> _Analysis:
    key, fn = _head_root(index, head_class)
    analysis = _Analysis(index)
    analysis.add_root(key, fn, root=True)
    analysis.run()
    return analysis


def _selected(index: _Index, functions: Iterable[str] | None) -> list[tuple[_CtxKey, _FuncDef]]:
    every: dict[str, list[tuple[_CtxKey, _FuncDef]]] = {}
    for name, fn in index.functions.items():
        every.setdefault(name, []).append(((None, name, None), fn))
    for cname, info in index.classes.items():
        for mname, fn in info.methods.items():
            entry = ((cname, mname, cname), fn)
            every.setdefault(f"{cname}.{mname}", []).append(entry)
            every.setdefault(cname, []).append(entry)
    if functions is None:
        names = sorted(n for n in every if "." in n or n in index.functions)
    else:
        names = list(functions)
        missing = [n for n in names if n not in every]
        if missing:
            known = ", ".join(sorted(every))
            raise AstScanError(f"{index.filename}: no function or class {missing[0]!r} (known: {known})")
    return list(dict.fromkeys(entry for n in names for entry in every[n]))


def _check_rules(rules: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(rules)
    unknown = sorted(chosen - set(RULES))
    if unknown:
        raise ValueError(f"unknown rule {unknown[0]!r}; expected one of {', '.join(RULES)}")
    return chosen


def _scan_index(index: _Index, functions: Iterable[str] | None, rules: frozenset[str]) -> list[Finding]:
    roots = _selected(index, functions)
    analysis = _Analysis(index)
    for key, fn in roots:
        analysis.add_root(key, fn, root=False)
    analysis.run()
    wanted = {_qualname(key[0], key[1]) for key, _ in roots}
    return [f for f in analysis.findings() if f.function in wanted and f.rule in rules]


def forward_path(source: str, filename: str, head_class: str) -> tuple[FunctionRef, ...]:
    """Functions of the file that ``head_class.forward`` reaches, sorted by line."""
    index = _Index(source, filename)
    return _refs(index, _forward_analysis(index, head_class))


def scan(
    source: str, filename: str, functions: Iterable[str] | None = None, rules: Iterable[str] = RULES
) -> tuple[Finding, ...]:
    """Findings inside the chosen functions (``"Class.method"``, ``"Class"`` for all its
    methods, ``"function"``; None for every function of the file).

    Each chosen function is analysed in the context of its own class; the calls among
    them carry argument tags, as on the forward path.
    """
    index = _Index(source, filename)
    return tuple(_scan_index(index, functions, _check_rules(rules)))


def analyze(
    source: str,
    filename: str,
    head_class: str,
    rules: Iterable[str] = RULES,
    extra: Sequence[tuple[str, str]] = (),
) -> StaticAnalysis:
    """The forward path of ``head_class``, its findings, and every finding of the file.

    A function on the forward path keeps the findings of the forward analysis in
    ``file_findings`` too (``on_forward_path=True``); the others come from analysing
    every function of the file (``on_forward_path=False``). ``extra`` files lend their
    classes (see :class:`_Index`): the forward path follows calls into them, and their
    methods count as functions of the file.
    """
    chosen = _check_rules(rules)
    index = _Index(source, filename, extra)
    analysis = _forward_analysis(index, head_class)
    path = _refs(index, analysis)
    on_path = {ref.qualname for ref in path}
    findings = tuple(Finding(**{**asdict(f), "on_forward_path": True}) for f in analysis.findings() if f.rule in chosen)
    elsewhere = [
        Finding(**{**asdict(f), "on_forward_path": False})
        for f in _scan_index(index, None, chosen)
        if f.function not in on_path
    ]
    file_findings = tuple(sorted([*findings, *elsewhere], key=lambda f: (f.file, f.line, f.col, f.rule, f.detail)))
    return StaticAnalysis(filename, head_class, path, findings, file_findings)


def list_functions(source: str, filename: str) -> tuple[FunctionRef, ...]:
    """Every module-level function and method of the file, sorted by line."""
    index = _Index(source, filename)
    refs = [FunctionRef(n, filename, f.lineno, f.end_lineno or f.lineno) for n, f in index.functions.items()]
    for cname, info in index.classes.items():
        refs += [
            FunctionRef(f"{cname}.{m}", filename, f.lineno, f.end_lineno or f.lineno) for m, f in info.methods.items()
        ]
    return tuple(sorted(refs, key=lambda r: (r.file, r.line, r.qualname)))


def analyze_file(
    path: str | Path, head_class: str, rules: Iterable[str] = RULES, extra: Iterable[str | Path] = ()
) -> StaticAnalysis:
    """:func:`analyze` on a file, with the classes of the ``extra`` files."""
    return analyze(*read_source(path), head_class, rules, tuple(read_source(p) for p in extra))


def forward_path_in_file(path: str | Path, head_class: str) -> tuple[FunctionRef, ...]:
    """:func:`forward_path` on a file."""
    return forward_path(*read_source(path), head_class)


def scan_in_file(
    path: str | Path, functions: Iterable[str] | None = None, rules: Iterable[str] = RULES
) -> tuple[Finding, ...]:
    """:func:`scan` on a file."""
    return scan(*read_source(path), functions, rules)
