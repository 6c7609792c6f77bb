"""Static findings on a head's forward path: host reads, class loops, writes through ``.data``.

The three checks read the subject's source with :mod:`headaudit.astscan` (the standard
:mod:`ast` module; nothing is run): the forward path is the head class's ``forward`` and
everything it calls inside the subject file, followed through method calls on ``self``
and its submodules. The engine's rules are documented in :mod:`headaudit.astscan`.

- ``static.host-syncs``: ``.item()``, ``.tolist()``, ``.cpu()``, host conversions, Python
  ``if``/``while`` on tensors and data-dependent shapes on the forward path: ``fail`` when
  there is one, with every place listed.
- ``static.class-loops``: Python loops over classes (``range(num_classes)``, the
  per-class index list, prototype rows) on the forward path, with their nesting depth
  (across calls): ``fail`` when there is one.
- ``static.data-writes``: writes through ``.data`` on a parameter or buffer anywhere in
  the head's own classes (the in-file classes of the modules a built head is made of)
  and in the file's module-level functions: ``fail`` when one is on the forward path
  (it bypasses autograd while a step runs), ``warn`` when they are only outside it
  (update methods under ``no_grad``), ``pass`` when there is none.

The scan starts in the subject file: when the head class or its ``forward`` is defined in
another file (a subclass of an imported head), the verdict is ``n/a`` naming that file.
Classes of the head's submodules defined in other files of the user's own code (its
folder, or its package) are followed like in-file classes, so a head split over a package
is scanned whole; installed packages and this tool are not. The evidence lists the files
and the functions scanned.

Cost: well under a second per subject.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headaudit.astscan import Finding as AstFinding
from headaudit.astscan import analyze_file
from headaudit.context import Context
from headaudit.messages import Msg
from headaudit.model import Finding
from headaudit.registry import Check
from headaudit.subjects import display_path

__all__ = ["CHECKS", "ORDER", "StaticMeasurement", "measure_static"]

_TOOL = Path(__file__).resolve().parents[1]  # the headaudit package (bundled references included)


@dataclass(frozen=True)
class Site:
    """One place where a rule matched, as the report shows it."""

    file: str  # shown like the report shows subject paths
    line: int
    col: int
    source: str
    kind: str
    detail: str
    function: str
    on_forward_path: bool
    depth: int | None = None  # class-loop nesting depth (class-loops only)

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class StaticMeasurement:
    rule: str
    file: str
    head_class: str
    forward_path: tuple[str, ...]  # the functions scanned, by line
    sites: tuple[Site, ...]
    scope: tuple[str, ...] = ()  # classes whose off-path writes count (data-writes)
    elsewhere: str | None = None  # "class" or "forward": defined in another file (n/a)
    defined_in: str | None = None
    files: tuple[str, ...] = ()  # the files scanned: the subject's, then sibling files of its submodules


def _code_file(obj: Any) -> Path | None:
    fn = getattr(obj, "__func__", obj)
    fn = getattr(fn, "__wrapped__", fn)
    code = getattr(fn, "__code__", None)
    return Path(code.co_filename).resolve() if code is not None else None


def _defining_file(cls: type, name: str) -> Path | None:
    """The file of the function ``name`` as ``cls`` resolves it (None: not a Python function)."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return _code_file(vars(klass)[name])
    return None


def _class_file(cls: type) -> Path | None:
    """The file that defines ``cls``, from the code of a function in its own body."""
    for value in vars(cls).values():
        found = _code_file(value)
        if found is not None:
            return found
    return None


def _site(f: AstFinding, file: str, rule: str) -> Site:
    return Site(
        file=file,
        line=f.line,
        col=f.col,
        source=f.source.strip(),
        kind=f.kind,
        detail=f.detail,
        function=f.function,
        on_forward_path=bool(f.on_forward_path),
        depth=f.depth if rule == "class-loops" else None,
    )


def _head_class_files(ctx: Context) -> set[tuple[str, Path | None]]:
    """The classes the head is made of (its modules' classes and their bases), by name and file
    (a subclass may share its base's name)."""
    probe = ctx.subject.probe
    parts = probe.modules() if hasattr(probe, "modules") else [probe]
    return {(k.__name__, _class_file(k)) for m in parts for k in type(m).__mro__}


def _own_code(path: Path, root: Path) -> bool:
    """A file of the user's own code: under ``root``, outside installed packages and this tool."""
    if not path.is_file() or not path.is_relative_to(root):
        return False
    installed = {"site-packages", "dist-packages"}
    return not installed & set(path.parts) and not path.is_relative_to(_TOOL)


def _sibling_files(path: Path, class_files: set[tuple[str, Path | None]]) -> tuple[Path, ...]:
    """Other files of the user's own code that define classes of the head's submodules.

    A head split over a package (or over sibling modules) keeps its loss and manager in
    other files; the forward path follows them, so their host reads and loops are seen.
    """
    root = path.parent
    while (root / "__init__.py").is_file() and root.parent != root:
        root = root.parent
    found = {file for _, file in class_files}
    return tuple(sorted(f for f in found if f is not None and f != path and _own_code(f, root)))


