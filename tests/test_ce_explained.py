"""forward.contract on a head that weights or smooths its cross-entropy (issue 25, item 7).

The total is compared with the uncertainty weighting of the head's own reported terms; a
``ce_loss`` that is not the plain cross-entropy of the returned logits is explained by
measurement (label smoothing solved for, class weights read from the loss or fitted) and
named, or fails. Here: the explanation on logits whose cross-entropy torch computed, the
judge's verdicts and sentences, and the headlines on the subjects of
``tests/subjects/ce_variants.py`` (their verdicts in both slots are in
``tests/expectations.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from headaudit.checks import by_id
from headaudit.checks.forward import (
    CeExplanation,
    ContractMeasurement,
    ContractViolation,
    GradientRecord,
    _CeProbe,
    _explain_ce,
)
from tests.conftest import LoadSubject, RunCheck

LABELS = [0, 1, 2, 0, 0, 3]  # four classes present, class 0 three times
CLASSES = 5  # class 4 absent
TOL = 1e-4

CrossEntropy = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _probes(ce: CrossEntropy, batches: int = 7) -> list[_CeProbe]:
    """Batches of float32 logits with the same labels, and the head's cross-entropy of each."""
    gen = torch.Generator().manual_seed(5)
    labels = torch.tensor(LABELS)
    out = []
    for _ in range(batches):
        logits = torch.randn(len(LABELS), CLASSES, generator=gen) * 3
        out.append(_CeProbe(logits.double().numpy(), float(ce(logits, labels)), TOL))
    return out


def _explain(ce: CrossEntropy, method: np.ndarray | None = None) -> CeExplanation | None:
    return _explain_ce(_probes(ce), LABELS, CLASSES, method)


_BALANCED = torch.tensor([1.0 / 3, 1.0, 1.0, 1.0, 7.0])  # class 4 absent: its weight has no effect


def test_label_smoothing_is_solved_for_and_named() -> None:
    found = _explain(lambda z, y: F.cross_entropy(z, y, label_smoothing=0.1))
    assert found is not None
    assert (found.kind, found.source) == ("smoothing", "solved")
    assert found.smoothing == pytest.approx(0.1, abs=1e-5)
    assert found.largest_difference <= found.tolerance


def test_class_weights_are_read_from_the_loss_method() -> None:
    found = _explain(lambda z, y: F.cross_entropy(z, y, weight=_BALANCED), _BALANCED.double().numpy())
    assert found is not None
    assert (found.kind, found.source) == ("weights", "method")
    assert found.weights[:4] == pytest.approx([1.0 / 3, 1.0, 1.0, 1.0])
    assert found.weights[4] is None  # absent from the batch: not determined, not shown


def test_class_weights_are_fitted_when_no_method_gives_them() -> None:
    other = np.array([1.0, 1.0, 1.0, 1.0, 1.0]) * 0.5  # a method whose weights do not reproduce it
    for method in (None, other):
        found = _explain(lambda z, y: F.cross_entropy(z, y, weight=_BALANCED), method)
        assert found is not None
        assert (found.kind, found.source) == ("weights", "fitted")
        shown = np.array(found.weights[:4], dtype=float)
        assert shown / shown[1] == pytest.approx([1.0 / 3, 1.0, 1.0, 1.0], rel=1e-4)
        assert shown.mean() == pytest.approx(1.0)


