"""What a check's ``measure`` function receives: the subject, through its declared names.

A check reaches the subject only through a :class:`Context`:

- :meth:`Context.get` follows a canonical attribute path (after the user's maps) and
  refuses names the check did not declare, so the declaration is complete by
  construction; :meth:`Context.key` does the same for loss-dict keys, and :meth:`Context.parameter`
  gives the subject's name of a forward parameter (``forward.labels``);
- :meth:`Context.build` builds a head, trying other head counts when the constructor
  raises for one, and verifies that the settings the check relies on took effect;
- :meth:`Context.from_module` reads a declared module-level name of the subject's file
  (``module:Head``); :attr:`Context.hosts` holds the host files (:mod:`headaudit.hosts`);
- :meth:`Context.search` and :meth:`Context.run_machine` run Hypothesis properties under
  ``@seed(ctx.seed)`` and return the shrunk counterexample instead of raising.

Keep every integer strategy inside ``(-100, 100)`` and draw no floats or strings:
Hypothesis mixes constants found in the source of loaded local modules into wider
draws, which would make a result depend on which files happen to be imported (the full
run, ``--only``, a test session). Derive wide values (seeds) from small draws.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import torch
from hypothesis import Phase, Verbosity, example, given, seed
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.reporting import with_reporter
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from headaudit.build import Built, construct
from headaudit.errors import CheckDefinitionError
from headaudit.model import SearchStats
from headaudit.names import closest, split_key, split_module, split_parameter, walk
from headaudit.profiles import Profile, scaled
from headaudit.sandbox import SubjectRaised
from headaudit.subjects import Subject

if TYPE_CHECKING:
    from headaudit.hosts import HostSet

__all__ = ["Context", "Found", "NameMissing", "Refuted"]

T = TypeVar("T")


class Refuted(Exception):
    """Raised inside a property when the subject contradicts the claim.

    ``detail`` is the check's own typed record of the counterexample; it becomes part of
    the measurement, hence of the evidence.
    """

    def __init__(self, detail: Any) -> None:
        super().__init__(repr(detail))
        self.detail = detail


class NameMissing(Exception):
    """A declared name is absent on an object the check reached (``n/a``)."""

    def __init__(self, name: str, looked_for: str, suggestion: str | None) -> None:
        super().__init__(f"{name} ({looked_for})")
        self.name, self.looked_for, self.suggestion = name, looked_for, suggestion


@dataclass(frozen=True)
class Found(Generic[T]):
    """A shrunk counterexample and the refutation it produced."""

    example: T
    error: Refuted


@dataclass
class _Counter:
    calls: int = 0
    first_failure: int | None = None


@dataclass
class Context:
    """Per-(check, subject) state.

    ``declared`` are the canonical names the check declared; ``resolved`` maps those the
    subject has to the subject's own names; ``settings`` are the constructor settings
    the check relies on; ``hosts`` the host files (None: the bundled ones).
    """

    subject: Subject
    seed: int
    profile: Profile
    declared: frozenset[str]
    resolved: Mapping[str, str]
    settings: tuple[str, ...] = ()
    stats: SearchStats = field(default_factory=SearchStats)
    builds: list[Built] = field(default_factory=list)
    host_set: HostSet | None = None
    _machine_counter: _Counter = field(default_factory=_Counter, repr=False)

    # --- names --------------------------------------------------------------------

    def _actual(self, name: str) -> str:
        if name not in self.declared and not any(d.startswith(name + ".") for d in self.declared):
            raise CheckDefinitionError(f"the check touched {name!r}, which it did not declare")
        return self.resolved.get(name) or self.subject.names.apply(name)

    def has(self, name: str) -> bool:
        """Whether the subject has a declared (typically optional) name."""
        self._actual(name)
        return name in self.resolved

    def get(self, obj: Any, name: str) -> Any:
        """Follow the declared attribute path ``name`` from ``obj`` (usually a built head)."""
        actual = self._actual(name)
        found, value, suggestion = walk(obj, actual)
        if not found:
            raise NameMissing(name, actual, suggestion)
        return value

    def key(self, terms: Mapping[str, Any], name: str) -> Any:
        """``terms[k]`` for the declared ``source[key]`` name (after the user's maps)."""
        actual = self._actual(name)
        source_key = split_key(actual)
        if source_key is None:
            raise CheckDefinitionError(f"{name!r} is not a source[key] name")
        if source_key[1] not in terms:
            from headaudit.names import missing_key

            raise NameMissing(name, actual, missing_key(source_key[0], source_key[1], terms))
        return terms[source_key[1]]

    def parameter(self, name: str) -> str:
        """The subject's name of the declared forward parameter ``name`` (``"targets"`` for
        ``"forward.labels"`` mapped so), to pass it by keyword: ``head(pool, img, **{p: y})``."""
        actual = self._actual(name)
        param = split_parameter(actual)
        if param is None:
            raise CheckDefinitionError(f"{name!r} is not a forward.parameter name")
        return param

    def from_module(self, name: str) -> Any:
        """The subject file's module-level object for the declared ``module:Name``."""
        actual = self._actual(name)
        attr = split_module(actual)
        if attr is None:
            raise CheckDefinitionError(f"{name!r} is not a module:Name name")
        value = getattr(self.subject.module, attr, None)
        if value is None:
            public = [n for n in vars(self.subject.module) if not n.startswith("_")]
            near = closest(attr, public)
            raise NameMissing(name, actual, f"module:{near}" if near else None)
        return value

    @property
    def hosts(self) -> HostSet:
        """The host files of this run (the bundled ones unless the run was given others)."""
        if self.host_set is None:
            from headaudit.hosts import default_hosts

            return default_hosts()
        return self.host_set

    # --- building -------------------------------------------------------------------

    def build_full(
        self,
        *,
        num_classes: int,
        emb_dim: int,
        img_feat_dim: int | None = None,
        train: bool = False,
        num_heads: int | None = None,
        head_cls: type | None = None,
        **settings: Any,
    ) -> Built:
        """Build the subject's head (dropout 0, eval unless ``train``) and check its settings.

        Head counts are tried in order (the caller's, the count the probe was built with,
        then 2, 1, 4, 8) among those dividing ``emb_dim``; the first that constructs is
        used, so a file that cannot build one particular count (``num_heads // 2`` heads
        of zero) is measured at another. Raises :class:`SubjectRaised` when none builds
        and :class:`~headaudit.build.SettingNotApplied` when a relied-on setting did not
        take effect. ``head_cls`` builds another class of the subject's file (one the check
        read with :meth:`from_module`) instead of its head class.
        """
        wanted = {"dropout_rate": 0.0, **settings}
        heads = [h for h in dict.fromkeys([num_heads, self.subject.sizes[2], 2, 1, 4, 8]) if h]
        heads = [h for h in heads if emb_dim % h == 0] or [1]
        first: SubjectRaised | None = None
        for count in heads:
            sizes = (num_classes, emb_dim, count, img_feat_dim or emb_dim)
            try:
                built = construct(head_cls or self.subject.head_cls, sizes, wanted, self.subject.names)
            except SubjectRaised as exc:
                first = first or exc
                continue
            relied = [s for s in self.settings if s in wanted]
            if "num_classes" in built.settings:  # a head that ignores it would be measured wrongly
                relied.append("num_classes")
            built.require(relied, {**wanted, "num_classes": num_classes})
            built.head.train(train)
            self.builds.append(built)
            return built
        assert first is not None
        raise first

    def build(self, **kwargs: Any) -> Any:
        """The head of :meth:`build_full`."""
        return self.build_full(**kwargs).head

    # --- randomness -----------------------------------------------------------------

    def generator(self, salt: int = 0) -> torch.Generator:
        """A torch generator derived from the run's seed (and a per-use ``salt``)."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + salt)

    def budget(self, ci_examples: int, minimum: int = 1) -> int:
        """How many examples or states to use, given the count used under ``ci``."""
        return scaled(self.profile, ci_examples, minimum)

    # --- searches -------------------------------------------------------------------

    def _settings(self, budget: int, **overrides: Any) -> hsettings:
        return hsettings(
            max_examples=budget,
            derandomize=False,  # @seed below decides the examples; derandomize would ignore it
            deadline=None,
            database=None,
            print_blob=False,
            report_multiple_bugs=False,
            verbosity=Verbosity.quiet,
            # No explain phase: it re-runs the failure to annotate a traceback nobody sees.
            phases=(Phase.explicit, Phase.generate, Phase.target, Phase.shrink),
            **overrides,
        )

    def _record(self, counter: _Counter, budget: int, explicit: int) -> None:
        found = counter.first_failure
        self.stats = SearchStats(
            examples=self.stats.examples + (found if found is not None else counter.calls),
            shrinks=self.stats.shrinks + (counter.calls - found if found is not None else 0),
            budget=max(self.stats.budget, budget),
            explicit=self.stats.explicit + explicit,
            searches=self.stats.searches + 1,
        )

    def search(
        self,
        strategy: st.SearchStrategy[T],
        prop: Callable[[T], None],
        ci_examples: int,
        explicit: Sequence[T] = (),
    ) -> Found[T] | None:
        """Run ``prop`` on ``explicit`` examples, then on examples of ``strategy``.

        Returns the shrunk :class:`Found` when ``prop`` raised :class:`Refuted`, else
        None. A :class:`SubjectRaised` on the way is not a refutation: it is re-raised
        (after shrinking) naming the example, and the runner reports ``error``.
        """
        counter = _Counter()
        last: dict[str, Any] = {}
        budget = self.budget(ci_examples)

        def run(case: T) -> None:
            counter.calls += 1
            try:
                prop(case)
            except (Refuted, SubjectRaised) as exc:
                if counter.first_failure is None:
                    counter.first_failure = counter.calls
                last["case"], last["error"] = case, exc
                raise

        test = given(strategy)(run)
        for case in reversed(list(explicit)):
            test = example(case)(test)
        test = seed(self.seed)(self._settings(budget)(test))
        try:
            with with_reporter(lambda _msg: None):
                test()
        except Refuted:
            return Found(last["case"], last["error"])
        except SubjectRaised as exc:
            raise SubjectRaised(f"{exc.where} on {last['case']!r}", exc.exc) from exc
        finally:
            self._record(counter, budget, len(explicit))
        return None

    def run_machine(self, machine: type[RuleBasedStateMachine], ci_examples: int, steps: int) -> Refuted | None:
        """Run a state machine; return the refutation of its minimal failing run, or None.

        The machine should call :meth:`count_run` in ``__init__`` and put its own step
        trace into the refutation's detail: Hypothesis prints nothing.
        """
        budget = self.budget(ci_examples)
        counter = self._machine_counter = _Counter()
        seeded = seed(self.seed)(machine)
        try:
            with with_reporter(lambda _msg: None):
                run_state_machine_as_test(seeded, settings=self._settings(budget, stateful_step_count=steps))
        except Refuted as exc:
            return exc
        finally:
            self._record(counter, budget, 0)
        return None

    def count_explicit(self, runs: int, found: bool) -> None:
        """Record ``runs`` deterministic explicit cases run before (or instead of) a search."""
        self.stats = SearchStats(
            examples=self.stats.examples + runs,
            shrinks=self.stats.shrinks,
            budget=self.stats.budget,
            explicit=self.stats.explicit + runs,
            searches=self.stats.searches + (1 if found else 0),
        )

    def count_run(self, failed: bool = False) -> None:
        """Called by a state machine: one more run (``failed`` once it found a violation)."""
        counter: _Counter = self._machine_counter
        if failed:
            if counter.first_failure is None:
                counter.first_failure = counter.calls
        else:
            counter.calls += 1
