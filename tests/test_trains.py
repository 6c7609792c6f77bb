"""Issue 25, item 2: a loss term that cannot train is a defect, in every check that reads one.

The checks that read a loss term are found from the registry (they require a name under
``proto_loss_fn``); each one has a case below: a subject derived from head_fixed.py with the
term it reads detached (``tests/subjects/untrainable_terms.py``) must ``fail`` it naming that
term, in both slots. The untouched twin is head_fixed.py itself, whose audit in both slots has
no fail but the known ones (``tests/test_head_fixed.py``); the references keep their verdicts
(``tests/expectations.py``), and here their evidence must show every probed term trains or is
at rest (the audit the other tests share, so this costs no run). ``losses.conflicts`` fails on
all three by design, so its must-pass twin is ``Aligned``. The probe itself
(``headaudit/checks/_trains.py``) is tested on plain functions first.
"""

from __future__ import annotations

import math

import pytest
import torch

from headaudit.checks import REGISTRY
from headaudit.checks._trains import READERS, TrainingLog, probe, untrained
from headaudit.model import Report
from tests.conftest import ROLES, LoadSubject, RunCheck

_SUBJECT = "untrainable_terms"

#: check id -> the subjects that must fail it, each with the key (or method) of the term the
#: finding must name
CASES: dict[str, tuple[tuple[str, str], ...]] = {
    "contrastive.pairs": (("DetachedContrastive", "compute_contrastive_loss"),),
    "contrastive.value": (
        ("DetachedContrastive", "compute_contrastive_loss"),
        ("NoGradContrastive", "compute_contrastive_loss"),
    ),
    "contrastive.tiny": (
        ("DetachedContrastive", "compute_contrastive_loss"),
        ("NoGradContrastive", "compute_contrastive_loss"),
    ),
    "losses.conflicts": (("AlignedDetached", "[contrastive_loss]"),),
    "edges.cluster-empty": (("DetachedCluster", "[cluster_loss]"),),
    "edges.small-batches": (("DetachedCluster", "[cluster_loss]"), ("DetachedContrastive", "[contrastive_loss]")),
    "forward.contract": (("DetachedContrastive", "[contrastive_loss]"), ("DetachedDiversity", "[div_loss]")),
    "loss.terms-sum": (("DetachedSeparation", "[sep_loss]"), ("DetachedDiversity", "[div_loss]")),
    "loss.cluster-nearest": (("DetachedCluster", "[cluster_loss]"),),
    "loss.cluster-scale": (("DetachedCluster", "[cluster_loss]"),),
    "loss.separation-value": (("DetachedSeparation", "[sep_loss]"),),
    "loss.diversity-value": (("DetachedDiversity", "[div_loss]"),),
    "weights.absent-classes": (("DetachedCluster", "[cluster_loss]"),),
    "weights.cb-vs-inverse": (("DetachedCluster", "[cluster_loss]"),),
}


def _reads_a_loss_term(needs: tuple[str, ...]) -> bool:
    """A check reads a loss term when it requires a name under ``proto_loss_fn`` (the loss, a
    key of its dict, a term method); an optional one (``?proto_loss_fn``) is a host or
    wrapper reading the structure, judged by its own gradient check (``trainer.step``)."""
    return any(n.startswith("proto_loss_fn") for n in needs)


def _records(evidence: object) -> list[dict[str, object]]:
    if not isinstance(evidence, dict):
        return []
    found = evidence.get("training")
    if found is None and isinstance(evidence.get("gradient"), dict):  # forward.contract: its gradient part
        found = evidence["gradient"].get("terms")
    return list(found or [])


def test_every_check_that_reads_a_loss_term_is_probed_and_tested() -> None:
    readers = {c.id for c in REGISTRY if _reads_a_loss_term(c.needs)}
    assert readers == set(READERS)
    assert set(CASES) == readers


_FAILING = [(cid, cls, term) for cid, failing in CASES.items() for cls, term in failing]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("check_id", "cls", "term"), _FAILING)
def test_an_untrainable_term_fails_the_check_naming_it(
    check: RunCheck, subject: LoadSubject, check_id: str, cls: str, term: str, role: str
) -> None:
    result = check(check_id, subject(f"{_SUBJECT}:{cls}"), role)
    assert result.verdict == "fail", result.summary("en")
    assert result.message.id in ("trains.no-gradient", "trains.disagrees"), result.summary("en")
    assert term in str(result.message.params["term"])
    assert any(r["outcome"] == "no-gradient" and term in str(r["term"]) for r in _records(result.evidence))


@pytest.mark.parametrize("check_id", READERS)
def test_the_references_terms_train_or_rest(reference_report: Report, check_id: str) -> None:
    """Where a reference passes a check, every term it probed trains or is at rest there."""
    for role in ROLES:
        result = reference_report.result(check_id, role)
        assert result is not None
        records = _records(result.evidence)
        assert all(r["outcome"] in ("trains", "inactive", "unmeasured") for r in records), records
        if result.verdict == "pass":
            assert any(r["outcome"] == "trains" for r in records), records


