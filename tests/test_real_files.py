"""The audit on heads written the way real files of this family are (issue "Truth on real files").

Each test loads a hand-made subject that differs from the references in one way a real
file does (plain-number loss terms, mixed precision, a float64 compatibility head, a fixed
temperature, a draft that does not work) and proves the verdict is the truthful one, with
the subject in either slot.
"""

from __future__ import annotations

import pytest
import torch

from headaudit.checks import REGISTRY
from headaudit.model import Report
from headaudit.profiles import active_profile
from headaudit.runner import run_audit
from tests.conftest import ROLES, LoadSubject, RunCheck

#: Every check that reads a loss term (its declaration names the loss function).
LOSS_READERS = tuple(c.id for c in REGISTRY if any("proto_loss_fn" in n for n in c.needs))


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("check_id", LOSS_READERS)
def test_plain_number_terms_are_values(
    check: RunCheck,
    subject: LoadSubject,
    reference_report: Report,
    swapped_report: Report,
    check_id: str,
    role: str,
) -> None:
    """A term returned as the number 0.0 is read as 0.0: no error, head_optimal.py's verdict."""
    got = check(check_id, subject("float_terms"), role)
    report = reference_report if role == "candidate" else swapped_report
    want = report.result(check_id, role)
    assert want is not None
    assert got.verdict != "error", got.summary("en")
    assert got.verdict == want.verdict, (got.summary("en"), want.summary("en"))


#: The checks whose tolerances mixed precision used to break, and their neighbours.
PRECISION_CHECKS = (
    "forward.contract",
    "forward.aggregation",
    "forward.similarity",
    "gate.sum-to-one",
    "attn.wiring",
    "shapes.global-3d",
    "shapes.permutation",
    "loss.cluster-nearest",
)
REDUCED = {
    "mixed_precision": "bfloat16",
    "mixed_precision:Float16": "float16",
    "mixed_precision:Bfloat16Params": "bfloat16",
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", sorted(REDUCED))
@pytest.mark.parametrize("check_id", PRECISION_CHECKS)
def test_mixed_precision_is_not_a_defect(
    check: RunCheck, subject: LoadSubject, reference_report: Report, check_id: str, name: str, role: str
) -> None:
    """head_optimal.py under autocast or in bfloat16 fails nothing it passes in float32, and
    the result names the dtype it was measured at."""
    got = check(check_id, subject(name), role)
    float32 = reference_report.result(check_id, "candidate")
    assert float32 is not None
    assert float32.verdict == "pass"
    assert got.verdict in ("pass", "warn"), got.summary("en")
    if check_id in PRECISION_CHECKS[:5] or REDUCED[name] in got.evidence.get("compared_at", []):  # as it runs itself
        assert REDUCED[name] in got.summary("en"), got.summary("en")
        assert REDUCED[name] in got.summary("zh")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("name", "check_id"),
    [
        ("mixed_precision:SimDot", "forward.similarity"),
        ("mixed_precision:AggMean", "forward.aggregation"),
        ("mixed_precision:GateUnnormalised", "gate.sum-to-one"),
        ("mixed_precision:SelfReadsInput", "attn.wiring"),
        ("mixed_precision:CutGraph", "forward.contract"),
    ],
)
def test_reduced_precision_still_catches_defects(
    check: RunCheck, subject: LoadSubject, name: str, check_id: str, role: str
) -> None:
    """The wider tolerance of a bfloat16 computation does not hide a wrong formula; the
    result names bfloat16 when the refuting comparison was computed in it (a value the head
    computed in float32, such as the prototypes it hands the attention, is refuted at float32)."""
    got = check(check_id, subject(name), role)
    assert got.verdict == "fail", got.summary("en")
    bad = got.evidence.get("counterexample")
    refuted_at = bad.get("precision") if isinstance(bad, dict) else None
    refuted_at = refuted_at or got.evidence["compared_at"][0]
    assert ("bfloat16" in got.summary("en")) == (refuted_at == "bfloat16"), (refuted_at, got.summary("en"))


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("check_id", ["compat.forward", "forward.contract"])
def test_a_float64_compatibility_head_keeps_the_interface(
    check: RunCheck, subject: LoadSubject, check_id: str, role: str
) -> None:
    """A compat ``Head`` in float64 returns head.py's arity, kinds and shapes: dtype is its own."""
    got = check(check_id, subject("compat_float64"), role)
    assert got.verdict == "pass", got.summary("en")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("name", "kept"),
    [("fixed_temperature", "registered buffer"), ("fixed_temperature:FrozenTemperature", "requires_grad")],
)
def test_a_fixed_temperature_is_a_choice(
    check: RunCheck, subject: LoadSubject, name: str, kept: str, role: str
) -> None:
    """A temperature kept fixed is warned about, with how it is kept; a detached one still fails."""
    got = check("forward.contract", subject(name), role)
    assert got.verdict == "warn", got.summary("en")
    assert kept in got.summary("en")
    assert check("forward.contract", subject("cut_graph"), role).verdict == "fail"


@pytest.mark.parametrize("draft", ["draft_no_self", "draft_plain_embeddings", "draft_cuda"])
def test_a_draft_that_is_not_a_working_head_gets_no_pass(subject: LoadSubject, draft: str) -> None:
    """In either slot every check that runs the head is error (with the subject's own reason)
    or n/a: never a verdict. The checks that read the source only judge the source."""
    if draft == "draft_cuda" and torch.cuda.is_available():
        pytest.skip("a working head where CUDA exists")
    loaded = subject(draft)
    report = run_audit({"baseline": loaded, "candidate": loaded}, REGISTRY, seed=0, profile=active_profile())
    reads_source = {c.id for c in REGISTRY if not c.runs_head}
    assert reads_source, "the static checks read the source only"
    assert all(r.message.id != "common.not_working" for r in report.results if r.check in reads_source)
    ran = [r for r in report.results if r.check not in reads_source]
    verdicts = {r.verdict for r in ran}
    assert verdicts <= {"error", "n/a"}, sorted((r.check, r.subject, r.verdict) for r in ran)
    reason = {"draft_no_self": "takes 3 positional arguments", "draft_plain_embeddings": "plain tensor attribute"}
    wanted = reason.get(draft, "CUDA")
    for role in ROLES:
        errors = [r for r in ran if r.subject == role and r.verdict == "error"]
        assert errors
        assert all(wanted in r.summary("en") for r in errors), [r.summary("en") for r in errors][:3]
