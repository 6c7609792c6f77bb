"""Every check fails where it must and passes where it must, with the subject in either slot.

The references give the conclusions CHECKS.md derives from BEHAVIOR.md; hand-made subjects
(tests/subjects) cover the verdicts neither reference reaches. Each case runs in both the
baseline and the candidate slot and must get the same verdict there.
"""

from __future__ import annotations

from typing import Any

import pytest

from headaudit.checks import REGISTRY
from headaudit.model import Report
from tests.conftest import ROLES, LoadSubject, RunCheck
from tests.expectations import EXPECTED, HAND_MADE, TIMED, WITHOUT_FAIL


def test_every_registered_check_has_an_expectation() -> None:
    assert {c.id for c in REGISTRY} == set(EXPECTED)


def test_every_check_has_a_must_fail_and_a_must_pass_subject() -> None:
    for check_id, on_references in EXPECTED.items():
        verdicts = set(on_references) | {v for _, c, v in HAND_MADE if c == check_id}
        if check_id in WITHOUT_FAIL:  # a measurement, or a device this machine lacks: the reason is data
            continue
        assert {"pass", "fail"} <= verdicts, check_id


@pytest.mark.parametrize("check_id", sorted(EXPECTED))
def test_reference_verdicts_match_the_catalogue(reference_report: Report, check_id: str) -> None:
    for role, expected in zip(ROLES, EXPECTED[check_id], strict=True):
        result = reference_report.result(check_id, role)
        assert result is not None
        assert result.verdict == expected, (role, result.summary("en"), result.evidence)


@pytest.mark.parametrize("check_id", sorted(EXPECTED))
def test_verdicts_and_evidence_do_not_depend_on_the_slot(
    reference_report: Report, swapped_report: Report, check_id: str
) -> None:
    """The same file gets the same verdict, message and evidence as baseline or candidate."""
    for role, other in (("baseline", "candidate"), ("candidate", "baseline")):
        a, b = reference_report.result(check_id, role), swapped_report.result(check_id, other)
        assert a is not None
        assert b is not None
        if check_id in TIMED:  # times differ between any two runs; the verdict and its sentence must not
            assert (a.verdict, a.message.id) == (b.verdict, b.message.id)
            continue
        assert (a.verdict, a.message, a.evidence) == (b.verdict, b.message, b.evidence)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("name", "check_id", "verdict"), HAND_MADE)
def test_hand_made_subjects_in_both_slots(
    subject: LoadSubject, check: RunCheck, name: str, check_id: str, verdict: str, role: str
) -> None:
    result = check(check_id, subject(name), role)
    assert result.verdict == verdict, (result.summary("en"), result.evidence)


def _evidence(report: Report, check_id: str, role: str) -> Any:
    result = report.result(check_id, role)
    assert result is not None
    return result.evidence


# --- evidence is the measured counterexample, not a canned sentence -----------------


def test_contrastive_pairs_names_a_same_class_pair(reference_report: Report) -> None:
    bad = _evidence(reference_report, "contrastive.pairs", "baseline")["counterexample"]
    assert bad["kind"] == "same-class"
    assert bad["classes"][0] == bad["classes"][1]
    assert abs(bad["change"]) > 1e3 * bad["tolerance"]
    assert sum(bad["layout"]["counts"]) == 2  # the smallest counterexample: one pair


def test_contrastive_pairs_measures_raises_and_tolerance(reference_report: Report) -> None:
    ev = _evidence(reference_report, "contrastive.pairs", "candidate")
    assert ev["raises"] == ev["cross_class_moves"] > 0
    assert ev["largest_same_class_change"] <= ev["largest_tolerance"]


def test_contrastive_value_reports_oracle_and_measurement(reference_report: Report) -> None:
    bad = _evidence(reference_report, "contrastive.value", "baseline")["counterexample"]
    assert abs(bad["measured"] - bad["oracle"]) > bad["tolerance"]


def test_contrastive_tiny_reports_nan_and_the_raise_with_labels(reference_report: Report) -> None:
    cases = {c["name"]: c for c in _evidence(reference_report, "contrastive.tiny", "baseline")["cases"]}
    assert cases["n=0"]["value"] == "nan"
    assert cases["n=1"]["value"] == "nan"
    assert "IndexError" in cases["n=1"]["with_labels"] or "RuntimeError" in cases["n=1"]["with_labels"]
    good = _evidence(reference_report, "contrastive.tiny", "candidate")["cases"]
    assert all(c["value"] == 0.0 and c["finite_gradient"] for c in good)


def test_gate_convex_names_the_block_input(reference_report: Report) -> None:
    bad = _evidence(reference_report, "gate.convex", "baseline")["counterexample"]
    assert bad["token_residual"] > bad["token_tolerance"]
    assert bad["outside_share"] > 0
    assert bad["input_explains"] is True
    assert "the block's input" in reference_report.result("gate.convex", "baseline").summary("en")  # type: ignore[union-attr]


