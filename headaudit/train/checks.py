"""The ``train.*`` checks: measurements of a training session and pure judges.

These checks are not in the per-subject :data:`headaudit.checks.REGISTRY`: what they judge
comes from a training session (:mod:`headaudit.train.session`), in which every head is
trained on the same batches, seed by seed, and ``train.vs-baseline`` compares two heads. A
:class:`TrainCheck` is the same kind of record as a registry check (a stable id, catalogue
section 3 "missed", title and method in both message catalogues, validated when built) whose
``measure`` takes the session and the role of the subject instead of a per-subject context.
The judges are pure functions of the measurements and never see a role: the same runs in
another slot get the same verdict. A relational verdict (``train.vs-baseline``) is computed
from the runs of two heads the way the report's claims are computed from several results:
after the runs, once per compared subject, with the reference it was compared with named in
its measurement.

- ``train.eval-batch``: the balanced accuracy of one trained model at each evaluation batch
  size (1, 16, the whole test split); the spread is the largest minus the smallest, per seed.
  The same model on the same samples can only move through the batch, so a head whose
  prediction of a sample is its own has a spread of exactly 0 (``pass``). It fails when the
  spread's seed-to-seed 95 % interval lies above 0 (its mean exceeds the interval's
  half-width: the cost is systematic, not one seed's luck); a spread whose interval still
  includes 0 is ``warn`` (coupling present, its cost not resolved at this many seeds). The
  balanced accuracy's own seed-to-seed interval is stated beside it, for scale.
- ``train.cluster-weight``: on the training batches (their labels, every seed), the factor
  by which the subject's own cluster term shrinks because classes are absent: its value
  under the head of every class over its value under a head of the classes present (same
  similarities, seeded; :mod:`headaudit.checks.weights` measures the same on simulated
  batches). It fails when that effective weight is below one tenth in more than a quarter
  of the steps, and, as every check that reads a loss term, when that term does not train
  (:func:`headaudit.checks._trains.probe_loss` on the head of every class): a detached term
  keeps its weight and teaches nothing, so its weight alone never passes.
- ``train.vs-baseline``: the paired difference (same seed, same batches) of balanced
  accuracy and of the mean recall of the three rarest training classes against the
  baseline, with 95 % intervals: "better" when the interval lies above 0, "worse" below,
  else "no difference measured". Worse on either is ``fail``, better on one and worse on
  none ``pass``, otherwise ``warn``. One seed has no interval and so no direction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from headaudit.checks._trains import TermTraining, untrained
from headaudit.errors import CheckDefinitionError
from headaudit.messages import Msg, has
from headaudit.model import Finding
from headaudit.names import Need, parse_needs
from headaudit.train.stats import Interval

__all__ = [
    "CLUSTER_LIMIT",
    "CLUSTER_STEP_SHARE",
    "TRAIN_CHECKS",
    "ClusterWeightMeasurement",
    "EvalBatchMeasurement",
    "TrainCheck",
    "VsMeasurement",
    "direction",
    "judge_cluster_weight",
    "judge_eval_batch",
    "judge_vs",
]

M = TypeVar("M")

#: ``train.cluster-weight``: an effective weight below this is a collapse ...
CLUSTER_LIMIT = 0.1
#: ... and collapsing in more than this share of the steps fails.
CLUSTER_STEP_SHARE = 0.25


class Session(Protocol):
    """What a check reads of a training session (:class:`headaudit.train.session.Session`
    is one; named by its methods so this module needs no import of the session's)."""

    def eval_batch(self, role: str) -> EvalBatchMeasurement | Finding: ...
    def cluster_weight(self, role: str) -> ClusterWeightMeasurement | Finding: ...
    def versus(self, role: str, reference: str) -> VsMeasurement | Finding: ...


@dataclass(frozen=True)
class TrainCheck(Generic[M]):
    """A check measured on a training session (see the module docstring)."""

    id: str
    measure: Callable[[Session, str], M | Finding]
    judge: Callable[[M], Finding]
    needs: tuple[str, ...] = ()
    severity: str = "medium"
    catalogue: int = 3
    group: str = "training"
    parsed: tuple[Need, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.id.startswith("train."):
            raise CheckDefinitionError(f"training check {self.id!r} must have an id 'train.<slug>'")
        for part in ("title", "method"):
            if not has(f"{self.id}.{part}"):
                raise CheckDefinitionError(f"check {self.id!r}: '{self.id}.{part}' is missing from a message catalogue")
        object.__setattr__(self, "parsed", parse_needs(self.id, self.needs))

    @property
    def declared(self) -> frozenset[str]:
        return frozenset(name for need in self.parsed for name in need.alternatives)


# --- train.eval-batch -------------------------------------------------------------------


@dataclass(frozen=True)
class EvalBatchMeasurement:
    """Balanced accuracy of each seed's model at each evaluation batch size."""

    batch_sizes: tuple[int, ...]  # the sizes used (the whole split as its size)
    accuracy: tuple[tuple[float, ...], ...]  # per seed, per batch size
    spread: Interval  # per seed, largest minus smallest accuracy over the batch sizes
    seed_interval: Interval  # the balanced accuracy at the first batch size, over seeds
    largest_spread: float


def judge_eval_batch(m: EvalBatchMeasurement) -> Finding:
    sizes = ", ".join(str(s) for s in m.batch_sizes)
    base = {"sizes": sizes, "seeds": m.spread.n, "spread": m.spread.mean, "largest": m.largest_spread}
    if m.largest_spread == 0:
        return Finding("pass", Msg("train.eval-batch.pass", base))
    if m.seed_interval.half_width is None or m.spread.half_width is None:
        return Finding("warn", Msg("train.eval-batch.one_seed", base))
    params = {**base, "spread_hw": m.spread.half_width, "noise": m.seed_interval.half_width}
    if m.spread.mean > m.spread.half_width:
        return Finding("fail", Msg("train.eval-batch.fail", params))
    return Finding("warn", Msg("train.eval-batch.within", params))


# --- train.cluster-weight ---------------------------------------------------------------


@dataclass(frozen=True)
class ClusterWeightMeasurement:
    """The cluster term's effective weight per training step (absent classes' shrink factor)."""

    mode: str  # the weighting measured: "own" or "use_class_balanced=True"
    steps: int  # training steps looked at (every seed)
    absent_share: float  # steps whose batch misses a class
    single_class: int  # steps with one class present (no head of the present classes)
    measured: int  # steps with a factor
    below_limit: int  # steps with a factor below CLUSTER_LIMIT
    median: float
    lowest: float
    tolerance: float
    training: tuple[TermTraining, ...] = ()  # whether the term trains (every class present)

    @property
    def share_below(self) -> float:
        return self.below_limit / self.measured if self.measured else 0.0


def judge_cluster_weight(m: ClusterWeightMeasurement) -> Finding:
    params = {
        "share": m.share_below,
        "limit": CLUSTER_LIMIT,
        "allowed": CLUSTER_STEP_SHARE,
        "median": m.median,
        "lowest": m.lowest,
        "absent": m.absent_share,
        "steps": m.steps,
    }
    if m.share_below > CLUSTER_STEP_SHARE:  # 0 when nothing was measured
        return Finding("fail", Msg("train.cluster-weight.fail", params))
    untrainable = untrained(m.training)
    if untrainable is not None:
        return untrainable
    if m.measured == 0:
        return Finding("warn", Msg("train.cluster-weight.unmeasured", params))
    if not any(r.outcome == "trains" for r in m.training):  # a weight kept by a term never seen training
        return Finding("warn", Msg("train.cluster-weight.untested", params))
    return Finding("pass", Msg("train.cluster-weight.pass", params))


# --- train.vs-baseline ------------------------------------------------------------------


@dataclass(frozen=True)
class VsMeasurement:
    """Paired differences (this head minus ``against``), seed by seed."""

    against: str
    balanced_accuracy: Interval
    rare_recall: Interval
    rare_classes: tuple[int, ...]


def direction(diff: Interval) -> str:
    """ "better", "worse" or "none": only what the 95 % interval supports (one seed: none)."""
    if diff.low is None or diff.high is None:
        return "none"
    if diff.low > 0:
        return "better"
    if diff.high < 0:
        return "worse"
    return "none"


def _half(diff: Interval) -> float:
    return math.nan if diff.half_width is None else diff.half_width


def judge_vs(m: VsMeasurement) -> Finding:
    acc, rare = direction(m.balanced_accuracy), direction(m.rare_recall)
    params: dict[str, Any] = {
        "against": m.against,
        "acc": m.balanced_accuracy.mean,
        "acc_hw": _half(m.balanced_accuracy),
        "acc_says": Msg(f"train.direction.{acc}"),
        "rare": m.rare_recall.mean,
        "rare_hw": _half(m.rare_recall),
        "rare_says": Msg(f"train.direction.{rare}"),
        "classes": ", ".join(str(c) for c in m.rare_classes),
        "seeds": m.balanced_accuracy.n,
    }
    key = "one_seed" if m.balanced_accuracy.n < 2 else "result"
    if "worse" in (acc, rare):
        return Finding("fail", Msg(f"train.vs-baseline.{key}", params))
    if "better" in (acc, rare):
        return Finding("pass", Msg(f"train.vs-baseline.{key}", params))
    return Finding("warn", Msg(f"train.vs-baseline.{key}", params))


# --- the records ------------------------------------------------------------------------


def _measure_eval_batch(session: Session, role: str) -> EvalBatchMeasurement | Finding:
    return session.eval_batch(role)


def _measure_cluster(session: Session, role: str) -> ClusterWeightMeasurement | Finding:
    return session.cluster_weight(role)


def _measure_vs(session: Session, role: str) -> VsMeasurement | Finding:
    return session.versus(role, "baseline")


#: The names ``train.cluster-weight`` reads (those of ``weights.absent-classes``).
def _cluster_needs() -> tuple[str, ...]:
    from headaudit.checks.weights import CHECKS as WEIGHTS

    return next(c.needs for c in WEIGHTS if c.id == "weights.absent-classes")


TRAIN_CHECKS: tuple[TrainCheck[Any], ...] = (
    TrainCheck("train.eval-batch", _measure_eval_batch, judge_eval_batch, severity="high"),
    TrainCheck("train.cluster-weight", _measure_cluster, judge_cluster_weight, needs=_cluster_needs()),
    TrainCheck("train.vs-baseline", _measure_vs, judge_vs),
)


def by_id(check_id: str) -> TrainCheck[Any] | None:
    return next((c for c in TRAIN_CHECKS if c.id == check_id), None)
