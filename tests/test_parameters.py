"""A different parameter name is not a broken head (issue 25, item 6).

``tests/subjects/targets_param.py`` holds head_fixed.py's head twice, once taking its labels
as ``labels`` (BEHAVIOR.md's name) and once as ``targets``. Unmapped, the checks that pass
the labels by keyword are ``n/a`` naming the parameter and suggesting ``targets``, and the
others measure the head; with ``--map forward.labels=targets`` (or ``[tool.headaudit.map]``)
the renamed head gets the original's verdicts. The static checks read the source only, so a
head whose forward raises in the working-head step still gets them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from headaudit.checks import REGISTRY
from headaudit.config import find_config
from headaudit.errors import ConfigError
from headaudit.names import NameMap, missing_parameter, parse_map
from tests.conftest import ROLES, LoadSubject, RunCheck

_LABELS, _TARGETS = "targets_param:LabelsHead", "targets_param:TargetsHead"
_MAP = parse_map(["forward.labels=targets"])
#: The checks that call forward with labels by keyword; each declares ``forward.labels``.
_NEED_LABELS = ("forward.contract", "edges.small-batches", "shapes.bad-input", "host.loss-dict")
#: Checks that call forward without labels (or read the source): measured whatever the name.
_NO_LABELS = ("gate.convex", "shapes.batch-independence", "static.host-syncs")


def test_a_parameter_maps_by_its_bare_name_or_as_forward_dot_name(tmp_path: Path) -> None:
    assert _MAP == (("forward.labels", "forward.targets"),)
    assert parse_map(["forward.labels=forward.targets"]) == _MAP
    assert NameMap(_MAP).apply("forward.labels") == "forward.targets"
    assert NameMap((("forward", "forward_train"),)).apply("forward.labels") == "forward.labels"  # exact only
    with pytest.raises(ConfigError, match=r"forward\.labels=targets"):
        parse_map(["forward.labels=proto_manager.targets"])
    (tmp_path / "pyproject.toml").write_text('[tool.headaudit.map]\n"forward.labels" = "targets"\n')
    assert find_config(tmp_path).maps == _MAP


def test_the_suggestion_is_the_likest_name_else_the_one_in_the_labels_place() -> None:
    assert missing_parameter("labels", ["pool_img_features", "img_features", "label"]) == "forward.label"
    assert missing_parameter("labels", ["pool_img_features", "img_features", "y", "mask"]) == "forward.y"
    assert missing_parameter("labels", ["pool_img_features", "img_features"]) is None  # nothing in its place
    assert missing_parameter("labels", ["x", "y", "pool_img_features"]) is None  # another of its parameters
    assert missing_parameter("tgt", ["pool_img_features", "img_features", "y"], canonical="labels") == "forward.y"


def test_the_checks_that_pass_labels_by_keyword_declare_them() -> None:
    declaring = {c.id for c in REGISTRY if "forward.labels" in c.declared}
    assert declaring == set(_NEED_LABELS)
    static = {"static.host-syncs", "static.class-loops", "static.data-writes"}
    assert {c.id for c in REGISTRY if not c.runs_head} == static


@pytest.mark.parametrize("role", ROLES)
def test_unmapped_the_label_checks_are_na_naming_the_parameter(
    subject: LoadSubject, check: RunCheck, role: str
) -> None:
    renamed = subject(_TARGETS)
    for check_id in _NEED_LABELS:
        got = check(check_id, renamed, role)
        assert got.verdict == "n/a", (check_id, got.summary("en"))
        missing = got.evidence["missing"]
        assert missing == [{"name": "forward.labels", "looked_for": "forward.labels", "suggestion": "forward.targets"}]
        assert "`labels`" in got.summary("en")
        assert "forward.labels=targets" in got.summary("en")
        assert "targets" in got.summary("zh")
    original = subject(_LABELS)
    for check_id in _NO_LABELS:  # measured, not held up by the name: the original's verdicts
        got, want = check(check_id, renamed, role), check(check_id, original, role)
        assert got.verdict not in ("n/a", "error"), (check_id, got.summary("en"))
        assert got.verdict == want.verdict, (check_id, got.summary("en"), want.summary("en"))


@pytest.mark.parametrize("role", ROLES)
def test_mapped_the_renamed_head_gets_the_original_verdicts(subject: LoadSubject, check: RunCheck, role: str) -> None:
    renamed = subject(_TARGETS, _MAP)
    original = subject(_LABELS, _MAP)  # the same map serves both slots: the original keeps its own name
    for check_id in ("forward.contract", "edges.small-batches", "gate.convex"):
        got, want = check(check_id, renamed, role), check(check_id, original, role)
        assert want.verdict == "pass", (check_id, want.summary("en"))
        assert got.verdict == want.verdict, (check_id, got.summary("en"))
    bad = check("shapes.bad-input", renamed, role)  # measured under the head's own name
    labelled = next(c for c in bad.evidence["cases"] if c["case"] == "label-range")
    assert labelled["argument"] == ["targets"], labelled


@pytest.mark.parametrize("role", ROLES)
def test_a_forward_that_raises_still_gets_its_static_verdicts(subject: LoadSubject, check: RunCheck, role: str) -> None:
    broken = subject("forward_raises:ReadsThenRaises")
    ran = check("gate.convex", broken, role)
    assert ran.verdict == "error", ran.summary("en")
    assert ran.message.id == "common.not_working", ran.summary("en")
    syncs = check("static.host-syncs", broken, role)
    assert syncs.verdict == "fail", syncs.summary("en")  # the host read before the raise, from the source
    assert ".item()" in syncs.summary("en")
    for check_id in ("static.class-loops", "static.data-writes"):
        got = check(check_id, broken, role)
        assert got.verdict == "pass", (check_id, got.summary("en"))
