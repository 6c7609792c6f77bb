"""A training session: every head trained the same way at every seed, then measured and judged.

:func:`run_session` trains the baseline, the candidate and the control (and the candidate
under the original report's recommended configuration, ``use_class_balanced=True``, where it
takes that setting) with :func:`headaudit.train.loop.run_one` and measures each head's cluster
weight on the same batches, every task in a worker process (:mod:`headaudit.train.pool`) and
served by the result cache where nothing it depends on changed
(:mod:`headaudit.train.stored`), then computes, per head, the means over seeds with their 95 %
intervals and, per pair, the paired differences. The ``train.*`` checks read their
measurements from it (:mod:`headaudit.train.checks`) and it turns into the report's training
section (:meth:`TrainSession.section`, without wall-clock times, so that the section is
byte-identical for a seed) and into ``headaudit train``'s table.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from headaudit.build import accepts_keyword, read_setting
from headaudit.messages import Msg
from headaudit.model import CheckInfo, Finding, Json, Result, freeze_evidence, freeze_msg, to_evidence
from headaudit.parallel import Ended
from headaudit.profiles import Profile
from headaudit.subjects import Subject
from headaudit.train.checks import (
    CLUSTER_LIMIT,
    TRAIN_CHECKS,
    ClusterWeightMeasurement,
    EvalBatchMeasurement,
    VsMeasurement,
)
from headaudit.train.data import TrainData
from headaudit.train.loop import HeadSpec, SeedRun, TrainConfig, batch_plan, run_one
from headaudit.train.pool import Task, run_tasks
from headaudit.train.stats import Interval, interval, paired
from headaudit.train.stored import cluster_from_json, cluster_to_json, run_from_json, run_to_json

if TYPE_CHECKING:
    from headaudit.cache import ResultCache

__all__ = ["RECOMMENDED", "TrainSession", "head_specs", "run_session"]

#: The setting of the original report's recommended configuration (its 4.1) that is trained
#: against the same head with it off.
RECOMMENDED = ("use_class_balanced", True)
#: The role of the candidate under the recommended configuration, and of the candidate with
#: it off where the candidate's own default is on.
RECOMMENDED_ROLE = "candidate+cb"
OFF_ROLE = "candidate-cb"
#: How many of the rarest training classes ``rare recall`` averages.
RARE = 3


def head_specs(subjects: Mapping[str, Subject]) -> tuple[tuple[HeadSpec, ...], tuple[str, str] | None]:
    """The heads to train, and the (on, off) roles of the recommended-configuration comparison."""
    specs = [HeadSpec(role, s.spec, s.names.entries, display=s.display) for role, s in subjects.items()]
    candidate = subjects.get("candidate")
    if candidate is None or accepts_keyword(candidate.head_cls, RECOMMENDED[0]) is False:
        return tuple(specs), None
    on = HeadSpec(RECOMMENDED_ROLE, candidate.spec, candidate.names.entries, (RECOMMENDED,), candidate.display)
    readable, default = read_setting(candidate.probe, RECOMMENDED[0], candidate.names)
    if readable and default is False:
        return (*specs, on), (RECOMMENDED_ROLE, "candidate")
    off = HeadSpec(OFF_ROLE, candidate.spec, candidate.names.entries, ((RECOMMENDED[0], False),), candidate.display)
    return (*specs, on, off), (RECOMMENDED_ROLE, OFF_ROLE)


@dataclass(frozen=True)
class TrainSession:
    """Every run of a session, and the measurements computed from them."""

    data: TrainData
    config: TrainConfig
    heads: tuple[HeadSpec, ...]
    runs: tuple[SeedRun, ...]
    recommended: tuple[str, str] | None = None
    cluster: Mapping[str, ClusterWeightMeasurement | Finding] = field(default_factory=dict)

    # --- per head -------------------------------------------------------------------------

    def of(self, role: str) -> list[SeedRun]:
        return [r for r in self.runs if r.role == role]

    def _failed(self, role: str) -> Finding | None:
        """``error`` (the subject raised) or ``n/a`` (a setting refused) for a head without numbers."""
        runs = self.of(role)
        bad = next((r for r in runs if r.status != "ok"), None)
        if not runs:
            return Finding("n/a", Msg("train.not_trained", {"role": role}))
        if bad is None:
            return None
        key = "common.check_failed" if bad.status == "error" else "train.setting"
        return Finding(cast(Any, bad.status), Msg(key, {"detail": f"seed {bad.seed}: {bad.detail}"}))

    def batch_sizes(self) -> tuple[int, ...]:
        return tuple(s or len(self.data.test_y) for s in self.config.eval_batches)

    def rare_classes(self) -> tuple[int, ...]:
        counts = self.data.train_counts
        return tuple(sorted(sorted(range(len(counts)), key=lambda c: (counts[c], c))[:RARE]))

    def _rare(self, run: SeedRun) -> float:
        return float(np.mean([run.recall[0][c] for c in self.rare_classes()]))

    def eval_batch(self, role: str) -> EvalBatchMeasurement | Finding:
        failed = self._failed(role)
        if failed is not None:
            return failed
        runs = self.of(role)
        spreads = [max(r.balanced_accuracy) - min(r.balanced_accuracy) for r in runs]
        return EvalBatchMeasurement(
            batch_sizes=self.batch_sizes(),
            accuracy=tuple(r.balanced_accuracy for r in runs),
            spread=interval(spreads),
            seed_interval=interval([r.balanced_accuracy[0] for r in runs]),
            largest_spread=max(spreads),
        )

    def cluster_weight(self, role: str) -> ClusterWeightMeasurement | Finding:
        found = self.cluster.get(role)
        return found if found is not None else Finding("n/a", Msg("train.not_trained", {"role": role}))

    def versus(self, role: str, against: str) -> VsMeasurement | Finding:
        if role == against:
            return Finding("n/a", Msg("train.vs-baseline.self", {"role": role}))
        failed = self._failed(role) or self._failed(against)
        if failed is not None:
            return failed
        mine, theirs = self.of(role), self.of(against)
        return VsMeasurement(
            against=against,
            balanced_accuracy=paired([r.balanced_accuracy[0] for r in mine], [r.balanced_accuracy[0] for r in theirs]),
            rare_recall=paired([self._rare(r) for r in mine], [self._rare(r) for r in theirs]),
            rare_classes=self.rare_classes(),
        )

    def summary(self, role: str) -> dict[str, Any] | None:
        """Means and 95 % intervals over seeds of every measure of one head (no timings)."""
        if self._failed(role) is not None:
            return None
        runs = self.of(role)
        sizes = self.batch_sizes()
        out: dict[str, Any] = {
            "balanced_accuracy": interval([r.balanced_accuracy[0] for r in runs]).to_dict(),
            "macro_f1": interval([r.macro_f1[0] for r in runs]).to_dict(),
            "rare_recall": interval([self._rare(r) for r in runs]).to_dict(),
            "recall": [interval([r.recall[0][c] for r in runs]).to_dict() for c in range(self.data.num_classes)],
            "by_eval_batch": {
                str(size): interval([r.balanced_accuracy[i] for r in runs]).to_dict() for i, size in enumerate(sizes)
            },
            "eval_batch_spread": interval([max(a) - min(a) for a in (r.balanced_accuracy for r in runs)]).to_dict(),
            "final_loss": interval([r.losses[-1] for r in runs]).to_dict(),
        }
        same = [r.same_class_cosine for r in runs if r.same_class_cosine is not None]
        other = [r.other_class_cosine for r in runs if r.other_class_cosine is not None]
        out["same_class_cosine"] = interval(same).to_dict() if len(same) == len(runs) else None
        out["other_class_cosine"] = interval(other).to_dict() if len(other) == len(runs) else None
        return out

    def absent_share(self) -> float:
        """Share of training steps (every seed) whose batch misses a class."""
        plans = [batch_plan(self.data, self.config, s) for s in self.config.seed_list]
        steps = [len(np.unique(self.data.train_y[idx])) < self.data.num_classes for plan in plans for idx in plan]
        return float(np.mean(steps)) if steps else 0.0

    def seconds_per_step(self, role: str, cpu: bool = False) -> Interval | None:
        """Wall-clock (or this process's CPU) seconds per training step, over seeds."""
        runs = [r for r in self.of(role) if r.status == "ok"]
        times = [r.cpu_seconds_per_step if cpu else r.seconds_per_step for r in runs]
        if not runs or any(t is None for t in times):
            return None  # not run, or served from the cache (never timed)
        return interval([float(t) for t in times if t is not None])

    # --- verdicts and the section ---------------------------------------------------------

    def results(self, roles: Sequence[str]) -> tuple[Result, ...]:
        """The ``train.*`` checks' results for ``roles``, in check order (vs-baseline: not on the baseline)."""
        out = []
        for check in TRAIN_CHECKS:
            for role in roles:
                if check.id == "train.vs-baseline" and role == "baseline":
                    continue
                measured = check.measure(self, role)
                if isinstance(measured, Finding):
                    finding, evidence = measured, {}
                else:
                    finding, evidence = check.judge(measured), to_evidence(measured)
                out.append(
                    Result(check.id, role, finding.verdict, freeze_msg(finding.message), freeze_evidence(evidence))
                )
        return tuple(out)

    def _losses(self) -> dict[str, list[list[float]]]:
        return {h.role: [list(r.losses) for r in self.of(h.role) if r.status == "ok"] for h in self.heads}

    @staticmethod
    def check_infos() -> tuple[CheckInfo, ...]:
        return tuple(CheckInfo(c.id, c.catalogue, c.severity, c.needs, (), False, c.group) for c in TRAIN_CHECKS)

    def section(self, timings: bool = False, curves: bool = False) -> dict[str, Any]:
        """The JSON of the training section. ``timings`` adds seconds per step (never
        byte-identical, so never in the report); ``curves`` the training loss of every step."""
        heads: dict[str, Any] = {}
        for spec in self.heads:
            entry: dict[str, Any] = {
                "subject": spec.display or spec.spec,
                "settings": dict(spec.settings),
                "summary": self.summary(spec.role),
            }
            failed = self._failed(spec.role)
            if failed is not None:
                entry["not_measured"] = {"verdict": failed.verdict, "message": freeze_msg(failed.message).to_dict()}
            if timings:
                secs, cpu = self.seconds_per_step(spec.role), self.seconds_per_step(spec.role, cpu=True)
                entry["seconds_per_step"] = secs.to_dict() if secs else None
                entry["cpu_seconds_per_step"] = cpu.to_dict() if cpu else None
            heads[spec.role] = entry
        pairs: dict[str, Any] = {}
        roles = [h.role for h in self.heads]
        for role in roles:
            for against in roles:
                if (role != against and against == "baseline") or (role, against) == self.recommended:
                    vs = self.versus(role, against)
                    if isinstance(vs, VsMeasurement):
                        pairs[f"{role} - {against}"] = {
                            "balanced_accuracy": vs.balanced_accuracy.to_dict(),
                            "rare_recall": vs.rare_recall.to_dict(),
                        }
        return cast(
            dict[str, Any],
            freeze_evidence(
                {
                    "data": self.data.to_dict(),
                    "config": self.config.to_dict(),
                    "rare_classes": list(self.rare_classes()),
                    "absent_share": self.absent_share(),
                    "batch_sizes": list(self.batch_sizes()),
                    "heads": heads,
                    "pairs": pairs,
                    "recommended": list(self.recommended) if self.recommended else None,
                    **({"losses": self._losses()} if curves else {}),
                }
            ),
        )


# --- the cluster term's effective weight, measured in this process ------------------------


def _cluster_measurement(
    subject: Subject, spec: HeadSpec, data: TrainData, config: TrainConfig, profile: Profile
) -> ClusterWeightMeasurement | Finding:
    """``train.cluster-weight`` on the session's training batches, through the subject's loss."""
    from headaudit.build import SettingNotApplied
    from headaudit.checks import weights
    from headaudit.context import Context, NameMissing
    from headaudit.precision import tolerance
    from headaudit.runner import own_names, resolve
    from headaudit.sandbox import SubjectRaised, captured

    check = next(c for c in TRAIN_CHECKS if c.id == "train.cluster-weight")
    subject = own_names(subject)
    try:
        resolved, missing = resolve(cast(Any, check), subject)
    except SubjectRaised as exc:
        return Finding("error", Msg("common.subject_raised", {"where": exc.where, "detail": exc.detail}))
    if missing:
        names = ", ".join(f"`{m.looked_for}`" for m in missing)
        return Finding("n/a", Msg("train.missing", {"names": names}))
    settings = tuple(name for name, _ in spec.settings)
    ctx = Context(subject, config.seed, profile, check.declared, resolved, settings)
    mode = weights._Mode(  # the weighting the run trained with
        ", ".join(f"{k}={v}" for k, v in spec.settings) or "own", dict(spec.settings)
    )
    heads = weights._Heads(ctx, mode)
    classes = data.num_classes
    factors: list[float] = []
    single = absent = steps = 0
    worst = 0.0
    torch.manual_seed(config.seed)
    try:
        with captured():
            full, per_class = heads.get(classes)
            gen = ctx.generator(27_000)
            for seed in config.seed_list:
                for idx in batch_plan(data, config, seed):
                    batch = data.train_y[idx]
                    steps += 1
                    present = sorted(int(c) for c in np.unique(batch))
                    absent += len(present) < classes
                    sims = torch.rand(len(batch), classes, per_class, generator=gen) * 2 - 1
                    if len(present) < 2:
                        single += 1
                        continue
                    if len(present) == classes:
                        factors.append(1.0)
                        continue
                    labels = torch.as_tensor(batch, dtype=torch.long)
                    with_absent = weights._cluster(ctx, full, sims, labels)
                    alone, alone_per_class = heads.get(len(present))
                    remap = torch.as_tensor(np.searchsorted(present, batch), dtype=torch.long)
                    without = weights._cluster(ctx, alone, sims[:, present, :alone_per_class], remap)
                    a, b = weights._value(with_absent), weights._value(without)
                    worst = max(worst, tolerance((with_absent, without), max(abs(a), abs(b))))
                    if b != 0 and math.isfinite(a / b):
                        factors.append(a / b)
            training = weights._training(ctx, heads, classes, 31_000)  # does the term it weighs train?
    except SubjectRaised as exc:
        return Finding("error", Msg("common.subject_raised", {"where": exc.where, "detail": exc.detail}))
    except (NameMissing, SettingNotApplied) as exc:
        return Finding("n/a", Msg("train.missing", {"names": f"`{exc}`"}))
    return ClusterWeightMeasurement(
        mode=mode.label,
        steps=steps,
        absent_share=absent / steps if steps else 0.0,
        single_class=single,
        measured=len(factors),
        below_limit=sum(f < CLUSTER_LIMIT for f in factors),
        median=float(np.median(factors)) if factors else math.nan,
        lowest=min(factors) if factors else math.nan,
        tolerance=worst,
        training=training,
    )


@dataclass(frozen=True)
class _Kept:
    """A session's task with what the cache needs of it: its key (None: no cache), how its
    stored value reads back (None for a missing or damaged entry) and how its result is kept
    (None: not kept)."""

    task: Task
    key: str | None
    from_json: Callable[[Json], Any]
    to_json: Callable[[Any], Json | None]


def _run_config(config: TrainConfig, seed: int) -> dict[str, Json]:
    """The configuration one run depends on: the session's, at its own seed."""
    kept = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("seeds", "seed")}
    return {**kept, "run_seed": seed}