@pytest.mark.parametrize("role", ROLES)
def test_the_aligned_twin_passes_conflicts_and_its_terms_train(
    check: RunCheck, subject: LoadSubject, role: str
) -> None:
    result = check("losses.conflicts", subject(f"{_SUBJECT}:Aligned"), role)
    assert result.verdict == "pass", result.summary("en")
    assert {r["outcome"] for r in _records(result.evidence)} == {"trains"}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("cls", "check_id"),
    [
        ("MaskedMinCluster", "loss.cluster-nearest"),
        ("MaskedMinCluster", "loss.cluster-scale"),
        ("MaskedMinSeparation", "loss.separation-value"),
        ("NoGradContrastive", "forward.contract"),
        ("MaskedMinCluster", "losses.conflicts"),
        ("MaskedMinSeparation", "losses.conflicts"),
    ],
)
def test_a_masked_minimum_or_no_grad_term_fails(
    check: RunCheck, subject: LoadSubject, cls: str, check_id: str, role: str
) -> None:
    """A masked minimum that is 0 whatever the distances: the value checks see a term that does
    not move where their oracle says it is positive (the cluster-scale value comparison alone
    would pass a 0 factor as a 0 term)."""
    result = check(check_id, subject(f"{_SUBJECT}:{cls}"), role)
    assert result.verdict == "fail", result.summary("en")
    if check_id in ("loss.cluster-scale", "losses.conflicts"):  # the values alone need not refute it
        assert "identically-zero" in {r["outcome"] for r in _records(result.evidence)}
    if check_id == "losses.conflicts":  # its pairs with the term would only be "inactive"
        assert result.message.id == "trains.identically-zero", result.summary("en")


# --- the probe on plain functions ----------------------------------------------------------------


def _run(term: object, x: torch.Tensor, active: bool = False) -> str:
    leaf = x.clone().double().requires_grad_(True)

    def evaluate() -> dict[str, object]:
        return {"t": term(leaf)}  # type: ignore[operator]

    (record,) = probe(evaluate, [("x", [leaf])], torch.Generator().manual_seed(0), active={"t": active})
    return record.outcome


_X = torch.tensor([0.3, -0.7, 1.1, 0.2])


@pytest.mark.parametrize(
    ("term", "active", "outcome"),
    [
        (lambda x: (x**2).sum(), False, "trains"),
        (lambda x: (x**2).sum().detach(), False, "no-gradient"),
        (lambda x: torch.no_grad()(lambda: (x**2).sum())(), False, "no-gradient"),
        (lambda x: (x * torch.zeros(4)).min(), True, "identically-zero"),
        (lambda x: (x * torch.zeros(4)).min(), False, "inactive"),
        (lambda x: torch.relu(x - 5.0).sum(), False, "inactive"),  # a hinge at rest: said, not failed
        (lambda x: torch.relu(x - 5.0).sum() + 1.0, True, "constant"),
        (lambda x: x.sum() + (x.detach() ** 3).sum(), False, "disagrees"),  # half the graph cut
        (lambda x: 0.0, False, "inactive"),  # a plain number where nothing is measured
        # a detached hinge exactly at its kink: the value moves one way, no graph reaches x
        (lambda x: torch.relu(x - _X.double()).sum().detach(), False, "no-gradient"),
        # the same hinge with its graph: autograd's 0 at the kink is a subgradient, at rest
        (lambda x: torch.relu(x - _X.double()).sum(), False, "inactive"),
        # a right value whose gradient is NaN (sqrt at 0) trains nothing
        (lambda x: (x**2).sum() + torch.sqrt((x - x.detach()).sum()), False, "disagrees"),
    ],
)
def test_probe_outcomes(term: object, active: bool, outcome: str) -> None:
    assert _run(term, _X, active) == outcome


def test_probe_restores_the_inputs_and_a_failure_names_the_term() -> None:
    leaf = _X.clone().double().requires_grad_(True)
    before = leaf.detach().clone()
    records = probe(
        lambda: {"a": leaf.sum(), "b": (leaf**2).sum().detach()}, [("x", [leaf])], torch.Generator().manual_seed(1)
    )
    assert torch.equal(leaf.detach(), before)
    finding = untrained(records)
    assert finding is not None
    assert finding.verdict == "fail"
    assert finding.message.params["term"] == "b"
    assert math.isfinite(float(finding.message.params["numeric"]))
    assert untrained([r for r in records if r.term == "a"]) is None


def test_log_keeps_a_decided_term_and_reopens_an_inactive_one() -> None:
    leaf = _X.clone().double().requires_grad_(True)
    gen = torch.Generator().manual_seed(2)
    log = TrainingLog()
    log.add(probe(lambda: {"t": torch.relu(leaf - 5.0).sum()}, [("x", [leaf])], gen))
    assert log.wants()
    log.add(probe(lambda: {"t": (leaf**2).sum().detach()}, [("x", [leaf])], gen))
    log.add(probe(lambda: {"t": (leaf**2).sum()}, [("x", [leaf])], gen))  # decided: stays failed
    assert not log.wants()
    assert [r.outcome for r in log.records()] == ["no-gradient"]


@pytest.mark.parametrize("role", ROLES)
def test_conflicts_report_inactive_pairs_beside_the_conflicts(check: RunCheck, subject: LoadSubject, role: str) -> None:
    result = check("losses.conflicts", subject(f"{_SUBJECT}:NeverDiverse"), role)
    assert result.verdict == "fail", result.summary("en")
    assert result.message.id == "losses.conflicts.fail_inactive"
    assert set(result.message.params["inactive"]) == {
        "cluster/diversity",
        "separation/diversity",
        "diversity/contrastive",
    }
    assert {r["term"]: r["outcome"] for r in _records(result.evidence)}["proto_loss_fn[div_loss]"] == "inactive"