def measure_static(ctx: Context, rule: str) -> StaticMeasurement:
    """Scan the subject file for ``rule`` (an :data:`headaudit.astscan.RULES` id)."""
    ctx.get(ctx.subject.probe, "forward")  # the declared root of the forward path
    subject, cls = ctx.subject, ctx.subject.head_cls
    path, shown = subject.path.resolve(), subject.display
    for what, where in (("class", _class_file(cls)), ("forward", _defining_file(cls, "forward"))):
        if where is not None and where != path:
            return StaticMeasurement(rule, shown, cls.__name__, (), (), elsewhere=what, defined_in=display_path(where))
    class_files = _head_class_files(ctx)
    siblings = _sibling_files(path, class_files)
    analysis = analyze_file(path, cls.__name__, rules=(rule,), extra=siblings)
    scope: tuple[str, ...] = ()
    if rule == "data-writes":
        classes = {name for name, file in class_files if file in {path, *siblings}}
        scope = tuple(sorted(classes))
        pool = [
            f
            for f in analysis.file_findings
            if f.on_forward_path or "." not in f.function or f.function.rsplit(".", 1)[0] in classes
        ]
    else:
        pool = list(analysis.findings)
    return StaticMeasurement(
        rule=rule,
        file=shown,
        head_class=cls.__name__,
        forward_path=tuple(ref.qualname for ref in analysis.forward_path),
        sites=tuple(_site(f, shown if Path(f.file) == path else display_path(Path(f.file)), rule) for f in pool),
        scope=scope,
        files=(shown, *(display_path(f) for f in siblings)),
    )


def _kinds(sites: tuple[Site, ...]) -> list[Msg]:
    counts: dict[str, int] = {}
    for s in sites:
        counts[s.kind] = counts.get(s.kind, 0) + 1
    return [Msg(f"static.kind.{kind}", {"count": n}) for kind, n in counts.items()]


def _where(site: Site) -> Msg:
    return Msg("static.site", {"location": site.location, "detail": site.detail})


def _elsewhere(m: StaticMeasurement) -> Finding | None:
    if m.elsewhere is None:
        return None
    params = {"cls": m.head_class, "file": m.file, "defined_in": m.defined_in or "?"}
    return Finding("n/a", Msg(f"static.elsewhere.{m.elsewhere}", params))


def _judge_syncs(m: StaticMeasurement) -> Finding:
    elsewhere = _elsewhere(m)
    if elsewhere is not None:
        return elsewhere
    if not m.forward_path:
        return Finding("error", Msg("static.no_path", {"file": m.file}))
    if m.sites:
        params = {
            "count": len(m.sites),
            "kinds": _kinds(m.sites),
            "functions": len({s.function for s in m.sites}),
            "first": _where(m.sites[0]),
        }
        return Finding("fail", Msg("static.host-syncs.fail", params))
    return Finding("pass", Msg("static.host-syncs.pass", {"functions": len(m.forward_path), "file": m.file}))


def _judge_loops(m: StaticMeasurement) -> Finding:
    elsewhere = _elsewhere(m)
    if elsewhere is not None:
        return elsewhere
    if not m.forward_path:
        return Finding("error", Msg("static.no_path", {"file": m.file}))
    if m.sites:
        deepest = max(m.sites, key=lambda s: s.depth or 0)
        params = {
            "count": len(m.sites),
            "depth": deepest.depth or 1,
            "deepest": _where(deepest),
            "function": deepest.function,
            "functions": len({s.function for s in m.sites}),
        }
        return Finding("fail", Msg("static.class-loops.fail", params))
    return Finding("pass", Msg("static.class-loops.pass", {"functions": len(m.forward_path), "file": m.file}))


def _judge_writes(m: StaticMeasurement) -> Finding:
    elsewhere = _elsewhere(m)
    if elsewhere is not None:
        return elsewhere
    if not m.forward_path:
        return Finding("error", Msg("static.no_path", {"file": m.file}))
    on_path = [s for s in m.sites if s.on_forward_path]
    off_path = [s for s in m.sites if not s.on_forward_path]
    functions = [f"`{name}`" for name in sorted({s.function for s in off_path})]
    if on_path:
        params = {
            "count": len(on_path),
            "places": [_where(s) for s in on_path],
            "others": len(off_path),
        }
        return Finding("fail", Msg("static.data-writes.fail", params))
    if off_path:
        params = {"count": len(off_path), "places": [_where(s) for s in off_path], "functions": functions}
        return Finding("warn", Msg("static.data-writes.warn", params))
    return Finding("pass", Msg("static.data-writes.pass", {"classes": len(m.scope), "file": m.file}))


def _measure_syncs(ctx: Context) -> StaticMeasurement:
    return measure_static(ctx, "host-syncs")


def _measure_loops(ctx: Context) -> StaticMeasurement:
    return measure_static(ctx, "class-loops")


def _measure_writes(ctx: Context) -> StaticMeasurement:
    return measure_static(ctx, "data-writes")


ORDER = 320

CHECKS: tuple[Check[Any], ...] = (
    Check(
        id="static.host-syncs",
        catalogue=3,
        measure=_measure_syncs,
        judge=_judge_syncs,
        needs=("forward",),
        severity="medium",
        runs_head=False,
    ),
    Check(
        id="static.class-loops",
        catalogue=3,
        measure=_measure_loops,
        judge=_judge_loops,
        needs=("forward",),
        severity="medium",
        runs_head=False,
    ),
    Check(
        id="static.data-writes",
        catalogue=3,
        measure=_measure_writes,
        judge=_judge_writes,
        needs=("forward",),
        severity="low",
        runs_head=False,
    ),
)
