"""The component contracts (CHECKS.md 3b): their evidence, their judges, names, and mutants.

Verdicts on the references and the hand-made subjects, in both slots, are in
``tests/expectations.py`` (run by ``tests/test_checks.py``). Here: the measured numbers the
verdicts rest on, the interface record, name maps, the judges on hand-made measurements,
and, as a fast guard, one catalogue mutant per contract noticed by that contract and every
equivalent rewrite left alone (the whole catalogue is ``tests/mutation/test_kill.py``).
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest

from headaudit.checks import REGISTRY, by_id
from headaudit.checks._common import Layout
from headaudit.checks.attn import Fusion, WiringMeasurement, WiringViolation
from headaudit.checks.forward import AggregationMeasurement, ContractMeasurement, GradientRecord
from headaudit.checks.loss import DiversityMeasurement, ScaleMeasurement, ScaleViolation
from headaudit.checks.manager import ExpandMeasurement
from headaudit.model import Finding, Report
from headaudit.subjects import Subject, load_subject
from tests.conftest import ROLES, LoadSubject, RunCheck
from tests.mutation.catalogue import EQUIVALENTS, MUTANTS, apply

CONTRACTS = [c.id for c in REGISTRY if c.group == "contracts"]
REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "head_optimal.py"


def _evidence(report: Report, check_id: str, role: str) -> Any:
    result = report.result(check_id, role)
    assert result is not None
    return result.evidence


def test_the_eleven_contracts_are_registered_in_their_group() -> None:
    assert sorted(CONTRACTS) == sorted(
        [
            "forward.similarity",
            "forward.aggregation",
            "forward.contract",
            "loss.terms-sum",
            "loss.cluster-nearest",
            "loss.cluster-scale",
            "loss.separation-value",
            "loss.diversity-value",
            "attn.wiring",
            "manager.layout",
            "manager.expand",
        ]
    )
    for check_id in CONTRACTS:
        check = by_id(check_id)
        assert check is not None
        assert (check.catalogue, check.group, check.search) == (3, "contracts", True)


# --- evidence: the numbers the verdicts rest on ----------------------------------------------


def test_cluster_scale_reports_head_py_factor(reference_report: Report) -> None:
    original = _evidence(reference_report, "loss.cluster-scale", "baseline")
    assert original["factors"] == pytest.approx({"1": 1.0, "2": 2**-0.5, "4": 0.5}, rel=1e-3)
    assert original["exponent"] == pytest.approx(-0.5, abs=1e-3)
    assert original["weightings"] == ["plain"]  # head.py takes no use_class_balanced
    fixed = _evidence(reference_report, "loss.cluster-scale", "candidate")
    assert fixed["factors"] == pytest.approx({"1": 1.0, "2": 1.0, "4": 1.0}, rel=1e-3)
    assert fixed["weightings"] == ["class-balanced", "plain"]


def test_separation_reports_head_py_raise_where_undefined(reference_report: Report) -> None:
    original = _evidence(reference_report, "loss.separation-value", "baseline")["edge_cases"]
    assert "min()" in original["one-class"]  # the raise, quoted
    assert original["empty-between"] == "oracle"
    fixed = _evidence(reference_report, "loss.separation-value", "candidate")["edge_cases"]
    assert fixed == {"one-class": "0", "empty-between": "oracle"}
    result = reference_report.result("loss.separation-value", "baseline")
    assert result is not None
    assert "raises" in result.summary("en")


def test_attn_wiring_states_head_py_gate_mixes_the_input(reference_report: Report) -> None:
    original = _evidence(reference_report, "attn.wiring", "baseline")
    assert original["fusion"]["kind"] == "per-channel"
    assert original["fusion"]["input_explains"] is True
    assert original["fusion"]["outside_share"] > 0.05
    result = reference_report.result("attn.wiring", "baseline")
    assert result is not None
    assert "block's input" in result.summary("en")
    fixed = _evidence(reference_report, "attn.wiring", "candidate")
    assert fixed["fusion"]["kind"] == "per-token"
    assert fixed["fusion"]["residual"] < 1e-5
    assert fixed["head_counts"] == {"cross": 2, "self": 2, "third": 1}
    assert fixed["largest_difference"] < fixed["tolerance"] / 10


def test_forward_contract_gradient_is_measured_in_float64(reference_report: Report) -> None:
    for role in ROLES:
        gradient = _evidence(reference_report, "forward.contract", role)["gradient"]
        assert gradient["dtype"] == "float64"
        assert gradient["wrong"] == []
        assert gradient["fresh_log_sigmas"] == [0.0, 0.0]
        assert gradient["parameters"] == 36


def test_the_interface_record(reference_report: Report) -> None:
    original = _evidence(reference_report, "forward.contract", "baseline")["interface"]
    fixed = _evidence(reference_report, "forward.contract", "candidate")["interface"]
    names = [p["name"] for p in original["constructor"]]
    assert names[:4] == ["num_classes", "emb_dim", "num_heads", "img_feat_dim"]
    assert "var_threshold" in names
    assert {p["name"]: p["default"] for p in fixed["constructor"]}["contrastive_scale"] == 0.05
    assert "var_threshold" not in [p["name"] for p in fixed["constructor"]]
    assert original["loss_keys"] is None
    assert fixed["loss_keys"] == sorted(
        ["ce_loss", "cluster_loss", "sep_loss", "div_loss", "contrastive_loss", "proto_loss", "total_loss"]
    )
    assert len(original["forward"]["train_labels"]["tuple"]) == 2
    assert len(fixed["forward"]["eval"]["tuple"]) == 3
    assert fixed["forward"]["eval"]["tuple"][2] == {"dict": {}}
    assert fixed["forward_features"]["tuple"][3]["tensor"] == [4, 8]  # the projected features
    assert list(fixed["parameters"]) == sorted(fixed["parameters"])
    assert fixed["parameters"]["mixed_attn.light_attn.in_proj_weight"] == [24, 8]
    assert original["buffers"]["proto_manager.momentum_cache"] == {"shape": [9, 8], "dtype": "float32"}
    text = json.dumps(original) + json.dumps(fixed)
    assert not re.search(r"0x[0-9a-f]{6,}", text)  # no memory addresses


def test_the_interface_is_stable_across_runs(references: dict[str, Subject], check: RunCheck) -> None:
    first = check("forward.contract", references["candidate"]).evidence["interface"]
    again = check("forward.contract", references["candidate"], "baseline").evidence["interface"]
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)


def test_the_report_section(reference_report: Report) -> None:
    from headaudit.render import render_markdown

    for lang, heading in (("en", "## Component contracts"), ("zh", "## 组件契约")):
        md = render_markdown(reference_report, lang)
        section = md.split(heading)[1].split("\n## ")[0]
        for check_id in CONTRACTS:
            assert f"| `{check_id}`" in section  # one row per contract
            assert f"#### `{check_id}`" in section  # and its block
        assert "`mixed_attn.local_self_attn.in_proj_weight`" in section  # the interface's differences
    md = render_markdown(reference_report, "en")
    assert md.index("## Findings the original report missed") < md.index("## Component contracts")


# --- names: a renamed part is n/a, and passes once mapped ----------------------------------------

_MAPS = (
    ("mixed_attn.light_attn", "mixed_attn.third_attn"),
    ("proto_loss_fn[sep_loss]", "proto_loss_fn[separation_loss]"),
    ("proto_manager.expand_prototype", "proto_manager.add_prototype"),
)


@pytest.mark.parametrize("role", ROLES)
def test_renamed_parts_pass_once_mapped(subject: LoadSubject, check: RunCheck, role: str) -> None:
    plain = check("manager.expand", subject("renamed_parts"), role)
    assert plain.evidence["missing"][0]["suggestion"] == "proto_manager.add_prototype"
    mapped = subject("renamed_parts", _MAPS)
    for check_id in ("attn.wiring", "loss.separation-value", "manager.expand", "loss.terms-sum"):
        result = check(check_id, mapped, role)
        assert result.verdict == "pass", (check_id, result.summary("en"))
    assert "separation_loss" in check("loss.terms-sum", mapped, role).evidence["scaled_terms"]  # mapped, scaled


# --- judges on hand-made measurements ------------------------------------------------------------


def _judge_finding(check_id: str, measurement: object) -> Finding:
    found = by_id(check_id)
    assert found is not None
    return found.judge(measurement)


def _judge(check_id: str, measurement: object) -> tuple[str, str]:
    finding = _judge_finding(check_id, measurement)
    return finding.verdict, finding.message.id


def _scale(**kwargs: object) -> ScaleMeasurement:
    values: dict[str, object] = {
        "counterexample": None,
        "cases": 4,
        "factors": {"1": 1.0, "2": 1.0, "4": 1.0},
        "exponent": 0.0,
        "weightings": ("plain",),
        "tolerance": 1e-4,
    }
    values.update(kwargs)
    return ScaleMeasurement(**values)  # type: ignore[arg-type]


def test_cluster_scale_rules() -> None:
    assert _judge("loss.cluster-scale", _scale()) == ("pass", "loss.cluster-scale.pass")
    shrinking = _scale(factors={"1": 1.0, "2": 0.7071, "4": 0.5}, exponent=-0.5)
    assert _judge("loss.cluster-scale", shrinking) == ("warn", "loss.cluster-scale.warn")
    within = _scale(factors={"1": 1.0, "2": 1.00005, "4": 0.99995})
    assert _judge("loss.cluster-scale", within)[0] == "pass"  # a factor within tolerance of 1
    bad = ScaleViolation("ratios", "plain", 3, (1, 3, 2), (0.33, 0.11, 0.17), (0.4, 0.2, 0.3))
    assert _judge("loss.cluster-scale", _scale(counterexample=bad)) == ("fail", "loss.cluster-scale.ratios")
    assert _judge("loss.cluster-scale", _scale(factors={}))[0] == "error"  # nothing measured
    absent = ScaleViolation(
        "absent", "plain", 3, (1, 3, 0), (0.001, 0.0006, 0.0), (0.0015, 0.0009, 0.0), tolerance=5e-7, absent=(2,)
    )
    found = _judge_finding("loss.cluster-scale", _scale(counterexample=absent))
    assert (found.verdict, found.message.id) == ("fail", "loss.cluster-scale.absent")
    assert found.message.params["absent"] == [2]
    # the absent-class part is stated in the evidence: measured, not exposed, or what the call raised
    assert _judge_finding("loss.cluster-scale", _scale(absent_batches=6)).message.params["absent"].id == (
        "loss.cluster-scale.absent-measured"
    )
    assert _judge_finding("loss.cluster-scale", _scale()).message.params["absent"].id == (
        "loss.cluster-scale.absent-unmeasured"
    )
    raised = _judge_finding("loss.cluster-scale", _scale(weight_error="TypeError: needs labels"))
    assert (raised.verdict, raised.message.params["absent"].id) == ("pass", "loss.cluster-scale.absent-raised")


def _wiring(fusion: Fusion | None, **kwargs: object) -> WiringMeasurement:
    values: dict[str, object] = {
        "counterexample": None,
        "unavailable": None,
        "cases": 6,
        "stages": ("queries",),
        "largest_difference": 1e-7,
        "tolerance": 1e-4,
        "dtype": "float32",
        "fusion": fusion,
    }
    values.update(kwargs)
    return WiringMeasurement(**values)  # type: ignore[arg-type]


def test_attn_wiring_rules() -> None:
    token = Fusion("per-token", 3, 1e-7, 0.0, False)
    assert _judge("attn.wiring", _wiring(token)) == ("pass", "attn.wiring.pass")
    channel = Fusion("per-channel", 8, 0.3, 0.4, True)
    assert _judge("attn.wiring", _wiring(channel)) == ("pass", "attn.wiring.pass_gate_input")
    plain = Fusion("per-channel", 8, 0.3, 0.0, False)
    assert _judge("attn.wiring", _wiring(plain)) == ("pass", "attn.wiring.pass_gate_channel")
    bad = WiringViolation("self-input-0", "differs", Layout(2, 2, (1, 1)), 1, 1, 1.3, 1e-4)
    verdict, message = _judge("attn.wiring", _wiring(token, counterexample=bad))
    assert (verdict, message) == ("fail", "attn.wiring.fail")
    unavailable = {"part": "ffn", "found": "3 nn.Linear", "expected": "Linear -> GELU -> Linear"}
    assert _judge("attn.wiring", _wiring(None, unavailable=unavailable)) == ("n/a", "attn.wiring.unavailable")
    assert _judge("attn.wiring", _wiring(None, cases=0))[0] == "error"


def _gradient(**kwargs: object) -> GradientRecord:
    values: dict[str, object] = {
        "dtype": "float64",
        "parameters": 36,
        "points": 3,
        "steps": (1e-4,),
        "largest_error_ratio": 0.01,
        "wrong": (),
        "examples": {},
        "fresh_log_sigmas": (0.0, 0.0),
    }
    values.update(kwargs)
    return GradientRecord(**values)  # type: ignore[arg-type]


def _contract(gradient: GradientRecord | None) -> ContractMeasurement:
    return ContractMeasurement(None, 8, 3, True, 1e-7, 1e-7, gradient)


def test_forward_contract_rules() -> None:
    assert _judge("forward.contract", _contract(_gradient())) == ("pass", "forward.contract.pass_dict")
    cut = _gradient(wrong=("temperature",), examples={"temperature": (0.0, -0.17)})
    assert _judge("forward.contract", _contract(cut)) == ("fail", "forward.contract.gradient")
    fresh = _gradient(fresh_log_sigmas=(1.0, 0.0))
    assert _judge("forward.contract", _contract(fresh)) == ("fail", "forward.contract.fresh-sigmas")
    assert _judge("forward.contract", _contract(None))[0] == "error"  # the gradient was never measured


def test_other_judges_need_evidence() -> None:
    bypassed = AggregationMeasurement(None, 8, 0, 8, (3.5, 10.0), 1e-7, 1e-4)
    assert _judge("forward.aggregation", bypassed) == ("error", "forward.aggregation.bypassed")
    inactive = DiversityMeasurement(None, 10, 0, 0.0, 1e-5, "float32")
    assert _judge("loss.diversity-value", inactive) == ("error", "loss.diversity-value.inactive")
    one_way = ExpandMeasurement(None, 10, 20, 12, 0, 1e-8, 1e-5, "float32")
    assert _judge("manager.expand", one_way) == ("error", "manager.expand.unexercised")


# --- a fast guard: catalogue mutants of each part are noticed, equivalents are not -------------

#: One catalogue mutant per contract, in the part that contract pins.
_NOTICED_BY = {
    "forward.similarity": "sim-one-side-normalised",
    "forward.aggregation": "agg-slice-all-slots",
    "forward.contract": "uw-sigmas-swapped",
    "loss.terms-sum": "proto-loss-missing-div",
    "loss.cluster-nearest": "cluster-mean-not-min",
    "loss.cluster-scale": "cw-sqrt-dropped",
    "loss.separation-value": "sep-mask-dropped",
    "loss.diversity-value": "div-unnormalised",
    "attn.wiring": "attn-light-reads-cross-out",
    "manager.layout": "indices-from-max",
    "manager.expand": "expand-row-plus-one",
}
_BY_ID = {m.id: m for m in MUTANTS}
_SOURCE = REFERENCE.read_text(encoding="utf-8")
_MUTATED: dict[str, Subject] = {}


def _mutated(mutant_id: str) -> Subject:
    if mutant_id not in _MUTATED:
        folder = Path(tempfile.mkdtemp(prefix=f"headaudit-{mutant_id}-"))
        path = folder / "head_optimal.py"
        source = _SOURCE if mutant_id == "original" else apply(_BY_ID[mutant_id], _SOURCE)
        path.write_text(source, encoding="utf-8")
        _MUTATED[mutant_id] = load_subject(str(path))
    return _MUTATED[mutant_id]


_ORIGINAL: dict[str, tuple[str, str]] = {}


def _original(check: RunCheck, check_id: str) -> tuple[str, str]:
    """The verdict and message id on the unmutated head_optimal.py (candidate slot), run once."""
    if check_id not in _ORIGINAL:
        result = check(check_id, _mutated("original"))
        _ORIGINAL[check_id] = (result.verdict, result.message.id)
    return _ORIGINAL[check_id]


#: Mutants a contract must notice beyond its first (parts that show only in some batches).
_ALSO_NOTICED = [("loss.cluster-scale", "cluster-divide-by-num-classes")]  # needs an absent class


#: The two tests below compare with ``_original``, computed once per process: under xdist
#: they run on one worker, which computes it once.
_ON_ONE_WORKER = pytest.mark.xdist_group("contracts-original")


@_ON_ONE_WORKER
@pytest.mark.parametrize(("check_id", "mutant_id"), sorted(_NOTICED_BY.items()) + _ALSO_NOTICED)
def test_each_contract_notices_a_mutant_of_its_part(check: RunCheck, check_id: str, mutant_id: str) -> None:
    assert _original(check, check_id)[0] == "pass"
    result = check(check_id, _mutated(mutant_id))
    assert result.verdict == "fail", result.summary("en")


@_ON_ONE_WORKER
@pytest.mark.parametrize("mutant", EQUIVALENTS, ids=[m.id for m in EQUIVALENTS])
def test_equivalent_rewrites_keep_every_contract_verdict(check: RunCheck, mutant: Any) -> None:
    rewritten = _mutated(mutant.id)
    for check_id in CONTRACTS:
        after = check(check_id, rewritten)
        assert _original(check, check_id) == (after.verdict, after.message.id), (check_id, after.summary("en"))
