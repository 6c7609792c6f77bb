"""headaudit: an evidence-based audit of multi-prototype classification heads.

The public API. Names that need torch (the runner, the subject loader, the check
registry) are imported on first use, so ``import headaudit`` and the renderers stay
light::

    from headaudit import REGISTRY, load_subject, run_audit, render_markdown
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "REGISTRY": "headaudit.checks",
    "Check": "headaudit.registry",
    "HeadAuditError": "headaudit.errors",
    "Report": "headaudit.model",
    "Result": "headaudit.model",
    "Msg": "headaudit.messages",
    "NameMap": "headaudit.names",
    "Verdict": "headaudit.model",
    "active_profile": "headaudit.profiles",
    "load_subject": "headaudit.subjects",
    "parse_json": "headaudit.render",
    "render_json": "headaudit.render",
    "render_markdown": "headaudit.render",
    "run_audit": "headaudit.runner",
}

__all__ = [
    "REGISTRY",
    "Check",
    "HeadAuditError",
    "Msg",
    "NameMap",
    "Report",
    "Result",
    "Verdict",
    "__version__",
    "active_profile",
    "load_subject",
    "parse_json",
    "render_json",
    "render_markdown",
    "run_audit",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'headaudit' has no attribute {name!r}")
