"""Reading and parsing a source file, and the index of its classes, functions and imports."""

from __future__ import annotations

import ast
import tokenize
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from headaudit.astscan._records import AstScanError, SourceSyntaxError

_FuncDef = ast.FunctionDef | ast.AsyncFunctionDef


def read_source(path: str | Path) -> tuple[str, str]:
    """``(source text, display filename)`` of a Python file, honouring its encoding cookie."""
    file = Path(path)
    try:
        with tokenize.open(file) as handle:
            return handle.read(), str(file)
    except FileNotFoundError:
        raise AstScanError(f"no such file: {str(file)!r}; check the path") from None
    except (OSError, SyntaxError, UnicodeDecodeError) as exc:
        raise AstScanError(f"cannot read {str(file)!r}: {exc}; is it a Python source file?") from None


def _parse(source: str, filename: str) -> ast.Module:
    try:
        return ast.parse(source, filename=filename)
    except SyntaxError as exc:
        line, col = exc.lineno or 0, exc.offset or 0
        message = f"{filename}:{line}:{col}: cannot parse the source: {exc.msg}; is it Python 3 code?"
        raise SourceSyntaxError(message, (filename, line, col, exc.text, exc.end_lineno, exc.end_offset)) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        message = f"{filename}: cannot parse the source: {exc}; is it Python 3 text?"
        raise SourceSyntaxError(message, (filename, 0, 0, None, None, None)) from None


@dataclass
class _ClassInfo:
    name: str
    node: ast.ClassDef
    bases: tuple[str, ...]
    methods: dict[str, _FuncDef]


def _decorator_names(fn: _FuncDef) -> set[str]:
    names = set()
    for deco in fn.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        if isinstance(target, ast.Name):
            names.add(target.id)
        elif isinstance(target, ast.Attribute):
            names.add(target.attr)
    return names


def _top_level(body: Sequence[ast.stmt]) -> Iterator[ast.stmt]:
    """Module statements, looking into top-level ``if``/``try`` blocks."""
    for stmt in body:
        if isinstance(stmt, ast.If):
            yield from _top_level(stmt.body)
            yield from _top_level(stmt.orelse)
        elif isinstance(stmt, ast.Try):
            for block in (stmt.body, stmt.orelse, stmt.finalbody, *(h.body for h in stmt.handlers)):
                yield from _top_level(block)
        else:
            yield stmt


class _Index:
    """The parsed file: classes, module functions, import aliases, C3 method lookup.

    ``extra`` files (``(source, filename)``) lend their classes to the index: the head's
    submodules defined in sibling files of the user's own code are followed like in-file
    classes, and their findings keep their own file and lines (:meth:`file_of`). The
    file's own classes win a name clash; the extra files' imports fill in aliases the file
    does not define.
    """

    def __init__(self, source: str, filename: str, extra: Sequence[tuple[str, str]] = ()) -> None:
        self.source = source
        self.filename = filename
        self.home: dict[str, _Index] = {}
        self.tree = _parse(source, filename)
        self.lines = source.splitlines()
        self.classes: dict[str, _ClassInfo] = {}
        self.functions: dict[str, _FuncDef] = {}
        self.aliases: dict[str, str] = {}
        for stmt in _top_level(self.tree.body):
            if isinstance(stmt, ast.ClassDef):
                methods = {s.name: s for s in stmt.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))}
                bases = tuple(b.id for b in stmt.bases if isinstance(b, ast.Name))
                self.classes[stmt.name] = _ClassInfo(stmt.name, stmt, bases, methods)
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.functions[stmt.name] = stmt
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.aliases[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        self._mro: dict[str, tuple[str, ...]] = {}
        for other_source, other_name in extra:
            other = _Index(other_source, other_name)
            for name, info in other.classes.items():
                if name not in self.classes:
                    self.classes[name] = info
                    self.home[name] = other
            for imported, target in other.aliases.items():
                self.aliases.setdefault(imported, target)

    def file_of(self, cls: str | None) -> _Index:
        """The index of the file that defines class ``cls`` (this file for module functions)."""
        return self.home.get(cls, self) if cls else self

    def mro(self, name: str) -> tuple[str, ...]:
        """In-file classes of ``name``'s MRO (C3; depth-first if C3 fails; cycles cut)."""
        if name in self._mro:
            return self._mro[name]
        self._mro[name] = (name,)  # guards against cyclic bases
        bases = [b for b in self.classes[name].bases if b in self.classes and b != name]
        seqs = [list(self.mro(b)) for b in bases] + [list(bases)]
        result = [name]
        while any(seqs):
            heads = [seq[0] for seq in seqs if seq and not any(seq[0] in s[1:] for s in seqs)]
            if not heads:  # no consistent C3 order: fall back to depth-first
                result += [c for b in bases for c in self.mro(b) if c not in result]
                break
            result.append(heads[0])
            seqs = [s[1:] if s and s[0] == heads[0] else s for s in seqs]
        self._mro[name] = tuple(dict.fromkeys(result))
        return self._mro[name]

    def lookup(self, cls: str, attr: str, after: str | None = None) -> tuple[str, _FuncDef] | None:
        """The in-file class and function that ``attr`` resolves to on ``cls`` (after ``after``)."""
        if cls not in self.classes:
            return None
        order = self.mro(cls)
        if after is not None:
            order = order[order.index(after) + 1 :] if after in order else ()
        for owner in order:
            fn = self.classes[owner].methods.get(attr)
            if fn is not None:
                return owner, fn
        return None

    def dotted(self, expr: ast.expr) -> str | None:
        """``F.normalize`` -> ``torch.nn.functional.normalize`` through the file's imports."""
        if isinstance(expr, ast.Name):
            return self.aliases.get(expr.id)
        if isinstance(expr, ast.Attribute):
            base = self.dotted(expr.value)
            return f"{base}.{expr.attr}" if base else None
        return None

    def text(self, line: int) -> str:
        return self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""

    def col(self, node: ast.AST) -> int:
        """1-based character column of a node (ast gives a UTF-8 byte offset)."""
        line, offset = getattr(node, "lineno", 0), getattr(node, "col_offset", 0)
        if 0 < line <= len(self.lines):
            return len(self.lines[line - 1].encode()[:offset].decode(errors="replace")) + 1
        return offset + 1


def _qualname(owner: str | None, name: str) -> str:
    return f"{owner}.{name}" if owner else name


def _short(node: ast.AST, limit: int = 80) -> str:
    text = ast.unparse(node)
    return text if len(text) <= limit else text[: limit - 3] + "..."
