"""The engine's own contracts: record validation, evidence freezing, verdict order, profiles."""

from __future__ import annotations

import pytest

from headaudit.checks import REGISTRY
from headaudit.claims import CLAIMS
from headaudit.errors import CheckDefinitionError, ConfigError
from headaudit.model import Outcome, Text, freeze_evidence, worst
from headaudit.profiles import PROFILES, active_profile, scaled
from headaudit.registry import Check, build_registry

T = Text("a", "甲")


def _noop(_ctx: object) -> Outcome:
    return Outcome("pass", T)


@pytest.mark.parametrize("bad_id", ["NoDot", "gate.", "Gate.convex", "gate.con vex", "gate..x"])
def test_bad_ids_fail_at_construction(bad_id: str) -> None:
    with pytest.raises(CheckDefinitionError, match=repr(bad_id).replace(".", r"\.")):
        Check(bad_id, 1, T, T, _noop)


def test_other_bad_records() -> None:
    with pytest.raises(CheckDefinitionError, match="catalogue"):
        Check("a.b", 9, T, T, _noop)
    with pytest.raises(CheckDefinitionError, match="both en and zh"):
        Check("a.b", 1, Text("x", ""), T, _noop)
    one = Check("a.b", 1, T, T, _noop)
    with pytest.raises(CheckDefinitionError, match="defined twice"):
        build_registry([one], [one])


def test_outcome_rejects_unknown_verdicts() -> None:
    with pytest.raises(ValueError, match="unknown verdict"):
        Outcome("maybe", T)  # type: ignore[arg-type]


def test_every_check_belongs_to_exactly_one_claim() -> None:
    for check in REGISTRY:
        owners = [c.ref for c in CLAIMS if check.id in c.checks]
        assert len(owners) == 1, (check.id, owners)


def test_freeze_evidence() -> None:
    frozen = freeze_evidence({"a": float("nan"), "b": (1.23456789, -0.0), "c": {1: float("-inf")}})
    assert frozen == {"a": "nan", "b": [1.23457, 0.0], "c": {"1": "-inf"}}


def test_worst_order() -> None:
    assert worst(["pass", "n/a"]) == "pass"
    assert worst(["pass", "warn", "fail"]) == "fail"
    assert worst(["fail", "error"]) == "error"
    assert worst([]) == "n/a"


def test_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    assert PROFILES["ci"].derandomize
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "thorough")
    assert active_profile().name == "thorough"
    assert scaled(active_profile(), 10) == 80
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "nope")
    with pytest.raises(ConfigError, match="'nope'"):
        active_profile()


def test_public_api_is_importable() -> None:
    import headaudit

    for name in headaudit.__all__:
        assert getattr(headaudit, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = headaudit.nope