def test_per_sample_weights_averaged_over_the_batch() -> None:
    """``(cross_entropy(reduction="none") * w[labels]).mean()``: not normalised by the weights."""

    def per_sample(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (F.cross_entropy(z, y, reduction="none") * _BALANCED[y]).mean()

    found = _explain(per_sample, _BALANCED.double().numpy())
    assert found is not None
    assert (found.kind, found.source, found.reduction) == ("weights", "method", "mean")
    found = _explain(per_sample)
    assert found is not None
    assert (found.kind, found.source, found.reduction) == ("weights", "fitted", "mean")
    assert found.weights[:4] == pytest.approx([1.0 / 3, 1.0, 1.0, 1.0], rel=1e-4)  # the scale is determined


def test_weights_and_smoothing_together_from_the_method() -> None:
    found = _explain(
        lambda z, y: F.cross_entropy(z, y, weight=_BALANCED, label_smoothing=0.05), _BALANCED.double().numpy()
    )
    assert found is not None
    assert (found.kind, found.source) == ("weights-smoothing", "method")
    assert found.smoothing == pytest.approx(0.05, abs=1e-5)
    assert found.weights[4] == pytest.approx(7.0)  # with smoothing every class's weight matters


@pytest.mark.parametrize(
    "wrong",
    [
        lambda z, y: F.cross_entropy(z / 10.0, y),  # the logits before the temperature
        lambda z, y: F.cross_entropy(z, y) * 1.1,  # a scaled cross-entropy is no class weighting
        lambda z, y: F.cross_entropy(z, (y + 1) % CLASSES),  # other labels
        lambda z, y: F.cross_entropy(z, y, reduction="sum") / CLASSES,
    ],
)
def test_a_cross_entropy_nothing_explains_gets_no_explanation(wrong: CrossEntropy) -> None:
    assert _explain(wrong, _BALANCED.double().numpy()) is None


# --- the judge ---------------------------------------------------------------------------------


def _judge(m: ContractMeasurement) -> tuple[str, str, str, str]:
    check = by_id("forward.contract")
    assert check is not None
    finding = check.judge(m)
    return finding.verdict, finding.message.id, finding.message.text("en"), finding.message.text("zh")


_GRADIENT = GradientRecord("float64", 36, 3, (1e-4,), 0.01, (), {}, (0.0, 0.0))


def _measurement(**kwargs: object) -> ContractMeasurement:
    return ContractMeasurement(None, 8, 3, True, 1e-7, 1e-7, _GRADIENT, **kwargs)  # type: ignore[arg-type]


def test_an_explained_cross_entropy_is_a_warning_naming_what_explains_it() -> None:
    smoothing = CeExplanation("smoothing", "solved", (0, 1), (), 0.1, 0.9, 1.0, 6, 1e-7, 1e-4)
    verdict, msg_id, en, zh = _judge(_measurement(ce_explained=smoothing, ce_explained_cases=8))
    assert (verdict, msg_id) == ("warn", "forward.contract.ce-smoothing")
    assert "label smoothing 0.1" in en
    assert "0.1" in zh
    weights = CeExplanation("weights", "fitted", (0, 1, 0), (0.5, 1.5, None), None, 0.9, 1.0, 5, 1e-7, 1e-4)
    verdict, msg_id, en, _ = _judge(_measurement(ce_explained=weights, ce_explained_cases=3))
    assert (verdict, msg_id) == ("warn", "forward.contract.ce-weights")
    assert "weights 0.5, 1.5, -" in en
    assert "fitted" in en
    two_values = _measurement(ce_explained=smoothing, ce_explained_cases=8)
    two_values = ContractMeasurement(**{**two_values.__dict__, "loss_dict": False, "arity": 2})
    assert "no loss dict" in _judge(two_values)[2]


def test_a_gradient_defect_outranks_an_explained_cross_entropy() -> None:
    smoothing = CeExplanation("smoothing", "solved", (0, 1), (), 0.1, 0.9, 1.0, 6, 1e-7, 1e-4)
    cut = GradientRecord("float64", 36, 3, (1e-4,), 0.01, ("temperature",), {"temperature": (0.0, -0.2)}, (0.0, 0.0))
    m = ContractMeasurement(None, 8, 3, True, 1e-7, 1e-7, cut, ce_explained=smoothing, ce_explained_cases=8)
    assert _judge(m)[:2] == ("fail", "forward.contract.gradient")


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("total-own", "the uncertainty weighting of the terms it reports itself"),
        ("ce", "reports ce_loss = 1.2"),
        ("total", "no loss dict"),
    ],
)
def test_the_headline_names_the_comparison_that_failed(kind: str, needle: str) -> None:
    bad = ContractViolation(kind, "train_labels", 3, 4, (0.3, -0.4), measured=1.2, expected=4.4, tolerance=1e-4)
    verdict, msg_id, en, _ = _judge(ContractMeasurement(bad, 1, 3, True, 0.0, 0.0))
    assert (verdict, msg_id) == ("fail", f"forward.contract.{kind}")
    assert needle in en


# --- the subjects ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "msg_id", "needles"),
    [
        (
            "ce_variants:ClassBalanced",
            "forward.contract.ce-weights",
            ("weights 0.6024, 1.199, 1.199", "_get_class_weight"),
        ),
        ("ce_variants:Smoothed", "forward.contract.ce-smoothing", ("label smoothing 0.1,",)),
        ("ce_variants:PreTemperature", "forward.contract.ce", ("reports ce_loss",)),
        ("ce_variants:TotalOff", "forward.contract.total-own", ("the terms it reports itself",)),
    ],
)
def test_subjects_get_the_headline_of_what_they_do(
    check: RunCheck, subject: LoadSubject, name: str, msg_id: str, needles: tuple[str, ...]
) -> None:
    result = check("forward.contract", subject(name))
    assert result.message.id == msg_id, result.summary("en")
    for needle in needles:
        assert needle in result.summary("en")
