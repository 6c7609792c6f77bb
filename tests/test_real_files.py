"""The audit on heads written the way real files of this family are (issue "Truth on real files").

Each test loads a hand-made subject that differs from the references in one way a real
file does (plain-number loss terms, mixed precision, a float64 compatibility head, a fixed
temperature, a draft that does not work) and proves the verdict is the truthful one, with
the subject in either slot.
"""

from __future__ import annotations

import pytest

from headaudit.checks import REGISTRY
from headaudit.model import Report
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
