"""Class weights of the cluster loss on long-tailed batches (missed by the original report).

Everything is measured through the subject's loss forward (``proto_loss_fn[cluster_loss]``),
so a head that weights inline (``head.py``) is measured exactly like one with a weight
method (``head_optimal.py``); ``_get_class_weight`` is read, where it exists, as extra
evidence only.

- **Extra absent classes.** The same batch (four classes present, 5/3/2/1 samples) with
  the same present-class similarities is given to heads built with 4 classes and with 5
  and 7 classes, the extra classes absent from it. The factor is the ratio of the two
  cluster losses; it is 1 (within the subject dtype's tolerance) when the weights of the
  present classes do not depend on the absent ones.
- **Effective weights.** A present class's effective weight is the cluster loss when only
  that class's samples are away from their prototypes (distance 0.5, every other sample
  at distance 0), per unit distance: scale, class weight and the division by the number
  of classes together, read from the subject's own loss.
- **Simulation.** Batches of 16, 32 and 64 drawn like a shuffled data loader (consecutive
  chunks of seeded ``numpy`` permutations) from the ISIC 2018 task 3 class counts
  (``BEHAVIOR.md`` 6): the share of batches that miss a class, and per batch the factor
  by which the cluster loss shrinks: its value under a head of all the data set's classes
  over its value under a head built with only the classes present (same similarities).
  Batches with one class present have no such head (the family's domain is two classes or
  more) and are counted apart.
- **Modes.** ``use_class_balanced`` True and False where the constructor takes it (read back
  from ``proto_loss_fn.use_class_balanced``); otherwise the head's own single weighting,
  named as such.

``weights.cb-vs-inverse`` compares the subject's class-balanced effective weights with
plain inverse frequency (``1/n``, the oracle written here) at batch-level counts (the first
batches of the simulation) and at the data set's counts (one batch holding all of them).

Cost: about 2-4 s per subject on one CPU thread (a few thousand small loss calls).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from headaudit.adapters import LOSS_CALL_NEEDS, Head, loss_terms
from headaudit.build import SettingNotApplied
from headaudit.checks._common import coarsest, computed_in, dtype_name, tolerance
from headaudit.checks._trains import TermTraining, probe_loss, subject_key, untrained
from headaudit.context import Context
from headaudit.fingerprints import Headline
from headaudit.messages import Msg
from headaudit.model import Finding
from headaudit.precision import derived
from headaudit.reference.recommended import ISIC2018_TASK3_COUNTS
from headaudit.registry import Check
from headaudit.sandbox import SubjectRaised, call_subject

__all__ = ["CHECKS", "DATA_COUNTS", "MARGIN", "ORDER", "SIZES", "simulated_batches"]

#: The long-tailed class counts batches are drawn from (BEHAVIOR.md 6).
DATA_COUNTS: tuple[int, ...] = tuple(ISIC2018_TASK3_COUNTS)
#: Batch sizes of the simulation.
SIZES: tuple[int, ...] = (16, 32, 64)
#: Two weightings "agree" when no class's normalised weight differs by more than this share:
#: less than one sample changes in a class count of 20 (1/20 = 5 %).
MARGIN = 0.05

_CLUSTER = "proto_loss_fn[cluster_loss]"
_WEIGHT_FN = "proto_loss_fn._get_class_weight"
_BETA = "proto_loss_fn.cb_beta"
_EMB = 8
_PROTOS = 2
_DIRECT_COUNTS = (5, 3, 2, 1)  # samples of each present class in the direct batch
_EXTRA = (1, 3)  # absent classes added: heads of 5 and 7 classes
_SIM_BATCHES = 200  # per batch size under the ci profile
_CB_BATCHES = 8  # per batch size, for cb-vs-inverse
_DISTANCE = 0.5
_SETTING = "use_class_balanced"


# --- building heads per weighting mode -----------------------------------------------


@dataclass(frozen=True)
class _Mode:
    label: str  # "use_class_balanced=True", "use_class_balanced=False" or "own"
    settings: dict[str, Any]


@dataclass
class _Heads:
    """Heads of one weighting mode, by number of classes (built once each)."""

    ctx: Context
    mode: _Mode
    built: dict[int, tuple[Head, int, dict[str, Any]]] = field(default_factory=dict)

    def get(self, num_classes: int) -> tuple[Head, int]:
        if num_classes not in self.built:
            torch.manual_seed(self.ctx.seed + num_classes)
            full = self.ctx.build_full(
                num_classes=num_classes,
                emb_dim=_EMB,
                num_prototypes=_PROTOS,
                max_prototypes=_PROTOS,
                **self.mode.settings,
            )
            per_class = int(self.ctx.get(full.head, "proto_manager.max_prototypes"))
            self.built[num_classes] = (full.head, per_class, dict(full.settings))
        head, per_class, _ = self.built[num_classes]
        return head, per_class

    def read_back(self) -> dict[str, Any]:
        """The mode's settings as read back from the first head built."""
        first = next(iter(self.built.values()))[2] if self.built else {}
        return {k: first[k] for k in self.mode.settings if k in first}