def test_ema_standard_shows_row_equals_normalized_value(reference_report: Report) -> None:
    rows = _evidence(reference_report, "ema.standard", "baseline")["per_momentum"]
    assert sorted(r["momentum"] for r in rows) == [0.1, 0.5, 0.9, 0.99]  # read back from the head
    for row in rows:
        assert row["one_update_distance_to_normalize_v"] <= row["tolerance"]
        assert row["one_update_distance_to_ema"] > 1e-2


def test_ema_unit_norm_counterexamples(reference_report: Report) -> None:
    base = _evidence(reference_report, "ema.unit-norm", "baseline")["counterexample"]
    assert base["norm"] < 1e-3
    assert base["steps"][-1] == "apply_momentum_updates()"
    assert sum(s.startswith("momentum_update(") for s in base["steps"]) == 2  # two updates cancel
    cand = _evidence(reference_report, "ema.unit-norm", "candidate")["counterexample"]
    assert cand["norm"] < 1e-3
    assert cand["momentum"] == 0.5  # m*p = -(1-m)*normalize(v) needs m = 1/2 for a unit row


def test_ema_initial_norm_measures_the_first_step_weight(reference_report: Report) -> None:
    for role in ROLES:
        ev = _evidence(reference_report, "ema.initial-norm", role)
        assert 0.85 < ev["min_norm"] < ev["max_norm"] < 1.45
        assert ev["valid_rows"] == 35
    # head.py's update gives the old row weight 0, whatever its norm; head_optimal's weighs it by m|p|.
    assert abs(_evidence(reference_report, "ema.initial-norm", "baseline")["first_update_old_row_weight"]) < 1e-6
    assert _evidence(reference_report, "ema.initial-norm", "candidate")["first_update_old_row_weight"] > 0.9


def _pair(report: Report, role: str, table: str, pair: str) -> dict[str, Any]:
    tables = {t["label"]: t for t in _evidence(report, "losses.conflicts", role)["tables"]}
    return next(p for p in tables[table]["pairs"] if p["pair"] == pair)


def test_losses_conflicts_tables(reference_report: Report) -> None:
    for role in ROLES:
        tables = _evidence(reference_report, "losses.conflicts", role)["tables"]
        assert [t["label"] for t in tables] == ["own", "raised"]
        assert [t["margin"] for t in tables] == [0.3, 2.0]  # read back from the built heads
        for pair in ("cluster/separation", "separation/diversity"):
            assert _pair(reference_report, role, "raised", pair)["relation"] == "conflict"
    original = _pair(reference_report, "baseline", "raised", "diversity/contrastive")
    assert original["relation"] == "aligned"
    assert original["ci_low"] > 0
    fixed = _pair(reference_report, "candidate", "raised", "diversity/contrastive")
    assert fixed["relation"] == "decoupled"
    assert fixed["ci_low"] < 0 < fixed["ci_high"]


# --- a subject's exception, a missing name and a refused setting -----------------------


@pytest.mark.parametrize("role", ROLES)
def test_a_subject_exception_is_an_error_with_its_message(subject: LoadSubject, check: RunCheck, role: str) -> None:
    result = check("gate.convex", subject("forward_raises"), role)
    assert result.verdict == "error"
    assert "forward is broken on purpose" in result.summary("en")
    raising = subject("small_classes_raise")
    for check_id in ("contrastive.pairs", "contrastive.value", "gate.convex"):
        result = check(check_id, raising, role)
        assert result.verdict == "error", (check_id, result.summary("en"))
        assert "needs at least 3 classes" in result.summary("en")


@pytest.mark.parametrize("role", ROLES)
def test_missing_attribute_is_not_applicable(subject: LoadSubject, check: RunCheck, role: str) -> None:
    result = check("gate.convex", subject("no_branch_norms"), role)
    assert result.verdict == "n/a"
    assert [m["name"] for m in result.evidence["missing"]] == [
        "mixed_attn.norm1",
        "mixed_attn.norm2",
        "mixed_attn.norm3",
    ]


def test_only_reproduces_the_full_run(reference_report: Report, references: dict[str, Any], check: RunCheck) -> None:
    """Each (check, subject) starts from the same seed, so `--only ID` repeats the full run's result."""
    for check_id in ("contrastive.value", "gate.convex", "ema.unit-norm", "losses.conflicts"):
        for role in ROLES:
            alone = check(check_id, references[role], role)
            full = reference_report.result(check_id, role)
            assert full is not None
            assert (alone.verdict, alone.message, alone.evidence) == (full.verdict, full.message, full.evidence)
