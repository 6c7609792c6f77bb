"""Loading the files under audit ("subjects") by path or module name.

A subject spec is ``PATH`` or ``MODULE``, optionally followed by ``:CLASS``
(``my_head.py:HeadOptimal``, ``pkg.heads:Head``). Without a class the head class is
``HeadOptimal`` if the module defines it, else ``Head``. Loading also builds one tiny
head, so a constructor that raises is reported up front as a :class:`SubjectError`
instead of turning every check into an error.

The bundled references (``reference/head.py`` and ``reference/head_optimal.py`` in the
source tree, ``headaudit/reference/`` once installed) are the default baseline and
candidate.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

from headaudit.errors import SubjectError
from headaudit.model import SubjectInfo

__all__ = [
    "HEAD_CLASS_NAMES",
    "Subject",
    "bundled_reference",
    "default_specs",
    "load_module_from_path",
    "load_subject",
]

HEAD_CLASS_NAMES = ("HeadOptimal", "Head")

# The constructor call used to smoke-test a subject when it is loaded.
_SMOKE_KWARGS: dict[str, Any] = {"num_classes": 3, "emb_dim": 8, "num_heads": 2, "img_feat_dim": 8}


@dataclass(frozen=True)
class Subject:
    """A loaded head file: its role (``baseline``/``candidate``), module and head class.

    ``probe`` is the small head built when loading (the constructor smoke test); the
    runner reads attribute names off it, so it is never trained or measured.
    """

    role: str
    path: Path
    sha256: str
    module: ModuleType
    head_cls: type
    probe: Any

    def info(self) -> SubjectInfo:
        return SubjectInfo(self.role, str(self.path), self.sha256, self.head_cls.__name__)

    def attr(self, name: str) -> Any:
        """A module-level name of the subject, or None."""
        return getattr(self.module, name, None)


def bundled_reference(name: str) -> Path:
    """Path of a bundled reference file, e.g. ``bundled_reference("head.py")``."""
    path = Path(str(resources.files("headaudit.reference").joinpath(name)))
    if not path.is_file():
        raise SubjectError(f"bundled reference {name!r} is missing from {path.parent}; reinstall headaudit")
    return path


def default_specs() -> dict[str, str]:
    """The default subject of each role: the bundled references."""
    return {
        "baseline": str(bundled_reference("head.py")),
        "candidate": str(bundled_reference("head_optimal.py")),
    }


def _split_spec(spec: str) -> tuple[str, str | None]:
    target, sep, cls = spec.rpartition(":")
    if sep and cls.isidentifier() and target:
        return target, cls
    return spec, None


def load_module_from_path(path: Path, name: str) -> ModuleType:
    """Import a ``.py`` file under a private module name (registered in sys.modules)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SubjectError(f"cannot import {str(path)!r}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise SubjectError(f"importing {str(path)!r} raised {type(exc).__name__}: {exc}") from exc
    return module


def _load_module(target: str, role: str) -> tuple[Path, ModuleType]:
    path = Path(target)
    if target.endswith(".py") or path.exists() or "/" in target:
        if not path.is_file():
            raise SubjectError(f"{role} file {target!r} does not exist; pass a .py path or a module name")
        path = path.resolve()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return path, load_module_from_path(path, f"headaudit_subject_{role}_{digest[:16]}")
    try:
        module = importlib.import_module(target)
    except Exception as exc:
        raise SubjectError(
            f"{role} {target!r} is neither a file nor an importable module ({type(exc).__name__}: {exc})"
        ) from exc
    file = getattr(module, "__file__", None)
    if not file:
        raise SubjectError(f"{role} module {target!r} has no source file to audit")
    return Path(file).resolve(), module


def _head_class(module: ModuleType, path: Path, wanted: str | None, role: str) -> type:
    names = (wanted,) if wanted else HEAD_CLASS_NAMES
    for name in names:
        cls = getattr(module, name, None)
        if isinstance(cls, type):
            return cls
    if wanted:
        raise SubjectError(f"{role} {str(path)!r} has no class {wanted!r}; check the name after ':'")
    raise SubjectError(
        f"{role} {str(path)!r} defines neither {' nor '.join(HEAD_CLASS_NAMES)}; name the head as PATH:CLASS"
    )


def load_subject(spec: str, role: str) -> Subject:
    """Load ``spec`` for ``role``; raise :class:`SubjectError` with one clear line on failure."""
    target, wanted = _split_spec(spec)
    path, module = _load_module(target, role)
    cls = _head_class(module, path, wanted, role)
    try:
        probe = cls(**_SMOKE_KWARGS)
    except Exception as exc:
        raise SubjectError(
            f"{role} head {cls.__name__}({', '.join(f'{k}={v!r}' for k, v in _SMOKE_KWARGS.items())}) "
            f"from {str(path)!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Subject(role=role, path=path, sha256=digest, module=module, head_cls=cls, probe=probe)
