"""Every check fails where it must and passes where it must.

The references give the conclusions CHECKS.md derives from BEHAVIOR.md; hand-made
subjects (tests/subjects) cover the verdicts neither reference reaches.
"""

from __future__ import annotations

import math

import pytest

from headaudit.checks import REGISTRY
from headaudit.model import Report

# (baseline head.py, candidate head_optimal.py), from CHECKS.md section 1.
EXPECTED = {
    "contrastive.pairs": ("fail", "pass"),
    "contrastive.value": ("fail", "pass"),
    "contrastive.tiny": ("fail", "pass"),
    "gate.convex": ("fail", "pass"),
    "gate.sum-to-one": ("n/a", "pass"),
    "ema.standard": ("fail", "pass"),
    "ema.unit-norm": ("fail", "fail"),
    "ema.initial-norm": ("fail", "fail"),
    "ema.isolation": ("pass", "pass"),
    "losses.conflicts": ("fail", "warn"),
}


def test_every_registered_check_has_an_expectation() -> None:
    assert {c.id for c in REGISTRY} == set(EXPECTED)


@pytest.mark.parametrize("check_id", sorted(EXPECTED))
def test_reference_verdicts_match_the_catalogue(reference_report: Report, check_id: str) -> None:
    for role, expected in zip(("baseline", "candidate"), EXPECTED[check_id], strict=False):
        result = reference_report.result(check_id, role)
        assert result is not None
        assert result.verdict == expected, (role, result.summary.en, result.evidence)


def _evidence(report: Report, check_id: str, role: str) -> dict:  # type: ignore[type-arg]
    result = report.result(check_id, role)
    assert result is not None
    return result.evidence  # type: ignore[no-any-return]


# --- evidence is the measured counterexample, not a canned sentence -----------------


def test_contrastive_pairs_names_a_same_class_pair(reference_report: Report) -> None:
    ev = _evidence(reference_report, "contrastive.pairs", "baseline")
    a, b = ev["pair_classes"]
    assert a == b
    assert abs(ev["loss_change"]) > 1e-3
    counts = ev["layout"]["counts"]
    assert max(counts) >= 2  # a class with two rows is the smallest counterexample
    assert sum(counts) == 2  # and Hypothesis shrank it to exactly that


def test_contrastive_value_reports_oracle_and_measurement(reference_report: Report) -> None:
    ev = _evidence(reference_report, "contrastive.value", "baseline")
    assert abs(ev["measured"] - ev["oracle"]) > 1e-6


def test_contrastive_tiny_reports_nan_and_the_raise_with_labels(reference_report: Report) -> None:
    cases = _evidence(reference_report, "contrastive.tiny", "baseline")["cases"]
    assert cases["n=0"]["value"] == "nan"
    assert cases["n=1"]["value"] == "nan"
    # head.py's separation raises when every other class has no prototype
    assert "raised" in cases["n=1"]["with_labels"]
    good = _evidence(reference_report, "contrastive.tiny", "candidate")["cases"]
    assert all(case["value"] == 0.0 and case["finite_gradient"] for case in good.values())


def test_ema_standard_shows_row_equals_normalized_value(reference_report: Report) -> None:
    per_m = _evidence(reference_report, "ema.standard", "baseline")["per_momentum"]
    assert set(per_m) == {"m=0.5", "m=0.9", "m=0.99"}
    for numbers in per_m.values():
        assert numbers["one_update_distance_to_normalize_v"] < 1e-5
        assert numbers["one_update_distance_to_ema"] > 1e-2


def test_ema_unit_norm_counterexamples(reference_report: Report) -> None:
    base = _evidence(reference_report, "ema.unit-norm", "baseline")
    assert base["norm"] < 1e-3
    assert base["steps"][-1] == "apply_momentum_updates()"
    assert sum(s.startswith("momentum_update(") for s in base["steps"]) == 2  # two updates cancel
    cand = _evidence(reference_report, "ema.unit-norm", "candidate")
    assert cand["norm"] < 1e-3
    assert cand["last_update"]["momentum"] == 0.5  # m*p = -(1-m)*normalize(v) needs m = 1/2 for unit p


def test_ema_initial_norm_reports_the_norm_range(reference_report: Report) -> None:
    for role in ("baseline", "candidate"):
        ev = _evidence(reference_report, "ema.initial-norm", role)
        assert 0.85 < ev["min_norm"] < ev["max_norm"] < 1.45
        assert ev["valid_rows"] == 35


