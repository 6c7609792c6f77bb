"""Host files: the code that calls a head, loaded as subjects of the engineering checks.

A head sits in a backbone model (``main_model`` in ``projects/mae_lite/models_mae.py``)
and that model in a training wrapper (``Model`` in ``timm_imagenet_exp.py``). The host
checks run such files and read their source, so a host file is a subject too:

- a spec is ``PATH[:CLASS]`` or ``MODULE[:CLASS]``, loaded with the rules of head files
  (:func:`headaudit.subjects.import_file`: its own folder importable, as part of its
  package where it has one, output captured, nothing written next to it, ``sys.path`` and
  ``sys.modules`` restored). Without ``:CLASS`` the host class is the class whose methods
  call ``self.head(...)`` (found by :func:`headaudit.astscan.head_calls`); for the training
  wrapper, the class whose methods call ``self.model(...)``;
- a real host imports what the audit machine may not have (timm, the user's own
  packages). Its import failing is recorded, not fatal: :attr:`HostFile.unavailable`
  says what was raised (``ModuleNotFoundError: No module named 'timm'``) and the source
  stays available for the static parts of the checks. A file or class that is not there
  is bad input (:class:`~headaudit.errors.SubjectError`, exit 2);
- a host is never constructed with its own ``__init__`` (which would build a timm
  backbone): :meth:`HostFile.stand_in` makes an instance without it, with only what its
  ``forward`` call site needs: ``forward_train`` (a stand-in backbone) and ``head``.

:class:`HostSet` is what the checks receive (``ctx.hosts``): the host under audit
(``--host``, default the bundled ``models_mae.py`` as quoted in the original report), the
report's suggested fix and the tool's own fix (both bundled, so every run judges the
same two edits), and the training wrapper under audit (``--wrapper``, default the bundled
``timm_imagenet_exp.py:Model``), loaded by the same rules.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from headaudit.errors import SubjectError
from headaudit.model import Json
from headaudit.sandbox import CheckTimeout, call_subject, captured, describe_exception, time_limit
from headaudit.subjects import bundled_reference, display_path, import_file, locate_file, split_spec

__all__ = [
    "DEFAULT_HOST",
    "FIXED_HOST",
    "SUGGESTED_HOST",
    "WRAPPER",
    "HostFile",
    "HostSet",
    "default_hosts",
    "load_host",
    "load_hosts",
    "load_wrapper",
]

#: The bundled host files: the host as quoted, the report's suggested fix (its section
#: 4.2), a fix that unpacks by the head's actual return, and the training wrapper.
DEFAULT_HOST = "models_mae.py"
SUGGESTED_HOST = "models_mae_suggested.py"
FIXED_HOST = "models_mae_fixed.py"
WRAPPER = "timm_imagenet_exp.py:Model"


def _classes(tree: ast.Module) -> list[str]:
    return [node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]


def _calling_class(source: str, display: str, receiver: str = "self.head") -> str | None:
    """The first class with a method that calls ``receiver(...)`` (``self.head``)."""
    from headaudit.astscan import head_calls

    for call in head_calls(source, display, receiver):
        owner = call.function.split(".")[0]
        if owner and owner != "<module>" and owner != call.function:
            return owner
    return None


@dataclass(frozen=True)
class HostFile:
    """A loaded host file: its source always, its module and class when it imported.

    ``unavailable`` is what importing it raised (one line), ``missing_module`` the module
    named by a ``ModuleNotFoundError``; both are None when it imported.
    """

    spec: str
    path: Path
    display: str
    sha256: str
    source: str
    class_name: str
    module: ModuleType | None = None
    host_cls: type | None = None
    unavailable: str | None = None
    missing_module: str | None = None
    load_output: str = ""
    #: ``(path, sha256)`` of the user's files loading it ran (the file itself always; see
    #: :func:`headaudit.subjects.import_file`), sorted; the result cache keys on them.
    files: tuple[tuple[str, str], ...] = ()

    @property
    def runnable(self) -> bool:
        return self.host_cls is not None

    def info(self, variant: str) -> dict[str, Json]:
        """What the report shows about the file (JSON-safe)."""
        return {
            "variant": variant,
            "path": self.display,
            "class": self.class_name,
            "sha256": self.sha256,
            "unavailable": self.unavailable,
            "missing_module": self.missing_module,
            "load_output": self.load_output,
        }

    def stand_in(self, head: Any, forward_train: Callable[..., Any]) -> Any:
        """An instance of the host class made without its ``__init__``.

        It holds ``head`` and a stand-in ``forward_train``; an ``nn.Module`` host gets
        ``nn.Module.__init__`` so that ``train()``/``eval()`` and hooks work. Raises
        :class:`~headaudit.sandbox.SubjectRaised` when the class cannot be instantiated so.
        """
        cls = self.host_cls
        if cls is None:
            raise RuntimeError(f"host {self.display} did not import: {self.unavailable}")
        obj: Any = call_subject(f"{cls.__name__}.__new__", cls.__new__, cls)
        if isinstance(obj, nn.Module):
            nn.Module.__init__(obj)
        obj.forward_train = forward_train
        obj.head = head
        return obj


def load_host(spec: str, label: str = "host", *, timeout: float | None = None, receiver: str = "self.head") -> HostFile:
    """Load a host file; raise :class:`SubjectError` (one clear line) for bad input only.

    Without ``:CLASS`` the class is the first one whose methods call ``receiver(...)``
    (``self.head`` for a host, ``self.model`` for a training wrapper).
    """
    target, wanted = split_spec(spec)
    path = locate_file(target, label)
    if path is None:
        path = _module_file(target, label)
    source = path.read_text(encoding="utf-8", errors="replace")
    display = display_path(path)
    try:
        tree = ast.parse(source, filename=display)
    except SyntaxError as exc:
        raise SubjectError(f"{label} {display!r} is not valid Python: {exc.msg} (line {exc.lineno})") from None
    defined = _classes(tree)
    name = wanted or _calling_class(source, display, receiver)
    if name is None:
        raise SubjectError(
            f"{label} {display!r} has no class whose methods call {receiver}(...); name the class as PATH:CLASS "
            f"(it defines: {', '.join(defined) or 'no classes'})"
        )
    if name not in defined:
        raise SubjectError(f"{label} {display!r} has no class {name!r}; it defines: {', '.join(defined) or 'nothing'}")
    module: ModuleType | None = None
    unavailable = missing = None
    seen: dict[Path, str] = {}
    try:
        with captured() as output, time_limit(timeout):
            try:
                module = import_file(path, seen)
            except (Exception, SystemExit) as exc:
                unavailable = describe_exception(exc)
                missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
    except CheckTimeout as exc:
        unavailable = f"importing it {exc}"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    seen[path.resolve()] = digest  # its source is read even when the import fails
    cls = getattr(module, name, None) if module is not None else None
    if module is not None and not isinstance(cls, type):
        unavailable = f"importing it gave no class {name!r}"
        module, cls = None, None
    return HostFile(
        spec=spec,
        path=path,
        display=display,
        sha256=digest,
        source=source,
        class_name=name,
        module=module,
        host_cls=cls if isinstance(cls, type) else None,
        unavailable=unavailable,
        missing_module=missing,
        load_output=output.combined(),
        files=tuple(sorted((str(p), h) for p, h in seen.items())),
    )


def _module_file(target: str, label: str) -> Path:
    """The source file of an importable module, found without running it."""
    import importlib.util

    try:
        found = importlib.util.find_spec(target)
    except (Exception, SystemExit) as exc:
        raise SubjectError(
            f"{label} {target!r} is neither a file nor a findable module ({describe_exception(exc)})"
        ) from None
    if found is None or not found.origin or not Path(found.origin).is_file():
        raise SubjectError(f"{label} {target!r} is neither a file nor an importable module; pass a .py path")
    return Path(found.origin).resolve()


@dataclass(frozen=True)
class HostSet:
    """The host files every host check uses (see the module docstring)."""

    host: HostFile
    suggested: HostFile
    fixed: HostFile
    wrapper: HostFile

    def variants(self) -> tuple[tuple[str, HostFile], ...]:
        """``(variant, file)`` of the hosts whose call site is run: the host, the two fixes."""
        return (("host", self.host), ("suggested", self.suggested), ("fixed", self.fixed))

    def info(self) -> list[dict[str, Json]]:
        return [file.info(variant) for variant, file in (*self.variants(), ("wrapper", self.wrapper))]


def _bundled(spec: str) -> str:
    target, _, cls = spec.partition(":")
    return str(bundled_reference(target)) + (f":{cls}" if cls else "")


def load_wrapper(spec: str | None = None, *, timeout: float | None = None) -> HostFile:
    """The training wrapper (default: the bundled ``timm_imagenet_exp.py:Model``).

    Loaded like a host; without ``:CLASS`` its class is the first one whose methods call
    ``self.model(...)``. A wrapper whose imports are missing here is kept for its source.
    """
    return load_host(spec or _bundled(WRAPPER), "wrapper", timeout=timeout, receiver="self.model")


def load_hosts(host: str | None = None, *, wrapper: str | None = None, timeout: float | None = None) -> HostSet:
    """The host set with ``host`` and ``wrapper`` under audit (default: the bundled
    ``models_mae.py`` and ``timm_imagenet_exp.py:Model``)."""
    return HostSet(
        host=load_host(host or _bundled(DEFAULT_HOST), "host", timeout=timeout),
        suggested=load_host(_bundled(SUGGESTED_HOST), "suggested host", timeout=timeout),
        fixed=load_host(_bundled(FIXED_HOST), "fixed host", timeout=timeout),
        wrapper=load_wrapper(wrapper, timeout=timeout),
    )


@functools.cache
def default_hosts() -> HostSet:
    """The bundled host set, loaded once per process."""
    return load_hosts()
