"""Tolerances follow the computation of the compared value (issue 25, item 1).

The rule lives in :mod:`headaudit.precision`: a comparison's tolerance comes from the
lowest precision on the path that produced the compared value. The unit tests pin the
provenance it records; the subject tests (``tests/subjects/precision_paths.py``, both
slots) show a bfloat16 tensor off the compared path never loosens a comparison, a float32
step on it always does, and, driven by the registry, that every check comparing a value
gives a head with unused bfloat16 work its float32 twin's verdict and tolerances.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from headaudit import precision
from headaudit.cache import ResultCache
from headaudit.checks import REGISTRY
from headaudit.model import Report, Result
from headaudit.precision import computed_in, derived, observing, recording, tolerance
from headaudit.profiles import active_profile
from headaudit.runner import run_audit
from tests.conftest import ROLES, LoadSubject, RunCheck

F32_EPS = torch.finfo(torch.float32).eps


def _subject_call(fn: Any, *args: Any) -> Any:
    with observing():  # as call_subject does
        return fn(*args)


def test_an_unused_bfloat16_tensor_does_not_count() -> None:
    x = torch.randn(4, 3)
    with recording():
        y = _subject_call(lambda a: (a.to(torch.bfloat16).sum(), (a * 2).sum())[1], x)
        assert computed_in(y) == torch.float32
        assert tolerance(y) == pytest.approx(64 * F32_EPS)


def test_a_float32_step_bounds_a_float64_value() -> None:
    x = torch.randn(5, 3, dtype=torch.float64)
    with recording():
        gram = _subject_call(lambda a: (a.float() @ a.float().t()).double().mean(), x)
        assert gram.dtype == torch.float64
        assert computed_in(gram) == torch.float32
        assert computed_in(gram, sources=(x,)) == torch.float32
        plain = _subject_call(lambda a: (a @ a.t()).mean(), x)
        assert computed_in(plain, sources=(x,)) == torch.float64


def test_only_what_follows_the_sources_counts() -> None:
    """An autocast region upstream of the logits is shared by the loss and its oracle."""
    x = torch.randn(4, 8)
    w = torch.randn(8, 3)
    labels = torch.tensor([0, 1, 2, 0])
    with recording():

        def head(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                hidden = a @ w
            logits = hidden.float() * 2.0
            wrong = torch.nn.functional.cross_entropy(logits.to(torch.bfloat16), labels)
            return logits, torch.nn.functional.cross_entropy(logits, labels), wrong

        logits, ce, wrong = _subject_call(head, x)
        assert computed_in(logits) == torch.bfloat16  # its own path went through the region
        assert computed_in(ce) == torch.bfloat16
        assert computed_in(ce, sources=(logits,)) == torch.float32
        assert computed_in(wrong, sources=(logits,)) == torch.bfloat16  # a bfloat16 step after the logits


def test_in_place_writes_and_checker_copies_keep_provenance() -> None:
    with recording():

        def write(buf: torch.Tensor) -> torch.Tensor:
            buf[0] = torch.ones(3, dtype=torch.bfloat16).float()
            return buf

        buf = _subject_call(write, torch.zeros(2, 3))
        assert computed_in(buf) == torch.bfloat16
        copy = buf.detach()  # the checker's own copy: a leaf, unless told where it came from
        assert computed_in(copy) == torch.float32
        assert computed_in(derived(copy, buf)) == torch.bfloat16
    assert computed_in(buf) == torch.float32  # outside a check: the tensor's own dtype


def test_the_rule_per_dtype() -> None:
    assert tolerance(torch.float64, 2.0) == pytest.approx(64 * torch.finfo(torch.float64).eps * 2)
    assert tolerance(torch.bfloat16, 3.0) == pytest.approx(precision.REDUCED_ROUNDINGS * 2**-7 * 3)
    assert tolerance(torch.float16) == pytest.approx(precision.REDUCED_ROUNDINGS * 2**-10)


# --- subjects, both slots ------------------------------------------------------------


def _counterexample(result: Result) -> dict[str, Any]:
    bad = result.evidence.get("counterexample") if isinstance(result.evidence, dict) else None
    assert isinstance(bad, dict), result.evidence
    return bad


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", ["UnusedBfloat16", "AutocastAttention"])
def test_bfloat16_elsewhere_does_not_hide_a_wrong_total(
    check: RunCheck, subject: LoadSubject, name: str, role: str
) -> None:
    """A total 2 % off fails as its float32 twin does, at float32's tolerance (once
    accepted: the bfloat16 work widened every tolerance of the check)."""
    twin = check("forward.contract", subject("precision_paths"), role)
    got = check("forward.contract", subject(f"precision_paths:{name}"), role)
    assert twin.verdict == "fail", twin.summary("en")
    assert got.verdict == "fail", got.summary("en")
    want, bad = _counterexample(twin), _counterexample(got)
    assert (bad["kind"], bad["precision"]) == (want["kind"], "float32")
    assert bad["tolerance"] == pytest.approx(want["tolerance"], rel=0.05)  # the same rule at a magnitude
    assert bad["tolerance"] < 1e-3  # bfloat16's would be about 0.3 here
    assert "bfloat16" not in got.summary("en")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("check_id", ["contrastive.pairs", "contrastive.value"])
def test_a_float32_term_in_a_float64_head_is_compared_at_float32(
    check: RunCheck, subject: LoadSubject, check_id: str, role: str
) -> None:
    """The term's Gram matrix is float32 and cast back: float32's rounding, not float64's."""
    got = check(check_id, subject("precision_paths:ContrastiveInFloat32"), role)
    assert got.verdict == "pass", got.summary("en")
    assert got.evidence["compared_at"] == ["float32"]
    plain = check(check_id, subject("float64_head"), role)
    assert plain.verdict == "pass", plain.summary("en")
    assert "float64" in plain.evidence["compared_at"]


