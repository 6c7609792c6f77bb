"""The engine's results and errors: frozen, JSON-friendly records (``to_dict()``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final

from headaudit.errors import SubjectError

RULES: Final[tuple[str, ...]] = ("host-syncs", "class-loops", "data-writes")
"""The rule ids, in the order of the catalogue (``static.<rule>``)."""


class AstScanError(SubjectError):
    """The source cannot be analysed: unreadable file, unknown class or function name."""


class SourceSyntaxError(AstScanError, SyntaxError):
    """The source is not valid Python; the message names the file, line and column."""

    def __str__(self) -> str:  # SyntaxError would repeat "(file, line N)" after the message
        return str(self.msg)


def _record_dict(record: Any) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(record).items()}


@dataclass(frozen=True)
class FunctionRef:
    """A function of the file: ``Class.method`` or ``function``, where it starts and ends.

    ``via`` names the function whose call first reached it (empty for the root).
    """

    qualname: str
    file: str
    line: int
    end_line: int
    via: str = ""

    def to_dict(self) -> dict[str, Any]:
        return _record_dict(self)


@dataclass(frozen=True)
class Finding:
    """One place where a rule matched.

    ``kind`` is the rule's category (see the package docstring), ``detail`` the construct
    (``.item()``, ``if``, the iterated expression, the written tensor). ``depth`` is the
    class-loop nesting depth for ``class-loops`` (0 for the other rules).
    ``on_forward_path`` is known only in :attr:`StaticAnalysis.file_findings` (else None).
    """

    rule: str
    file: str
    line: int
    col: int
    source: str
    kind: str
    detail: str
    function: str
    depth: int = 0
    on_forward_path: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return _record_dict(self)

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class StaticAnalysis:
    """The forward path of one head class, its findings, and the findings of the whole file."""

    file: str
    head_class: str
    forward_path: tuple[FunctionRef, ...]
    findings: tuple[Finding, ...]
    file_findings: tuple[Finding, ...]

    def by_rule(self, rule: str, *, whole_file: bool = False) -> tuple[Finding, ...]:
        """Findings of one rule, on the forward path (default) or anywhere in the file."""
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}; expected one of {', '.join(RULES)}")
        pool = self.file_findings if whole_file else self.findings
        return tuple(f for f in pool if f.rule == rule)

    def reaches(self, qualname: str) -> bool:
        """True when ``Class.method`` (or ``function``) is on the forward path."""
        return any(ref.qualname == qualname for ref in self.forward_path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "head_class": self.head_class,
            "forward_path": [ref.to_dict() for ref in self.forward_path],
            "findings": [f.to_dict() for f in self.findings],
            "file_findings": [f.to_dict() for f in self.file_findings],
        }


@dataclass(frozen=True)
class HeadCall:
    """One call of the receiver (``self.head(...)``) in a host file.

    ``usage``: ``unpack`` (``arity`` names, ``starred`` when one is ``*rest``), ``assign``,
    ``index`` (``detail`` is the index), ``return``, ``argument``, ``attribute``,
    ``discarded`` or ``other``. ``conditions`` are the guarding ``if`` tests, outermost
    first, as source text (``not (...)`` on the ``else`` side).
    """

    file: str
    line: int
    col: int
    source: str
    receiver: str
    function: str
    usage: str
    arity: int | None
    starred: bool
    targets: tuple[str, ...]
    detail: str
    conditions: tuple[str, ...]
    arguments: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return _record_dict(self)


@dataclass(frozen=True)
class AttributeUse:
    """One use of ``<owner>.<name>`` where ``owner`` is the manager (``...proto_manager``).

    ``access``: ``call``, ``load``, ``store``, ``delete``, or the builtin used
    (``getattr``, ``hasattr``, ``setattr``, ``delattr``).
    """

    file: str
    line: int
    col: int
    source: str
    base: str
    name: str
    owner: str
    access: str
    function: str

    def to_dict(self) -> dict[str, Any]:
        return _record_dict(self)
