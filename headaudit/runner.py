"""Run checks against subjects and collect a :class:`~headaudit.model.Report`.

Every (check, subject) pair gets exactly one result. A check whose ``needs`` are not
all present on the subject's head is ``n/a`` naming the missing attribute; a check
that raises is ``error`` with the exception, so one broken check never hides the
others. Each pair starts from the same torch seed, so ``--only`` reproduces the
result of a full run.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable, Sequence

import hypothesis
import torch
from torch import nn

from headaudit import __version__
from headaudit.adapters import SubjectRaised
from headaudit.context import Context
from headaudit.model import CheckInfo, Environment, Outcome, Report, Result, Text, freeze_evidence
from headaudit.profiles import Profile
from headaudit.registry import Check
from headaudit.subjects import Subject

__all__ = ["missing_needs", "run_audit"]

Progress = Callable[[str], None]


def _resolve(obj: object, path: str) -> bool:
    for part in path.split("."):
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


def missing_needs(check: Check, head: nn.Module) -> list[str]:
    """The attribute paths of ``check.needs`` that ``head`` lacks."""
    return [name for name in check.needs if not _resolve(head, name)]


def _run_one(check: Check, subject: Subject, probe: nn.Module, seed: int, profile: Profile) -> Outcome:
    missing = missing_needs(check, probe)
    if missing:
        names = ", ".join(f"`{n}`" for n in missing)
        return Outcome(
            "n/a",
            Text(f"the head has no {names}, which this check needs", f"该头部没有本检查所需的 {names}"),
            {"missing": missing},
        )
    ctx = Context(subject=subject, seed=seed, profile=profile)
    torch.manual_seed(seed)
    try:
        return check.run(ctx)
    except SubjectRaised as exc:
        return Outcome(
            "error",
            Text(f"could not measure: the subject's {exc}", f"无法测量：被测代码的 {exc}"),
            {"exception": str(exc)},
            ctx.examples or None,
        )
    except Exception as exc:
        return Outcome(
            "error",
            Text(
                f"the check itself failed: {type(exc).__name__}: {exc}",
                f"检查本身出错：{type(exc).__name__}: {exc}",
            ),
            {"exception": f"{type(exc).__name__}: {exc}"},
            ctx.examples or None,
        )


def run_audit(
    subjects: Sequence[Subject],
    checks: Sequence[Check],
    *,
    seed: int,
    profile: Profile,
    subject_args: str,
    progress: Progress | None = None,
) -> Report:
    """Run ``checks`` on every subject, in registry order; never raises for a check."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small ops: one thread is faster and its results repeat exactly
    try:
        results = []
        for check in checks:
            for subject in subjects:
                if progress:
                    progress(f"{check.id} on {subject.role}")
                outcome = _run_one(check, subject, subject.probe, seed, profile)
                results.append(
                    Result(
                        check=check.id,
                        subject=subject.role,
                        verdict=outcome.verdict,
                        summary=outcome.summary,
                        evidence=freeze_evidence(dict(outcome.evidence)),
                        examples=outcome.examples,
                    )
                )
    finally:
        torch.set_num_threads(threads)
    environment = Environment(
        tool_version=__version__,
        python=f"{platform.python_implementation()} {sys.version.split()[0]}",
        torch=torch.__version__,
        hypothesis=hypothesis.__version__,
        device="cpu",
        threads=1,
        seed=seed,
        profile=profile.name,
        max_examples=profile.max_examples,
        example_factor=profile.factor,
        derandomize=profile.derandomize,
        subject_args=subject_args,
    )
    return Report(
        subjects=tuple(s.info() for s in subjects),
        checks=tuple(CheckInfo(c.id, c.catalogue, c.title, c.method, c.severity) for c in checks),
        results=tuple(results),
        environment=environment,
    )
