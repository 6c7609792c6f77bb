"""A session's tasks in the result cache: keys, and the JSON form of what they measured.

A training run of one head at one seed, and the cluster-weight measurement of one head, are
pure functions of what their key names (:func:`headaudit.cache.train_key`): headaudit's code
and the environment, the subject's files, head class, name maps and the settings it is
trained with, the data (a digest of its arrays), the training configuration and the seed(s).
The role is not in the key, as for every result: a head trained as the baseline is the same
run as the candidate. Two things are never stored: a run or a measurement that ended in
``error`` (it did not happen), and a run's seconds per step (a timing is not a function of
its inputs): a run served from the cache has none, and ``headaudit train`` says so.

Floats go through JSON's ``repr`` and come back bit for bit, so a section built from cached
runs is byte-identical to the one the runs gave.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from headaudit.checks._trains import TermTraining
from headaudit.messages import msg_from_dict
from headaudit.model import Finding, Json
from headaudit.train.checks import ClusterWeightMeasurement
from headaudit.train.loop import SeedRun

__all__ = ["cluster_from_json", "cluster_to_json", "run_from_json", "run_to_json"]


def run_to_json(run: SeedRun) -> Json | None:
    """What the cache keeps of a run (None: not kept), its role and timings left out."""
    if run.status == "error":
        return None
    kept = dataclasses.asdict(run)
    for name in ("role", "seconds_per_step", "cpu_seconds_per_step"):
        kept.pop(name)
    return kept


def run_from_json(value: Any, role: str) -> SeedRun | None:
    """The run kept as ``value``, in the slot ``role`` and untimed; None for a damaged entry."""
    try:
        return SeedRun(
            role=role,
            seed=int(value["seed"]),
            status=str(value["status"]),
            detail=str(value["detail"]),
            balanced_accuracy=tuple(float(x) for x in value["balanced_accuracy"]),
            macro_f1=tuple(float(x) for x in value["macro_f1"]),
            recall=tuple(tuple(float(x) for x in row) for row in value["recall"]),
            losses=tuple(float(x) for x in value["losses"]),
            same_class_cosine=_optional(value["same_class_cosine"]),
            other_class_cosine=_optional(value["other_class_cosine"]),
            seconds_per_step=None,
            cpu_seconds_per_step=None,
        )
    except (KeyError, TypeError, ValueError):
        return None


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)


def cluster_to_json(found: ClusterWeightMeasurement | Finding) -> Json | None:
    if isinstance(found, Finding):
        if found.verdict == "error":
            return None
        return {"finding": {"verdict": found.verdict, "message": found.message.to_dict()}}
    return {"measurement": dataclasses.asdict(found)}


def cluster_from_json(value: Any) -> ClusterWeightMeasurement | Finding | None:
    try:
        if "finding" in value:
            finding = value["finding"]
            return Finding(finding["verdict"], msg_from_dict(finding["message"]))
        kept = dict(value["measurement"])
        if set(kept) != {f.name for f in dataclasses.fields(ClusterWeightMeasurement)}:
            return None
        kept["training"] = tuple(TermTraining(**record) for record in kept["training"])
        return ClusterWeightMeasurement(**kept)
    except (KeyError, TypeError, ValueError):
        return None
