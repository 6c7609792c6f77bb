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

The scan covers one file: when the head class or its ``forward`` is defined in another
file (a subclass of an imported head), the verdict is ``n/a`` naming that file. Calls
into other files are not followed; the evidence lists the functions scanned.

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


def _head_classes(ctx: Context) -> set[str]:
    """In-file classes the head is made of: the classes of its modules and their bases."""
    module = ctx.subject.module.__name__
    probe = ctx.subject.probe
    parts = probe.modules() if hasattr(probe, "modules") else [probe]
    return {k.__name__ for m in parts for k in type(m).__mro__ if k.__module__ == module}


def measure_static(ctx: Context, rule: str) -> StaticMeasurement:
    """Scan the subject file for ``rule`` (an :data:`headaudit.astscan.RULES` id)."""
    ctx.get(ctx.subject.probe, "forward")  # the declared root of the forward path
    subject, cls = ctx.subject, ctx.subject.head_cls
    path, shown = subject.path.resolve(), subject.display
    for what, where in (("class", _class_file(cls)), ("forward", _defining_file(cls, "forward"))):
        if where is not None and where != path:
            return StaticMeasurement(rule, shown, cls.__name__, (), (), elsewhere=what, defined_in=display_path(where))
    analysis = analyze_file(path, cls.__name__, rules=(rule,))
    scope: tuple[str, ...] = ()
    if rule == "data-writes":
        classes = _head_classes(ctx)
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
        sites=tuple(_site(f, shown, rule) for f in pool),
        scope=scope,
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
    ),
    Check(
        id="static.class-loops",
        catalogue=3,
        measure=_measure_loops,
        judge=_judge_loops,
        needs=("forward",),
        severity="medium",
    ),
    Check(
        id="static.data-writes",
        catalogue=3,
        measure=_measure_writes,
        judge=_judge_writes,
        needs=("forward",),
        severity="low",
    ),
)