def _modes(ctx: Context, first_classes: int) -> tuple[list[_Heads], dict[str, str]]:
    """The weighting modes the head has: both values of ``use_class_balanced`` where the
    constructor takes it and it reads back, else the head's own weighting ("own")."""
    found: list[_Heads] = []
    unavailable: dict[str, str] = {}
    for value in (True, False):
        heads = _Heads(ctx, _Mode(f"{_SETTING}={value}", {_SETTING: value}))
        try:
            heads.get(first_classes)
        except SettingNotApplied as exc:
            unavailable[heads.mode.label] = exc.reason
            continue
        found.append(heads)
    if not found:
        own = _Heads(ctx, _Mode("own", {}))
        own.get(first_classes)
        found.append(own)
    return found, unavailable


# --- calling the subject's loss ------------------------------------------------------


def _cluster(ctx: Context, head: Head, sims: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The subject's cluster term for these similarities and labels (no autograd)."""
    with torch.no_grad():
        terms = loss_terms(ctx, head, ctx.get(head, "proto_manager.prototypes"), sims, labels)
    term = torch.as_tensor(ctx.key(terms, _CLUSTER))
    return derived(term.detach(), term)  # compared at the precision the subject computed it in


def _training(ctx: Context, heads: _Heads, classes: int, salt: int) -> tuple[TermTraining, ...]:
    """Whether the cluster term these checks read trains: every class present, seeded
    similarities (no ties between slots), so the term depends on every sample's distance."""
    head, per_class = heads.get(classes)
    gen = ctx.generator(salt)
    labels = list(range(classes)) * 2
    sims = torch.rand(len(labels), classes, per_class, generator=gen) * 2 - 1
    key = subject_key(ctx, _CLUSTER)
    protos = ctx.get(head, "proto_manager.prototypes")
    active = {f"proto_loss_fn[{key}]": True}
    return probe_loss(ctx, head, protos, sims, labels, [key], salt, along=("similarities",), active=active)


def _value(t: torch.Tensor) -> float:
    return float(t.reshape(-1)[0]) if t.numel() else math.nan


def _effective_weights(ctx: Context, head: Head, per_class: int, labels: torch.Tensor, classes: int) -> list[float]:
    """Cluster loss per unit distance when only class c's samples are away from their
    prototypes, for each class c present in ``labels`` (in class order)."""
    return _effective(ctx, head, per_class, labels, classes)[0]


def _effective(
    ctx: Context, head: Head, per_class: int, labels: torch.Tensor, classes: int
) -> tuple[list[float], torch.dtype]:
    """:func:`_effective_weights` and the coarsest precision the subject computed them in."""
    out: list[float] = []
    precisions: list[torch.dtype] = []
    for c in sorted(set(labels.tolist())):
        sims = torch.ones(labels.numel(), classes, per_class)
        sims[labels == c, c, :] = 1.0 - _DISTANCE
        value = _cluster(ctx, head, sims, labels)
        precisions.append(computed_in(value))
        out.append(_value(value) / _DISTANCE)
    return out, coarsest(*precisions) if precisions else torch.float32


def _private_weights(ctx: Context, head: Head, labels: torch.Tensor, classes: int) -> list[float] | str | None:
    """``_get_class_weight`` of this batch's counts, where the loss has it (extra evidence).

    Its behaviour is the claim itself (class weights), so a raise is recorded, not passed on.
    """
    if not ctx.has(_WEIGHT_FN):
        return None
    counts = torch.bincount(labels, minlength=classes).float()
    try:
        weights = call_subject("_get_class_weight", ctx.get(head, _WEIGHT_FN), counts)
    except SubjectRaised as exc:
        return exc.detail
    return [float(w) for w in torch.as_tensor(weights).detach().reshape(-1)]


# --- the simulated long-tailed batches -----------------------------------------------


def simulated_batches(seed: int, size: int, count: int, data: tuple[int, ...] = DATA_COUNTS) -> list[np.ndarray]:
    """``count`` label batches of ``size``: consecutive chunks of seeded permutations of a
    data set with ``data[c]`` samples of class ``c`` (a shuffled loader, last batch dropped)."""
    rng = np.random.default_rng([seed, size])
    labels = np.repeat(np.arange(len(data)), data)
    batches: list[np.ndarray] = []
    while len(batches) < count:
        order = rng.permutation(labels)
        for start in range(0, len(order) - size + 1, size):
            batches.append(order[start : start + size])
            if len(batches) == count:
                break
    return batches


@dataclass(frozen=True)
class DataShare:
    """How often simulated batches of one size miss classes (independent of the head)."""

    batch: int
    batches: int
    missing_share: float  # batches missing at least one class
    mean_missing: float  # classes missing per batch, on average


@dataclass(frozen=True)
class ShrinkStats:
    """Per batch size: the factor by which absent classes shrink the cluster loss."""

    batch: int
    measured: int  # batches with a factor (two classes present or more, non-zero loss)
    single_class: int  # batches with one class present: no head of the present classes alone
    changed: int  # batches whose factor differs from 1 beyond the tolerance
    median: float
    p10: float
    p90: float
    lowest: float


def _shares(seed: int, count: int) -> tuple[DataShare, ...]:
    out = []
    for size in SIZES:
        missing = [len(DATA_COUNTS) - len(np.unique(b)) for b in simulated_batches(seed, size, count)]
        out.append(DataShare(size, count, float(np.mean([m > 0 for m in missing])), float(np.mean(missing))))
    return tuple(out)


def _simulate(ctx: Context, heads: _Heads, count: int) -> tuple[tuple[ShrinkStats, ...], float]:
    classes = len(DATA_COUNTS)
    full, per_class = heads.get(classes)
    stats, worst_tol = [], 0.0
    for size in SIZES:
        factors, single, changed = [], 0, 0
        gen = ctx.generator(31_000 + size)
        for batch in simulated_batches(ctx.seed, size, count):
            sims = torch.rand(size, classes, per_class, generator=gen) * 2 - 1
            present = sorted(int(c) for c in np.unique(batch))
            if len(present) < 2:
                single += 1
                continue
            labels = torch.as_tensor(batch, dtype=torch.long)
            with_absent = _cluster(ctx, full, sims, labels)
            if len(present) == classes:  # nothing absent: the head of the present classes is this one
                without = with_absent
            else:
                alone, alone_per_class = heads.get(len(present))
                remap = torch.as_tensor(np.searchsorted(present, batch), dtype=torch.long)
                without = _cluster(ctx, alone, sims[:, present, :alone_per_class], remap)
            a, b = _value(with_absent), _value(without)
            tol = tolerance((with_absent, without), max(abs(a), abs(b)))
            worst_tol = max(worst_tol, tol)
            if b == 0:
                continue
            factors.append(a / b)
            changed += abs(a - b) > tol
        q = np.quantile(factors, [0.1, 0.5, 0.9]) if factors else [math.nan] * 3
        lowest = min(factors) if factors else math.nan
        stats.append(ShrinkStats(size, len(factors), single, changed, float(q[1]), float(q[0]), float(q[2]), lowest))
    return tuple(stats), worst_tol


# --- weights.absent-classes ----------------------------------------------------------


@dataclass(frozen=True)
class DirectCase:
    """The same batch under heads of ``classes_without`` and ``classes_with`` classes."""

    extra_absent: int
    classes_with: int
    cluster_without: float
    cluster_with: float
    factor: float
    tolerance: float
    effective_weights_without: tuple[float, ...]
    effective_weights_with: tuple[float, ...]
    private_weights_without: list[float] | str | None = None
    private_weights_with: list[float] | str | None = None


@dataclass(frozen=True)
class AbsentMode:
    mode: str
    read_back: dict[str, Any]
    direct: tuple[DirectCase, ...]
    simulation: tuple[ShrinkStats, ...]
    simulation_tolerance: float
    dtype: str


@dataclass(frozen=True)
class AbsentMeasurement:
    present_counts: tuple[int, ...]
    modes: tuple[AbsentMode, ...]
    unavailable: dict[str, str]  # mode -> why it could not be measured
    data_counts: tuple[int, ...]
    data: tuple[DataShare, ...]
    seed: int
    cb_beta: float | None = None
    training: tuple[TermTraining, ...] = ()  # whether the cluster term trains (issue 25, item 2)


def _direct(ctx: Context, heads: _Heads) -> tuple[tuple[DirectCase, ...], str]:
    present = len(_DIRECT_COUNTS)
    gen = ctx.generator(30_000)
    labels = torch.repeat_interleave(torch.arange(present), torch.tensor(_DIRECT_COUNTS))
    labels = labels[torch.randperm(labels.numel(), generator=gen)]
    base, per_class = heads.get(present)
    wide = torch.rand(labels.numel(), present + max(_EXTRA), per_class, generator=gen) * 2 - 1
    without = _cluster(ctx, base, wide[:, :present], labels)
    eff_without = tuple(_effective_weights(ctx, base, per_class, labels, present))
    private_without = _private_weights(ctx, base, labels, present)
    cases = []
    for extra in _EXTRA:
        head, other_per_class = heads.get(present + extra)
        sims = wide[:, : present + extra, :other_per_class]
        if other_per_class != per_class:  # a head that fixes its own slot count
            sims = torch.rand(labels.numel(), present + extra, other_per_class, generator=gen) * 2 - 1
            sims[:, :present, :per_class] = wide[:, :present, :per_class]
        with_absent = _cluster(ctx, head, sims, labels)
        a, b = _value(with_absent), _value(without)
        cases.append(
            DirectCase(
                extra_absent=extra,
                classes_with=present + extra,
                cluster_without=b,
                cluster_with=a,
                factor=a / b if b else math.nan,
                tolerance=tolerance((with_absent, without), max(abs(a), abs(b))),
                effective_weights_without=eff_without,
                effective_weights_with=tuple(_effective_weights(ctx, head, other_per_class, labels, present + extra)),
                private_weights_without=private_without,
                private_weights_with=_private_weights(ctx, head, labels, present + extra),
            )
        )
    return tuple(cases), dtype_name(without.dtype)


def _beta(ctx: Context, heads: list[_Heads]) -> float | None:
    if not ctx.has(_BETA):
        return None
    head, _ = heads[0].get(len(_DIRECT_COUNTS))
    return float(ctx.get(head, _BETA))


def _measure_absent(ctx: Context) -> AbsentMeasurement:
    heads, unavailable = _modes(ctx, len(_DIRECT_COUNTS))
    count = ctx.budget(_SIM_BATCHES, minimum=20)
    modes = []
    for mode_heads in heads:
        direct, dtype = _direct(ctx, mode_heads)
        simulation, sim_tol = _simulate(ctx, mode_heads, count)
        modes.append(AbsentMode(mode_heads.mode.label, mode_heads.read_back(), direct, simulation, sim_tol, dtype))
    return AbsentMeasurement(
        present_counts=_DIRECT_COUNTS,
        modes=tuple(modes),
        unavailable=unavailable,
        data_counts=DATA_COUNTS,
        data=_shares(ctx.seed, count),
        seed=ctx.seed,
        cb_beta=_beta(ctx, heads),
        training=_training(ctx, heads[0], len(_DIRECT_COUNTS), 31_000) if heads else (),
    )


def mode_msg(label: str) -> Msg:
    """How a weighting mode is named in a sentence."""
    if label == "own":
        return Msg("weights.mode.own")
    return Msg("weights.mode.setting", {"setting": label})


def _unavailable_msgs(unavailable: dict[str, str]) -> list[Msg]:
    """Why modes were not measured: the setting is not taken, or it did not take effect."""
    absent = [mode for mode, reason in unavailable.items() if reason in ("no-keyword", "refused")]
    ignored = [mode for mode in unavailable if mode not in absent]
    out = []
    if absent:
        out.append(Msg("weights.unavailable.absent", {"setting": _SETTING}))
    if ignored:
        out.append(Msg("weights.unavailable.ignored", {"modes": ignored}))
    return out


def _judge_absent(m: AbsentMeasurement) -> Finding:
    dependent, measured = [], 0
    for mode in m.modes:
        bad = [
            c for c in mode.direct if math.isfinite(c.factor) and abs(c.cluster_with - c.cluster_without) > c.tolerance
        ]
        measured += sum(math.isfinite(c.factor) for c in mode.direct) + sum(s.measured for s in mode.simulation)
        changed = sum(s.changed for s in mode.simulation)
        if bad or changed:
            worst = max(bad, key=lambda c: abs(c.factor - 1), default=mode.direct[-1])
            sim = mode.simulation[0]
            dependent.append(
                Msg(
                    "weights.absent-classes.mode_fail",
                    {
                        "mode": mode_msg(mode.mode),
                        "extra": worst.extra_absent,
                        "factor": worst.factor,
                        "batch": sim.batch,
                        "median": sim.median,
                        "p10": sim.p10,
                        "p90": sim.p90,
                    },
                )
            )
    if dependent:  # a list: each mode is its own finding, with its own headline figure
        return Finding("fail", Msg("weights.absent-classes.fail", {"modes": dependent}))
    untrainable = untrained(m.training)
    if untrainable is not None:
        return untrainable
    if measured == 0:
        return Finding("error", Msg("weights.absent-classes.nothing"))
    modes = [mode_msg(mode.mode) for mode in m.modes]
    key = "pass" if not m.unavailable else "pass_one_mode"
    params: dict[str, Any] = {"modes": modes, "cases": measured, "unavailable": _unavailable_msgs(m.unavailable)}
    return Finding("pass", Msg(f"weights.absent-classes.{key}", params))


# --- weights.cb-vs-inverse -----------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """A mode's normalised effective weights against plain inverse frequency."""

    mode: str
    read_back: dict[str, Any]
    batches: int
    batch_max_relative_difference: float
    batch_worst_counts: tuple[int, ...]  # per class, 0 = absent
    dataset_relative_difference: float
    dataset_weights: tuple[float, ...]
    dataset_inverse_frequency: tuple[float, ...]
    unresponsive: int  # batches where the cluster loss responded to no class
    _normalised: tuple[tuple[float, ...], ...] = ()  # every batch's weights, dataset last (not evidence)
    _dtype: str = "float32"


@dataclass(frozen=True)
class CbMeasurement:
    class_balanced: Comparison | None
    others: tuple[Comparison, ...]
    unavailable: dict[str, str]
    margin: float
    data_counts: tuple[int, ...]
    largest_batch_count: int
    cb_beta: float | None = None
    # largest relative difference between the class-balanced mode's weights and the other
    # mode's, over the same batches; with its tolerance (None: one mode only)
    modes_difference: float | None = None
    modes_tolerance: float | None = None
    training: tuple[TermTraining, ...] = ()  # whether the cluster term trains (issue 25, item 2)


def _relative_difference(weights: list[float], counts: list[int]) -> float | None:
    """Largest ``|w_c - q_c| / q_c`` of the normalised weights and inverse frequencies."""
    total = sum(weights)
    if not total or not all(math.isfinite(w) for w in weights):
        return None
    inverse = [1.0 / n for n in counts]
    norm = sum(inverse)
    return max(abs(w / total - q / norm) / (q / norm) for w, q in zip(weights, inverse, strict=True))


def _compare(ctx: Context, heads: _Heads) -> tuple[Comparison, int]:
    classes = len(DATA_COUNTS)
    head, per_class = heads.get(classes)
    worst, measured, unresponsive, largest = -1.0, 0, 0, 0
    worst_counts: tuple[int, ...] = ()
    normalised: list[tuple[float, ...]] = []
    dtype = torch.float32
    for size in SIZES:
        kept = [b for b in simulated_batches(ctx.seed, size, 4 * _CB_BATCHES) if len(np.unique(b)) >= 2]
        for batch in kept[:_CB_BATCHES]:
            labels = torch.as_tensor(batch, dtype=torch.long)
            counts = np.bincount(batch, minlength=classes)
            largest = max(largest, int(counts.max()))
            weights, dtype = _effective(ctx, head, per_class, labels, classes)
            normalised.append(tuple(w / (sum(weights) or math.nan) for w in weights))
            diff = _relative_difference(weights, [int(n) for n in counts if n > 0])
            if diff is None:
                unresponsive += 1
                continue
            measured += 1
            if diff > worst:
                worst, worst_counts = diff, tuple(int(n) for n in counts)
    labels = torch.repeat_interleave(torch.arange(classes), torch.tensor(DATA_COUNTS))
    dataset = _effective_weights(ctx, head, per_class, labels, classes)
    dataset_diff = _relative_difference(dataset, list(DATA_COUNTS))
    total = sum(dataset) or math.nan
    inverse = [1.0 / n for n in DATA_COUNTS]
    comparison = Comparison(
        mode=heads.mode.label,
        read_back=heads.read_back(),
        batches=measured,
        batch_max_relative_difference=worst if measured else math.nan,
        batch_worst_counts=worst_counts,
        dataset_relative_difference=math.nan if dataset_diff is None else dataset_diff,
        dataset_weights=tuple(w / total for w in dataset),
        dataset_inverse_frequency=tuple(q / sum(inverse) for q in inverse),
        unresponsive=unresponsive,
        _normalised=(*normalised, tuple(w / total for w in dataset)),
        _dtype=dtype_name(dtype),
    )
    return comparison, largest


def _modes_difference(a: Comparison, b: Comparison) -> float:
    """Largest relative difference between two modes' normalised weights on the same batches."""
    worst = 0.0
    for x, y in zip(a._normalised, b._normalised, strict=True):
        for u, v in zip(x, y, strict=True):
            worst = max(worst, abs(u - v) / max(abs(v), 1e-30)) if math.isfinite(u - v) else math.inf
    return worst


def _measure_cb(ctx: Context) -> CbMeasurement:
    heads, unavailable = _modes(ctx, len(DATA_COUNTS))
    balanced, others, largest = None, [], 0
    for mode_heads in heads:
        comparison, largest = _compare(ctx, mode_heads)
        if mode_heads.mode.settings.get(_SETTING) is True:
            balanced = comparison
        else:
            others.append(comparison)
    difference = tol = None
    if balanced is not None and others:
        difference = max(_modes_difference(balanced, other) for other in others)
        tol = tolerance(getattr(torch, balanced._dtype))
    training = _training(ctx, heads[0], len(DATA_COUNTS), 32_000) if heads else ()
    return CbMeasurement(
        balanced, tuple(others), unavailable, MARGIN, DATA_COUNTS, largest, _beta(ctx, heads), difference, tol, training
    )


def _judge_cb(m: CbMeasurement) -> Finding:
    cb = m.class_balanced
    if cb is None:
        others = [
            Msg("weights.cb-vs-inverse.other", {"mode": mode_msg(c.mode), "batch": c.batch_max_relative_difference})
            for c in m.others
            if c.batches
        ]
        if not others:
            unresponsive = sum(c.unresponsive for c in m.others)
            return Finding("error", Msg("weights.cb-vs-inverse.unresponsive", {"batches": unresponsive}))
        no_mode: dict[str, Any] = {"unavailable": _unavailable_msgs(m.unavailable), "others": others}
        return Finding("n/a", Msg("weights.cb-vs-inverse.no_mode", no_mode))
    if not cb.batches or not math.isfinite(cb.dataset_relative_difference):
        return Finding("error", Msg("weights.cb-vs-inverse.unresponsive", {"batches": cb.unresponsive}))
    untrainable = untrained(m.training)
    if untrainable is not None:
        return untrainable
    params: dict[str, Any] = {
        "batch": cb.batch_max_relative_difference,
        "dataset": cb.dataset_relative_difference,
        "margin": m.margin,
        "batches": cb.batches,
        "largest": m.largest_batch_count,
    }
    if m.modes_difference is not None and m.modes_tolerance is not None and m.modes_difference <= m.modes_tolerance:
        inert = {"difference": m.modes_difference, "tolerance": m.modes_tolerance}
        return Finding("fail", Msg("weights.cb-vs-inverse.inert", inert))
    if cb.batch_max_relative_difference > m.margin:
        return Finding("pass", Msg("weights.cb-vs-inverse.pass", params))
    if cb.dataset_relative_difference > m.margin:
        return Finding("warn", Msg("weights.cb-vs-inverse.warn", params))
    return Finding("fail", Msg("weights.cb-vs-inverse.fail", params))


ORDER = 310

_NEEDS = (*LOSS_CALL_NEEDS, "proto_manager.prototypes", _CLUSTER, f"?{_WEIGHT_FN}", f"?{_BETA}")

CHECKS: tuple[Check[Any], ...] = (
    Check(
        id="weights.absent-classes",
        catalogue=3,
        measure=_measure_absent,
        judge=_judge_absent,
        needs=_NEEDS,
        settings=(f"?{_SETTING}",),
        severity="high",
        # the factor absent classes multiply the cluster loss by: smaller is worse
        headlines={"weights.absent-classes.mode_fail": Headline("factor", "lower")},
    ),
    Check(
        id="weights.cb-vs-inverse",
        catalogue=3,
        measure=_measure_cb,
        judge=_judge_cb,
        needs=_NEEDS,
        settings=(f"?{_SETTING}",),
        severity="medium",
        # how far the class-balanced weights are from inverse frequency: closer is worse
        headlines={"weights.cb-vs-inverse.fail": Headline("batch", "lower")},
    ),
)
