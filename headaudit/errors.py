"""The tool's exceptions: one base class, one subclass per kind of user mistake.

The CLI turns any :class:`HeadAuditError` into one line on stderr and exit code 2.
Messages quote the bad value with ``!r`` and say what to try instead.
"""

from __future__ import annotations

__all__ = ["CheckDefinitionError", "ConfigError", "HeadAuditError", "SubjectError"]


class HeadAuditError(Exception):
    """Base class of every error the tool reports to the user."""


class SubjectError(HeadAuditError):
    """A subject could not be loaded: missing file, missing class, raising constructor."""


class ConfigError(HeadAuditError):
    """A command-line option or configuration value is malformed."""


class CheckDefinitionError(HeadAuditError):
    """A check record is malformed (raised at import, naming the check id)."""
