"""What a check function receives: the subject, the seed and the search budget.

:meth:`Context.search` runs a Hypothesis property and returns the shrunk
counterexample instead of raising; :meth:`Context.run_machine` does the same for a
rule-based state machine. Both apply ``@seed(ctx.seed)`` (so ``--seed`` changes the
search and the same seed repeats it exactly), silence Hypothesis's own printing, and
count the examples they ran for the reproducibility block.

Keep every integer strategy inside ``(-100, 100)`` and draw no floats or strings:
Hypothesis mixes constants found in the source of loaded local modules into wider
draws, which would make a result depend on which files happen to be imported (the
full run, ``--only``, a test session). Derive wide values (seeds) from small draws.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import torch
from hypothesis import Phase, Verbosity, given, seed, settings
from hypothesis import strategies as st
from hypothesis.reporting import with_reporter
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from headaudit.adapters import SubjectRaised
from headaudit.model import Json, Outcome, Text
from headaudit.profiles import Profile, scaled
from headaudit.subjects import Subject

__all__ = ["Context", "Found", "Refuted", "refutation_outcome"]

T = TypeVar("T")


class Refuted(Exception):
    """Raised inside a property when the subject contradicts the claim."""

    def __init__(self, summary: Text, evidence: dict[str, Json] | None = None) -> None:
        super().__init__(summary.en)
        self.summary = summary
        self.evidence = evidence or {}


@dataclass(frozen=True)
class Found(Generic[T]):
    """A shrunk counterexample and the refutation it produced."""

    example: T
    error: Refuted | SubjectRaised


@dataclass
class Context:
    """Per-(check, subject) state; ``examples`` counts property examples executed."""

    subject: Subject
    seed: int
    profile: Profile
    examples: int = field(default=0)

    def budget(self, ci_examples: int, minimum: int = 1) -> int:
        """How many examples or states to use, given the count used under ``ci``."""
        return scaled(self.profile, ci_examples, minimum)

    def generator(self, salt: int = 0) -> torch.Generator:
        """A torch generator derived from the run's seed (and a per-use ``salt``)."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + salt)

    def settings(self, ci_examples: int, **overrides: Any) -> settings:
        return settings(
            settings.get_profile(self.profile.name),
            max_examples=self.budget(ci_examples),
            report_multiple_bugs=False,
            verbosity=Verbosity.quiet,
            # No explain phase: it re-runs the failure many times to annotate a traceback
            # that nobody sees here.
            phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink),
            **overrides,
        )

    def search(self, strategy: st.SearchStrategy[T], prop: Callable[[T], None], ci_examples: int) -> Found[T] | None:
        """Run ``prop`` on examples of ``strategy``; return the shrunk failure or None.

        ``prop`` signals a counterexample by raising :class:`Refuted`; an exception of
        the subject (:class:`SubjectRaised`) counts as one too. Any other exception is
        a bug in the check and propagates.
        """
        last: dict[str, Any] = {}

        @seed(self.seed)
        @self.settings(ci_examples)
        @given(strategy)
        def run(example: T) -> None:
            self.examples += 1
            try:
                prop(example)
            except (Refuted, SubjectRaised) as exc:
                last["found"] = Found(example, exc)
                raise

        try:
            with with_reporter(lambda _msg: None):
                run()
        except (Refuted, SubjectRaised):
            found: Found[T] = last["found"]
            return found
        return None

    def run_machine(
        self, machine: type[RuleBasedStateMachine], ci_examples: int, steps: int
    ) -> Refuted | SubjectRaised | None:
        """Run a state machine; return the refutation of its minimal failing run, or None.

        The machine should count its runs into ``self.examples`` (in ``__init__``) and
        put its own step trace into the refutation's evidence: Hypothesis prints nothing.
        """
        seeded = seed(self.seed)(machine)
        try:
            with with_reporter(lambda _msg: None):
                run_state_machine_as_test(seeded, settings=self.settings(ci_examples, stateful_step_count=steps))
        except (Refuted, SubjectRaised) as exc:
            # Hypothesis re-raises the exception of the final, shrunk replay.
            return exc
        return None


def refutation_outcome(error: Refuted | SubjectRaised, examples: int | None) -> Outcome:
    """The ``fail`` outcome of a search that found ``error`` (a refutation or a raise)."""
    if isinstance(error, Refuted):
        return Outcome("fail", error.summary, error.evidence, examples)
    return Outcome(
        "fail",
        Text(f"the subject raised: {error}", f"被测代码抛出异常：{error}"),
        {"exception": str(error)},
        examples,
    )
