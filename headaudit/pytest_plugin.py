"""``pytest --headaudit``: every check on every subject as a test item (entry point ``pytest11``).

Options (group ``headaudit``) mirror ``headaudit check``: ``--headaudit-candidate``,
``--headaudit-baseline``, ``--headaudit-host`` and ``--headaudit-expect``; what is not
given comes from ``[tool.headaudit]`` in ``pyproject.toml``, then from the expect file's
recorded run, then from the bundled defaults. One item per (subject, check), named
``headaudit[ROLE-CHECK]``; the performance group is left out (timings are not verdicts).

With an expect file (a recorded ``headaudit report --format json``), an item

- fails when the result regressed (a worse verdict, a new finding fingerprint, a
  changed interface: :func:`headaudit.guard.regressions_of`), with each regression and
  the result's evidence as the message;
- is ``xfail`` when the check fails as recorded (a known defect, nothing new);
- passes when the check passes or warns, and is skipped when it is ``n/a``.

Without one, ``fail`` and ``error`` fail the item. Each item loads its subjects once per
process and starts from the run's seed, so under pytest-xdist (``-n auto``) every item
gets the verdict a serial run gives it; the ``thorough`` profile is meant to be spread so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from headaudit.cli import CheckPlan, Prepared
    from headaudit.model import Result
    from headaudit.registry import Check

__all__ = ["HeadauditItem"]

_OPTIONS = ("candidate", "baseline", "host", "expect")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("headaudit", "headaudit: audit multi-prototype heads as tests")
    group.addoption("--headaudit", action="store_true", help="run every headaudit check on every subject as a test")
    group.addoption("--headaudit-candidate", metavar="SUBJECT", help="the revised head (PATH[:CLASS] or MODULE)")
    group.addoption("--headaudit-baseline", metavar="SUBJECT", help="the original head")
    group.addoption("--headaudit-host", metavar="PATH[:CLASS]", help="the host that calls the head")
    group.addoption(
        "--headaudit-expect", metavar="FILE", help="recorded JSON report: known failures xfail, regressions fail"
    )


class _Session:
    """The plan and the loaded subjects of this process, made once."""

    def __init__(self, config: pytest.Config) -> None:
        from headaudit.cli import plan_check
        from headaudit.errors import HeadAuditError
        from headaudit.guard import recorded_results

        argv: list[str] = []
        for name in _OPTIONS:
            value = config.getoption(f"headaudit_{name}")
            if value:
                argv += [f"--{name}", str(value)]
        try:
            self.plan: CheckPlan = plan_check(argv)
        except HeadAuditError as exc:
            raise pytest.UsageError(f"headaudit: {exc}") from None
        self._raw = recorded_results(self.plan.raw)
        self._ready: Prepared | None = None

    @property
    def ready(self) -> Prepared:
        if self._ready is None:
            from headaudit.cli import prepare

            self._ready = prepare(self.plan.args, self.plan.checks)
        return self._ready

    def recorded(self, role: str, check: str) -> tuple[Result | None, Mapping[str, Any] | None]:
        if self.plan.expected is None:
            return None, None
        return self.plan.expected.result(check, role), self._raw.get((role, check))


class HeadauditRegression(Exception):
    """An item's result got worse than recorded, or fails with nothing recorded."""


class HeadauditItem(pytest.Item):
    """One check on one subject."""

    def __init__(self, *, check: Check[Any], role: str, state: _Session, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check, self.role, self.state = check, role, state
        self.add_marker(pytest.mark.headaudit)

    def runtest(self) -> None:
        from headaudit.errors import HeadAuditError
        from headaudit.guard import regressions_of
        from headaudit.runner import run_check

        try:
            ready = self.state.ready
        except HeadAuditError as exc:
            raise HeadauditRegression(f"headaudit: {exc}") from None
        subject = ready.subjects.get(self.role)
        if subject is None:
            pytest.skip(f"no {self.role} subject in this run")
        now = run_check(
            self.check, subject, self.role, seed=ready.seed, profile=ready.profile, timeout=ready.timeout,
            hosts=ready.hosts,
        )  # fmt: skip
        was, raw = self.state.recorded(self.role, self.check.id)
        regressions = regressions_of(now, was, raw)
        summary = now.summary("en")
        evidence = json.dumps(now.evidence, sort_keys=True, ensure_ascii=False)[:2000]
        if regressions:
            lines = "\n".join(f"regression: {r.line()}" for r in regressions)
            raise HeadauditRegression(f"{lines}\nevidence: {evidence}")
        if now.verdict == "n/a":
            pytest.skip(f"n/a: {summary}")
        if now.verdict in ("fail", "error"):
            if was is not None:
                pytest.xfail(f"known, as recorded: {summary}")
            raise HeadauditRegression(f"{now.verdict}: {summary}\nevidence: {evidence}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, HeadauditRegression):
            return f"{self.role} {self.check.id}: {excinfo.value}"
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return Path(self.state.plan.path or "pyproject.toml"), None, f"headaudit {self.role} {self.check.id}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "headaudit: an item made by `pytest --headaudit` (one check on one subject)")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Add the items before keyword and marker selection (``-k``, ``-m``) sees them."""
    if not config.getoption("headaudit"):
        return
    state = _Session(config)
    added: list[pytest.Item] = []
    for check in state.plan.checks:
        for role in ("baseline", "candidate"):
            name = f"headaudit[{role}-{check.id}]"
            added.append(HeadauditItem.from_parent(session, name=name, check=check, role=role, state=state))
    items[:0] = added