def run_session(
    subjects: Mapping[str, Subject],
    data: TrainData,
    config: TrainConfig,
    profile: Profile,
    *,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
    cache: ResultCache | None = None,
) -> TrainSession:
    """Train every head of ``subjects`` (role -> subject) at every seed and measure the cluster
    weights, each task in a worker process; ``cache`` serves and keeps what cannot have changed
    (:mod:`headaudit.train.stored`)."""
    from headaudit.cache import train_key

    specs, recommended = head_specs(subjects)
    subject_of = {spec.role: subjects.get(spec.role) or subjects["candidate"] for spec in specs}
    digest = data.digest() if cache is not None else ""

    def key_of(kind: str, spec: HeadSpec, settings: dict[str, Json]) -> str | None:
        if cache is None:
            return None
        return train_key(kind, subject_of[spec.role], [list(x) for x in spec.settings], digest, settings, profile)

    runs_config = {**dataclasses.asdict(config), "seeds": list(config.seed_list)}
    kept = [
        _Kept(
            Task(
                f"training {spec.role} seed {seed}",
                functools.partial(run_one, spec, data, config, seed),
                functools.partial(_run_ended, spec, seed),
            ),
            key_of("run", spec, _run_config(config, seed)),
            functools.partial(run_from_json, role=spec.role),
            run_to_json,
        )
        for seed in config.seed_list
        for spec in specs
    ] + [
        _Kept(
            Task(
                f"cluster weight of {spec.role}",
                functools.partial(_cluster_measurement, subject_of[spec.role], spec, data, config, profile),
                _cluster_ended,
            ),
            key_of("cluster", spec, runs_config),
            cluster_from_json,
            cluster_to_json,
        )
        for spec in specs
    ]
    results: dict[int, Any] = {}
    if cache is not None:
        for index, entry in enumerate(kept):
            assert entry.key is not None
            found = entry.from_json(cache.training(entry.key))
            if found is not None:
                results[index] = found
        cache.training_reused += len(results)
        cache.training_tasks += len(kept)
    todo = [index for index in range(len(kept)) if index not in results]
    done = run_tasks([kept[index].task for index in todo], workers=workers, progress=progress)
    for index, result in zip(todo, done, strict=True):
        results[index] = result
        entry = kept[index]
        value = entry.to_json(result)
        if cache is not None and entry.key is not None and value is not None:
            cache.store_training(entry.key, value)
    ordered = [results[index] for index in range(len(kept))]
    count = len(config.seed_list) * len(specs)  # the runs come first, then a cluster weight per head
    cluster = dict(zip((spec.role for spec in specs), ordered[count:], strict=True))
    order = {spec.role: i for i, spec in enumerate(specs)}
    runs = sorted(ordered[:count], key=lambda r: (order[r.role], r.seed))
    return TrainSession(data, config, specs, tuple(runs), recommended, cluster)


def _run_ended(spec: HeadSpec, seed: int, how: Ended) -> SeedRun:
    return SeedRun(spec.role, seed, "error", f"the subject ended the worker process ({how.describe()})")


def _cluster_ended(how: Ended) -> Finding:
    return Finding("error", Msg("common.worker_ended", {"how": how.describe()}))