@pytest.mark.parametrize("role", ROLES)
def test_autocast_still_gets_its_reduced_tolerance(check: RunCheck, subject: LoadSubject, role: str) -> None:
    """Where the head computed the compared values in bfloat16, they are compared at bfloat16."""
    got = check("forward.similarity", subject("mixed_precision"), role)
    assert got.verdict == "pass", got.summary("en")
    assert got.evidence["compared_at"][0] == "bfloat16"
    assert "bfloat16" in got.summary("en")


# --- every check that compares a value: unused bfloat16 work changes nothing ---------------


#: Checks that never take a tolerance: they count operators, trace graph breaks, time steps,
#: read the source or compare interfaces (names, keys, signatures). The extras audit leaves
#: them out (about a third of its time); the twin test asserts that none of them takes a
#: tolerance on the plain twin, in either slot.
EXACT = frozenset(
    c.id for c in REGISTRY if c.group == "performance" or c.id.startswith(("compile.", "static.", "compat."))
)


@pytest.fixture(scope="session")
def extras_report(subject: LoadSubject, tmp_path_factory: pytest.TempPathFactory) -> Report:
    """Every check that may take a tolerance on head_optimal.py with bfloat16 extras, in
    both slots (one audit, with a cache: each result is measured in one slot and served to
    the other, as ``report`` does for one file in two slots).

    Its float32 twin is head_optimal.py itself, audited once per session already: in the
    candidate slot by ``reference_report``, in the baseline slot by ``swapped_report``.
    """
    extras = subject("precision_paths:Bfloat16Extras")
    checks = [c for c in REGISTRY if c.id not in EXACT]
    cache = ResultCache(tmp_path_factory.mktemp("extras-cache"))
    return run_audit({"baseline": extras, "candidate": extras}, checks, seed=0, profile=active_profile(), cache=cache)


def _tolerances(value: object, path: str = "") -> dict[str, object]:
    """Every tolerance in an evidence tree, and the precisions compared at, by path."""
    found: dict[str, object] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}"
            if "tol" in str(key) or key in ("compared_at", "precision"):
                found[here] = item
            found.update(_tolerances(item, here))
    elif isinstance(value, (list, tuple)):
        for n, item in enumerate(value):
            found.update(_tolerances(item, f"{path}[{n}]"))
    return found


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("check_id", [c.id for c in REGISTRY])
def test_unused_bfloat16_work_changes_no_comparison(
    extras_report: Report, reference_report: Report, swapped_report: Report, check_id: str, role: str
) -> None:
    """A check that takes a tolerance (its evidence lists ``compared_at``) gives the head with
    bfloat16 extras its float32 twin's verdict at the same tolerances, in either slot."""
    plain = (reference_report if role == "candidate" else swapped_report).result(check_id, role)
    assert plain is not None
    if check_id in EXACT:
        assert "compared_at" not in plain.evidence  # and on the extras: the coverage test
        return
    extras = extras_report.result(check_id, role)
    assert extras is not None
    compares = any("compared_at" in r.evidence for r in (plain, extras) if isinstance(r.evidence, dict))
    if not compares:
        return  # this check takes no tolerance on these heads (see the coverage test below)
    assert extras.verdict == plain.verdict, (extras.summary("en"), plain.summary("en"))
    assert _tolerances(extras.evidence) == _tolerances(plain.evidence)
    assert "bfloat16" not in str(extras.evidence.get("compared_at"))


def test_the_twin_test_covers_the_comparing_checks(extras_report: Report) -> None:
    """The registry-driven test above is not vacuous: the checks known to compare values do."""
    results = extras_report.results
    comparing = {r.check for r in results if isinstance(r.evidence, dict) and "compared_at" in r.evidence}
    known = {
        "forward.contract",
        "forward.similarity",
        "forward.aggregation",
        "contrastive.value",
        "contrastive.pairs",
        "attn.wiring",
        "gate.sum-to-one",
        "loss.separation-value",
        "shapes.permutation",
    }
    assert known <= comparing, sorted(known - comparing)
