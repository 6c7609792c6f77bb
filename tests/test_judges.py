"""Verdict functions are pure: they are tested here on hand-made measurements.

Each check's ``judge`` turns a typed measurement into a verdict and a message; nothing in
it can look at a subject, a role or a file. These tests pin the rules each judge applies,
including the edge cases no subject reaches easily (no evidence at all, a tie at the
tolerance).
"""

from __future__ import annotations

import math

from headaudit.checks import by_id
from headaudit.checks._common import Layout
from headaudit.checks.contrastive import PairsMeasurement, PairViolation
from headaudit.checks.ema import IsolationMeasurement, StandardAtMomentum, StandardMeasurement
from headaudit.checks.gate import ConvexMeasurement, GateFit, SumMeasurement
from headaudit.checks.losses import ConflictMeasurement, PairStats, Table, relation


def _judge(check_id: str, measurement: object) -> tuple[str, str]:
    check = by_id(check_id)
    assert check is not None
    finding = check.judge(measurement)
    return finding.verdict, finding.message.id


def _pairs(**kwargs: object) -> PairsMeasurement:
    values: dict[str, object] = {
        "counterexample": None,
        "layouts": 3,
        "moves": 10,
        "same_class_moves": 4,
        "cross_class_moves": 6,
        "raises": 6,
        "largest_same_class_change": 0.0,
        "smallest_cross_class_change": 0.1,
        "largest_cross_class_change": 0.5,
        "largest_tolerance": 1e-14,
        "dtype": "float64",
    }
    values.update(kwargs)
    return PairsMeasurement(**values)  # type: ignore[arg-type]


def test_contrastive_pairs_rules() -> None:
    assert _judge("contrastive.pairs", _pairs()) == ("pass", "contrastive.pairs.pass")
    # a hinge that pushes pairs apart: no change for most, a raise for some, never a lowering
    assert _judge("contrastive.pairs", _pairs(raises=1))[0] == "pass"
    assert _judge("contrastive.pairs", _pairs(raises=0)) == ("fail", "contrastive.pairs.never_raised")
    assert _judge("contrastive.pairs", _pairs(cross_class_moves=0, raises=0))[0] == "error"  # nothing to judge
    bad = PairViolation("same-class", Layout(2, 2, (2, 0)), 0.4, 1e-14, (0, 1), (0, 0), 0.5)
    assert _judge("contrastive.pairs", _pairs(counterexample=bad)) == ("fail", "contrastive.pairs.same-class")


def _fit(**kwargs: object) -> GateFit:
    values: dict[str, object] = {
        "seed": 0,
        "num_classes": 2,
        "batch": 1,
        "dtype": "float32",
        "tokens": 6,
        "channels": 16,
        "token_residual": 1e-8,
        "token_tolerance": 3e-5,
        "min_weight": 0.1,
        "max_sum_deviation": 1e-7,
        "sum_tolerance": 3e-4,
        "condition": 3.0,
        "outside_share": 0.0,
        "outside_largest": 0.0,
        "input_explains": False,
    }
    values.update(kwargs)
    return GateFit(**values)  # type: ignore[arg-type]


def test_gate_rules() -> None:
    per_channel = _fit(token_residual=0.05)
    assert per_channel.per_channel
    assert not per_channel.per_token
    convex = ConvexMeasurement(None, 1, 6, 0, 1, 0.05, 0.1)
    assert _judge("gate.convex", convex) == ("pass", "gate.convex.pass_channel")
    leaves = _fit(token_residual=0.3, outside_share=0.4, outside_largest=0.5, input_explains=True)
    assert _judge("gate.convex", ConvexMeasurement(leaves, 1, 6, 0, 0, 0.3, -1.0)) == ("fail", "gate.convex.fail_input")
    assert _judge("gate.sum-to-one", SumMeasurement(per_channel)) == ("n/a", "gate.sum-to-one.na_channel")
    unnormalised = _fit(max_sum_deviation=0.5)
    assert _judge("gate.sum-to-one", SumMeasurement(_fit(), unnormalised, 3, 0.5))[0] == "fail"
    assert _judge("gate.sum-to-one", SumMeasurement(_fit(), None, 3, 1e-7))[0] == "pass"


def test_ema_rules() -> None:
    def at(m: float, to_ema: float, to_v: float) -> StandardAtMomentum:
        return StandardAtMomentum(m, to_ema, to_v, to_ema, 1e-5, True)

    weight_zero = StandardMeasurement((at(0.5, 0.4, 1e-8), at(0.9, 0.6, 1e-8)), {}, "float32")
    assert _judge("ema.standard", weight_zero) == ("fail", "ema.standard.fail_weight_zero")
    one_momentum = StandardMeasurement((at(0.9, 0.6, 1e-8),), {}, "float32")  # "whatever m" needs two momenta
    assert _judge("ema.standard", one_momentum) == ("fail", "ema.standard.fail")
    assert _judge("ema.standard", StandardMeasurement((at(0.9, 1e-7, 0.5),), {}, "float32"))[0] == "pass"
    isolated = IsolationMeasurement(1, False, 0.2, (), True, False)
    assert _judge("ema.isolation", isolated)[0] == "pass"
    noop = IsolationMeasurement(1, False, 0.0, (), True, False)
    assert _judge("ema.isolation", noop)[0] == "fail"  # an update that changes nothing is not isolated


def test_conflict_rules() -> None:
    assert relation(-0.2, -0.3, -0.1, 32) == "conflict"
    assert relation(-0.04, -0.1, -0.01, 32) == "decoupled"  # significant but below the effect size
    assert relation(0.2, 0.1, 0.3, 32) == "aligned"
    assert relation(-0.2, -0.3, 0.05, 32) == "decoupled"  # the interval crosses zero
    assert relation(-0.9, -1.0, -0.8, 31) == "inactive"  # too few states to say

    def table(rel: str) -> Table:
        pair = PairStats("cluster/separation", 32, -0.3, -0.4, -0.2, 1.0, rel)
        return Table("raised", 2.0, 32, (pair,))

    assert _judge("losses.conflicts", ConflictMeasurement((table("conflict"),), 0.05, 32))[0] == "fail"
    assert _judge("losses.conflicts", ConflictMeasurement((table("decoupled"),), 0.05, 32))[0] == "pass"
    assert _judge("losses.conflicts", ConflictMeasurement((table("inactive"),), 0.05, 32))[0] == "error"
    assert math.isnan(PairStats("a/b", 0, math.nan, math.nan, math.nan, math.nan, "inactive").mean_cos)
