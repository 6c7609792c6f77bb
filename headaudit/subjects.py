"""Loading the files under audit ("subjects") by path or module name.

A subject spec is ``PATH`` or ``MODULE``, optionally followed by ``:CLASS``
(``my_head.py:HeadOptimal``, ``pkg.heads:Head``). Without a class the head class is
``HeadOptimal`` if the module defines it, else ``Head``.

A file is loaded the way Python would run it from its project:

- its own folder is importable, so ``import blocks`` finds a sibling ``blocks.py``;
- when its folder is a package (has ``__init__.py``), it is imported as a module of that
  package (walking up to the top package), so relative imports work;
- ``sys.path`` and ``sys.modules`` are restored afterwards (modules that came from the
  subject's folder are removed, anything they shadowed is put back), so a baseline and a
  candidate with same-named siblings never see each other's;
- no ``__pycache__`` is written next to the user's file;
- whatever it prints is captured, never mixed into the report's stream;
- it runs under the time budget, and ``SystemExit`` is an error like any other;
- the user's files it loaded are recorded (:attr:`Subject.files`, path and sha256): the
  file itself, every module imported from its folder or package, and every other module
  loaded from outside Python's own and the installed packages' folders. The result cache
  (:mod:`headaudit.cache`) keys on them, so editing a sibling the head imports invalidates
  its results.

Loading also builds one small head (the probe), trying a few sizes, so a constructor that
always raises is reported up front as a :class:`SubjectError` (exit 2). Subjects carry no
role: which slot a file sits in is the runner's business, never a check's.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import os
import site
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

from headaudit.build import construct
from headaudit.errors import SubjectError
from headaudit.model import SubjectInfo
from headaudit.names import NameMap, walk
from headaudit.sandbox import CheckTimeout, SubjectRaised, captured, describe_exception, time_limit

__all__ = [
    "FAMILY_NAMES",
    "HEAD_CLASS_NAMES",
    "SMOKE_SIZES",
    "Subject",
    "bundled_reference",
    "default_specs",
    "display_path",
    "import_file",
    "importable",
    "load_subject",
    "locate_file",
    "make_subject",
    "split_spec",
]

HEAD_CLASS_NAMES = ("HeadOptimal", "Head")

#: Sizes ``(num_classes, emb_dim, num_heads, img_feat_dim)`` tried, in order, for the probe.
#: The first that builds is the subject's base; checks start from its ``num_heads``.
SMOKE_SIZES: tuple[tuple[int, int, int, int], ...] = ((3, 8, 2, 8), (3, 16, 4, 16), (3, 16, 1, 16), (3, 64, 4, 64))


@dataclass(frozen=True)
class Subject:
    """A loaded head file: where it came from, its head class, and a small built probe.

    ``probe`` is the head built when loading; the runner resolves declared names on it,
    so it is never trained or measured. ``names`` holds the user's name maps.
    """

    spec: str
    path: Path
    display: str
    sha256: str
    module: ModuleType
    head_cls: type
    probe: Any
    sizes: tuple[int, int, int, int]
    names: NameMap = field(default_factory=NameMap)
    load_output: str = ""
    #: ``(path, sha256)`` of every file of the user's that loading it ran, sorted (see the module docstring).
    files: tuple[tuple[str, str], ...] = ()

    def info(self, role: str, only: str | None = None) -> SubjectInfo:
        return SubjectInfo(role, self.display, self.sha256, self.head_cls.__name__, self.load_output, only)

    def attr(self, name: str) -> Any:
        """A module-level name of the subject file, or None."""
        return getattr(self.module, name, None)


def _reference_dir() -> Path:
    return Path(str(resources.files("headaudit.reference")))


def bundled_reference(name: str) -> Path:
    """Path of a bundled reference file, e.g. ``bundled_reference("head.py")``."""
    path = _reference_dir() / name
    if not path.is_file():
        raise SubjectError(f"bundled reference {name!r} is missing from {path.parent}; reinstall headaudit")
    return path


def default_specs() -> dict[str, str]:
    """The default subject of each role: the bundled references."""
    return {
        "baseline": str(bundled_reference("head.py")),
        "candidate": str(bundled_reference("head_optimal.py")),
    }


def display_path(path: Path) -> str:
    """How a file is shown in reports: bundled references as ``headaudit:reference/NAME``,
    files under the working directory relative to it, others absolute."""
    path = path.resolve()
    with contextlib.suppress(ValueError):
        return f"headaudit:reference/{path.relative_to(_reference_dir().resolve()).as_posix()}"
    with contextlib.suppress(ValueError):
        return path.relative_to(Path.cwd().resolve()).as_posix()
    return path.as_posix()


def split_spec(spec: str) -> tuple[str, str | None]:
    """``(target, class name or None)`` of a ``TARGET[:CLASS]`` spec."""
    target, sep, cls = spec.rpartition(":")
    if sep and cls.isidentifier() and target:
        return target, cls
    return spec, None


def _package_root(folder: Path) -> Path | None:
    """The top package folder containing ``folder``, or None when it is not a package."""
    top = None
    while (folder / "__init__.py").is_file():
        top = folder
        folder = folder.parent
    return top


def _under(module: ModuleType, root: Path) -> bool:
    for where in [getattr(module, "__file__", None), *list(getattr(module, "__path__", []) or [])]:
        if where:
            with contextlib.suppress(ValueError, OSError):
                Path(where).resolve().relative_to(root)
                return True
    return False


def _local_names(root: Path) -> set[str]:
    """Top-level module names a folder provides (``x.py`` and packages ``x/``)."""
    names = set()
    with contextlib.suppress(OSError):
        for entry in root.iterdir():
            if entry.suffix == ".py":
                names.add(entry.stem)
            elif (entry / "__init__.py").is_file():
                names.add(entry.name)
    return names


@functools.cache
def _installed_roots() -> tuple[Path, ...]:
    """Folders whose modules are not the user's: Python's own library, the installed
    packages, and headaudit itself (its sources are in every cache key already)."""
    paths = sysconfig.get_paths()
    found = [paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths]
    with contextlib.suppress(AttributeError):  # virtualenv's old site.py lacks them
        found += [*site.getsitepackages(), site.getusersitepackages()]
    found += [str(Path(__file__).resolve().parent), str(_reference_dir())]
    roots = []
    for folder in found:
        with contextlib.suppress(OSError):
            roots.append(Path(folder).resolve())
    return tuple(roots)


@functools.cache
def _installed(where: str) -> bool:
    """Whether the module file ``where`` lies under :func:`_installed_roots` (not the user's).

    Kept per path: with torch loaded, every import of a subject walks thousands of modules,
    and resolving each file's path again every time cost seconds per subject. An installed
    file stays installed, so the answer cannot go stale; the user's files are read each time.
    (Absolute paths only: a relative one depends on the working folder.)"""
    path = Path(where)
    if path.suffix not in (".py", ".pyw"):
        return False
    resolved = path.resolve()
    return any(resolved.is_relative_to(root) for root in _installed_roots())


def user_files(modules: Iterable[ModuleType], seen: dict[Path, str]) -> None:
    """Add the source files (path -> sha256 of the bytes) of ``modules`` that are the user's.

    A module is the user's when its file lies outside :func:`_installed_roots`: the
    subject's siblings, its package, and anything else on ``sys.path`` that is not an
    installed package (a project's own ``src/`` or an editable install).
    """
    roots = _installed_roots()
    for module in modules:
        where = getattr(module, "__file__", None)
        if not isinstance(where, str) or not where or (os.path.isabs(where) and _installed(where)):
            continue
        path = Path(where)
        if path.suffix not in (".py", ".pyw") or not path.is_file():
            continue
        path = path.resolve()
        if path in seen or any(path.is_relative_to(root) for root in roots):
            continue
        with contextlib.suppress(OSError):
            seen[path] = hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def _isolated_import(search_dir: Path, root: Path, seen: dict[Path, str] | None = None) -> Iterator[None]:
    """Make ``search_dir`` importable for a block, then restore ``sys.path``/``sys.modules``.

    ``seen`` receives the user's files loaded by then (:func:`user_files`), read before the
    folder's modules are forgotten."""
    saved_path = list(sys.path)
    saved_bytecode = sys.dont_write_bytecode
    before = set(sys.modules)
    # Modules of the same names as the folder's own, loaded from elsewhere, would shadow
    # the user's siblings: set them aside and put them back afterwards.
    # (the folder's names are listed once, not once per loaded module: with torch loaded,
    # sys.modules holds thousands, and each listing stats every entry of the folder)
    local = _local_names(search_dir)
    shadowed = {
        name: module
        for name, module in list(sys.modules.items())
        if name.split(".")[0] in local and not _under(module, search_dir)
    }
    for name in shadowed:
        del sys.modules[name]
    sys.path.insert(0, str(search_dir))
    sys.dont_write_bytecode = True
    try:
        yield
    finally:
        if seen is not None:
            user_files(list(sys.modules.values()), seen)
        sys.path[:] = saved_path
        sys.dont_write_bytecode = saved_bytecode
        for name in set(sys.modules) - before:
            module = sys.modules.get(name)
            if module is None or _under(module, root):
                sys.modules.pop(name, None)
        sys.modules.update(shadowed)


def import_file(path: Path, seen: dict[Path, str] | None = None) -> ModuleType:
    """Import a source file as described in the module docstring (its folder importable, no trace left).

    ``seen`` (path -> sha256) receives the user's files the import loaded, ``path`` included.
    """
    if seen is not None:
        seen[path.resolve()] = hashlib.sha256(path.read_bytes()).hexdigest()
    package = _package_root(path.parent)
    if package is not None:
        dotted = ".".join([*path.parent.relative_to(package.parent).parts, path.stem])
        with _isolated_import(package.parent, package, seen):
            return importlib.import_module(dotted)
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    name = f"headaudit_subject_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SubjectError(f"cannot import {display_path(path)!r}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    with _isolated_import(path.parent, path.parent, seen):
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


def locate_file(target: str, label: str) -> Path | None:
    """The file a spec target names (resolved), or None when it names a module.

    Raises :class:`SubjectError` when it names a folder or a file that is not there.
    """
    path = Path(target)
    if target.endswith(".py") or path.exists() or os.sep in target or "/" in target:
        if path.is_dir():
            raise SubjectError(f"{label} {target!r} is a directory; pass the .py file inside it")
        if not path.is_file():
            raise SubjectError(f"{label} file {target!r} does not exist; pass a .py path or a module name")
        return path.resolve()
    return None


def _load_module(target: str, label: str, seen: dict[Path, str]) -> tuple[Path, ModuleType]:
    path = locate_file(target, label)
    if path is not None:
        try:
            return path, import_file(path, seen)
        except SubjectError:
            raise
        except (Exception, SystemExit) as exc:
            raise SubjectError(f"importing {label} {display_path(path)!r} raised {describe_exception(exc)}") from exc
    try:
        module = importlib.import_module(target)
    except (Exception, SystemExit) as exc:
        raise SubjectError(
            f"{label} {target!r} is neither a file nor an importable module ({describe_exception(exc)}); "
            "give the path of the .py file, or put its folder on PYTHONPATH"
        ) from exc
    file = getattr(module, "__file__", None)
    if not file:
        raise SubjectError(f"{label} module {target!r} has no source file to audit")
    user_files(list(sys.modules.values()), seen)
    return Path(file).resolve(), module


def _classes_in(module: ModuleType) -> list[str]:
    return sorted(
        name
        for name, value in vars(module).items()
        if isinstance(value, type) and getattr(value, "__module__", None) == module.__name__
    )


def _head_class(module: ModuleType, path: Path, wanted: str | None, label: str) -> type:
    names = (wanted,) if wanted else HEAD_CLASS_NAMES
    for name in names:
        cls = getattr(module, name, None)
        if isinstance(cls, type):
            return cls
    there = ", ".join(_classes_in(module)) or "no classes"
    if wanted:
        raise SubjectError(
            f"{label} {display_path(path)!r} has no class {wanted!r}; it defines: {there} (name one after ':')"
        )
    raise SubjectError(
        f"{label} {display_path(path)!r} defines neither {' nor '.join(HEAD_CLASS_NAMES)}; it defines: {there} "
        "(name the head as PATH:CLASS)"
    )


def _probe(cls: type, names: NameMap) -> tuple[Any, tuple[int, int, int, int]]:
    first: SubjectRaised | None = None
    for sizes in SMOKE_SIZES:
        try:
            built = construct(cls, sizes, {"dropout_rate": 0.0}, names)
        except SubjectRaised as exc:
            first = first or exc
            continue
        return built.head, sizes
    assert first is not None
    call = f"{cls.__name__}({', '.join(map(str, SMOKE_SIZES[0]))})"
    raise SubjectError(f"{call} raised {first.detail}; the head cannot be built at any of the small sizes tried")


#: Parts every head of this family has at least one of (BEHAVIOR.md; after the user's maps).
FAMILY_NAMES = (
    "proto_manager",
    "proto_loss_fn",
    "mixed_attn",
    "forward_features",
    "compute_similarities",
    "aggregate_similarities",
)


def _require_family(probe: Any, cls: type, names: NameMap, what: str) -> None:
    """Refuse a class that is not a head of this family (a loss or a block picked by mistake)."""
    if any(walk(probe, names.apply(n))[0] for n in FAMILY_NAMES):
        return
    raise SubjectError(
        f"{what} is not a head of this family: it has none of {', '.join(FAMILY_NAMES)}; "
        "name the head class as FILE:CLASS, or map renamed parts with --map CANONICAL=THEIRS"
    )


def load_subject(
    spec: str,
    label: str = "subject",
    *,
    names: NameMap | None = None,
    timeout: float | None = None,
) -> Subject:
    """Load ``spec``; raise :class:`SubjectError` with one clear line on failure.

    ``label`` only names the subject in error messages ("baseline", "candidate").
    """
    names = names or NameMap()
    target, wanted = split_spec(spec)
    seen: dict[Path, str] = {}
    try:
        with captured() as output, time_limit(timeout):
            path, module = _load_module(target, label, seen)
            cls = _head_class(module, path, wanted, label)
            try:
                probe, sizes = _probe(cls, names)
            except SubjectError as exc:
                raise SubjectError(f"{label} head from {display_path(path)!r}: {exc}") from exc
            _require_family(probe, cls, names, f"{label} class {cls.__name__!r} from {display_path(path)!r}")
    except CheckTimeout as exc:
        raise SubjectError(f"loading {label} {spec!r} {exc} (raise --timeout if it is just slow)") from None
    return _subject(spec, path, module, cls, (probe, sizes), names, output.combined(), seen)


def _subject(
    spec: str,
    path: Path,
    module: ModuleType,
    cls: type,
    probed: tuple[Any, tuple[int, int, int, int]],
    names: NameMap,
    load_output: str,
    seen: dict[Path, str] | None = None,
) -> Subject:
    """The :class:`Subject` record of a loaded file (the sha256 of its bytes, zeros without one)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "0" * 64
    files = dict(seen or {})
    if path.is_file():
        files[path.resolve()] = digest
    probe, sizes = probed
    recorded = tuple(sorted((str(p), h) for p, h in files.items()))
    return Subject(spec, path, display_path(path), digest, module, cls, probe, sizes, names, load_output, recorded)


def make_subject(
    cls: type, *, path: Path | None = None, names: NameMap | None = None, module: ModuleType | None = None
) -> Subject:
    """A subject from a head class already in memory (for tests and library use).

    ``path`` is the file shown in reports (default: the file that defines ``cls``);
    ``module`` the namespace its module-level names are read from (default: that file's module).
    """
    names = names or NameMap()
    module = module or sys.modules.get(cls.__module__) or ModuleType(cls.__module__)
    source = path or Path(getattr(module, "__file__", None) or ".")
    with captured() as output:
        probed = _probe(cls, names)
    return _subject(cls.__qualname__, source, module, cls, probed, names, output.combined())


def _defining_globals(head: Any) -> Iterator[dict[str, Any]]:
    """The globals of every function defined on the classes of ``head``'s modules."""
    modules = head.modules() if hasattr(head, "modules") and callable(head.modules) else [head]
    for module in modules:
        for cls in type(module).__mro__:
            for value in vars(cls).values():
                fn = getattr(value, "__func__", value)
                found = getattr(fn, "__globals__", None)
                if isinstance(found, dict):
                    yield found


@contextlib.contextmanager
def importable(subjects: Iterable[Subject]) -> Iterator[None]:
    """Make the subjects' modules importable by name for the block, then forget them.

    A subject file is loaded without staying in ``sys.modules`` (see
    :mod:`headaudit.subjects`), but ``torch._dynamo`` imports the module of every
    function it inlines by name (``importlib.import_module(f_globals["__name__"])``)
    and fails with ``ModuleNotFoundError`` otherwise. Each module the head's classes
    were defined in (the file, and siblings it imported) is put back under its name for
    the block; names already in ``sys.modules`` are left alone.
    """
    added: list[str] = []
    try:
        for subject in subjects:
            candidates: dict[str, ModuleType] = {subject.module.__name__: subject.module}
            for namespace in _defining_globals(subject.probe):
                name = namespace.get("__name__")
                if isinstance(name, str) and name not in candidates:
                    shell = ModuleType(name)
                    shell.__dict__.update(namespace)
                    candidates[name] = shell
            for name in list(candidates):
                parts = name.split(".")
                for cut in range(1, len(parts)):  # a package's parents, as import_module reaches them
                    parent = ".".join(parts[:cut])
                    if parent not in candidates:
                        shell = ModuleType(parent)
                        shell.__path__ = []
                        candidates[parent] = shell
            for name, module in candidates.items():
                if name not in sys.modules:
                    sys.modules[name] = module
                    added.append(name)
        yield
    finally:
        for name in added:
            sys.modules.pop(name, None)
