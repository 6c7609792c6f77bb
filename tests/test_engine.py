"""The engine's own contracts: record validation, evidence freezing, verdict order, profiles."""

from __future__ import annotations

import re
from typing import Any

import pytest

from headaudit.checks import REGISTRY
from headaudit.claims import CLAIMS
from headaudit.errors import CheckDefinitionError, ConfigError
from headaudit.messages import Msg, render
from headaudit.model import Finding, freeze_evidence, worst
from headaudit.profiles import PROFILES, active_profile, scaled
from headaudit.registry import Check, build_registry


def _noop(_ctx: Any) -> int:
    return 0


def _judge(_m: int) -> Finding:
    return Finding("pass", Msg("common.check_failed", {"detail": "x"}))


def _record(check_id: str = "ema.standard", **kwargs: Any) -> Check[int]:
    return Check(check_id, kwargs.pop("catalogue", 1), _noop, _judge, **kwargs)


@pytest.mark.parametrize("bad_id", ["NoDot", "gate.", "Gate.convex", "gate.con vex", "gate..x"])
def test_bad_ids_fail_at_construction(bad_id: str) -> None:
    with pytest.raises(CheckDefinitionError, match=repr(bad_id).replace(".", r"\.")):
        _record(bad_id)


def test_other_bad_records() -> None:
    with pytest.raises(CheckDefinitionError, match="catalogue"):
        _record(catalogue=9)
    with pytest.raises(CheckDefinitionError, match="missing from a message catalogue"):
        _record("area.unknown-check")
    with pytest.raises(CheckDefinitionError, match=re.escape("need 'a.b[c]'")):
        _record(needs=("a.b[c]",))
    with pytest.raises(CheckDefinitionError, match="setting"):
        _record(settings=("Bad-Name",))
    one = _record()
    with pytest.raises(CheckDefinitionError, match="defined twice"):
        build_registry([one], [one])


def test_needs_and_settings_are_parsed() -> None:
    record = _record(needs=("a.b", "?c.d", "e.f|proto_loss_fn[x]"), settings=("momentum", "?margin"))
    assert [(n.alternatives, n.optional) for n in record.parsed] == [
        (("a.b",), False),
        (("c.d",), True),
        (("e.f", "proto_loss_fn[x]"), False),
    ]
    assert record.declared == {"a.b", "c.d", "e.f", "proto_loss_fn[x]"}
    assert record.required_settings == ("momentum",)
    assert record.setting_names == ("momentum", "margin")


def test_findings_reject_unknown_verdicts() -> None:
    with pytest.raises(ValueError, match="unknown verdict"):
        Finding("maybe", Msg("x"))  # type: ignore[arg-type]


def test_catalogue_one_checks_each_belong_to_exactly_one_claim() -> None:
    for check in REGISTRY:
        owners = {c.ref for c in CLAIMS if check.id in c.checks}
        if check.catalogue == 1:
            assert len(owners) == 1, (check.id, owners)


def test_freeze_evidence() -> None:
    frozen = freeze_evidence({"a": float("nan"), "b": (1.23456789, -0.0), "c": {1: float("-inf")}})
    assert frozen == {"a": "nan", "b": [1.23457, 0.0], "c": {"1": "-inf"}}


def test_messages_render_frozen_values_and_lists() -> None:
    msg = Msg("contrastive.tiny.case_value", {"case": "n=0", "value": "nan"})
    assert render(msg, "en") == "n=0: nan"
    nested = Msg(
        "common.missing",
        {"names": [Msg("common.missing_name", {"name": "a"}), Msg("common.missing_name", {"name": "b"})]},
    )
    assert render(nested, "en") == "the head lacks `a`, `b`, which this check needs"
    assert "`a`、`b`" in render(nested, "zh")
    with pytest.raises(KeyError, match=re.escape("no.such.id")):
        render(Msg("no.such.id"), "en")


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