def test_losses_conflicts_table(reference_report: Report) -> None:
    def row(role: str, pair: str) -> dict:  # type: ignore[type-arg]
        table = _evidence(reference_report, "losses.conflicts", role)["table"]
        return next(r for r in table if r["pair"] == pair)

    original = row("baseline", "diversity / contrastive")
    assert original["states"] >= 32
    assert original["mean_cos"] > 0
    assert original["conflict_share"] == 0
    fixed = row("candidate", "diversity / contrastive")
    assert abs(fixed["mean_cos"]) < 0.2  # decoupled: near zero
    assert len(_evidence(reference_report, "losses.conflicts", "candidate")["table"]) == 6


# --- the verdicts the references do not reach ---------------------------------------


def test_gate_sum_to_one_fails_for_unnormalised_weights(hand_made, run_check) -> None:  # type: ignore[no-untyped-def]
    subject = hand_made("gate_unnormalised")
    assert run_check("gate.convex", subject).verdict == "pass"  # in the span, positive weights
    outcome = run_check("gate.sum-to-one", subject)
    assert outcome.verdict == "fail"
    assert outcome.evidence["max_sum_deviation"] > 1e-2


def test_ema_checks_pass_on_a_correct_ema(hand_made, run_check) -> None:  # type: ignore[no-untyped-def]
    subject = hand_made("ema_safe")
    for check_id in ("ema.standard", "ema.unit-norm", "ema.initial-norm", "ema.isolation"):
        outcome = run_check(check_id, subject)
        assert outcome.verdict == "pass", (check_id, outcome.summary.en)
    assert run_check("ema.unit-norm", subject).examples >= 100  # it searched, it did not skip


def test_ema_isolation_fails_when_other_rows_change(hand_made, run_check) -> None:  # type: ignore[no-untyped-def]
    outcome = run_check("ema.isolation", hand_made("ema_leaky"))
    assert outcome.verdict == "fail"
    assert outcome.evidence["other_rows_changed"]


def test_losses_conflicts_passes_when_terms_align(hand_made, run_check) -> None:  # type: ignore[no-untyped-def]
    outcome = run_check("losses.conflicts", hand_made("loss_aligned", "candidate"))
    assert outcome.verdict == "pass", outcome.summary.en
    assert all(math.isclose(r["mean_cos"], 1.0, abs_tol=1e-6) for r in outcome.evidence["table"])


def test_losses_conflicts_premise_holds_for_an_opposed_baseline(hand_made, run_check) -> None:  # type: ignore[no-untyped-def]
    outcome = run_check("losses.conflicts", hand_made("loss_opposed", "baseline"))
    assert outcome.verdict == "pass", outcome.summary.en
    row = next(r for r in outcome.evidence["table"] if r["pair"] == "diversity / contrastive")
    assert row["conflict_share"] == 1.0


def test_missing_attribute_is_not_applicable(hand_made, run_check) -> None:  # type: ignore[no-untyped-def]
    outcome = run_check("gate.convex", hand_made("no_branch_norms"))
    assert outcome.verdict == "n/a"
    assert outcome.evidence["missing"] == ["mixed_attn.norm1", "mixed_attn.norm2", "mixed_attn.norm3"]


def test_subject_that_raises_is_an_error_with_its_message(hand_made, run_check) -> None:  # type: ignore[no-untyped-def]
    outcome = run_check("gate.convex", hand_made("forward_raises"))
    assert outcome.verdict == "error"
    assert "forward is broken on purpose" in outcome.summary.en


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_property_searches_do_not_depend_on_the_seed(references, run_check, seed: int) -> None:  # type: ignore[no-untyped-def]
    for check_id in ("contrastive.pairs", "contrastive.value", "ema.unit-norm"):
        got = tuple(run_check(check_id, references[role], seed).verdict for role in ("baseline", "candidate"))
        assert got == EXPECTED[check_id], (check_id, seed)


def test_only_reproduces_the_full_run(reference_report: Report, references, run_check) -> None:  # type: ignore[no-untyped-def]
    """Each (check, subject) starts from the same seed, so `--only ID` repeats the full run's result."""
    for check_id in ("contrastive.value", "gate.convex", "ema.unit-norm", "losses.conflicts"):
        for role in ("baseline", "candidate"):
            alone = run_check(check_id, references[role])
            full = reference_report.result(check_id, role)
            assert full is not None
            assert (alone.verdict, alone.summary, alone.evidence) == (full.verdict, full.summary, full.evidence)


def test_contrastive_pairs_catches_invalid_rows_and_attraction(hand_made, run_check) -> None:  # type: ignore[no-untyped-def]
    outcome = run_check("contrastive.pairs", hand_made("contrastive_variants:IgnoresValidMask"))
    assert outcome.verdict == "fail"
    assert "invalid_rows" in outcome.evidence, outcome.summary.en
    attracts = hand_made("contrastive_variants:Attracts")
    outcome = run_check("contrastive.pairs", attracts)
    assert outcome.verdict == "fail"
    assert "did not raise the loss" in outcome.summary.en
    assert run_check("contrastive.value", attracts).verdict == "fail"
