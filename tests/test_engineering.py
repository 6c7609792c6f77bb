"""The engineering half of the audit: host files, the host matrix, compatibility, 三 and 四.

- module-level names (``module:Head``) are declared, mapped and n/a like any other name;
- host files load like heads (another folder with a sibling module, nothing left behind),
  and a host whose imports are missing here is read statically, never a crash or exit 2;
- the ``host.loss-dict`` matrix is asserted cell by cell on the references (BEHAVIOR.md 5);
- the evidence of the compat, trainer, shapes and edges checks carries the numbers
  CHECKS.md asks for; judges are tested on hand-made measurements;
- claims 2.1-2.5, section 三's tables and conclusion and section 四's advice are derived
  from this run's results, in both languages, and ``--host`` works from the command line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from headaudit.advice import judge_checkpoint, judge_configuration, judge_host_fix
from headaudit.checks import by_id
from headaudit.checks._hosting import Cell
from headaudit.checks.compat import ConstructorMeasurement, KeywordTry
from headaudit.checks.edges import ZeroPrototypesMeasurement
from headaudit.checks.host import HostEvidence, LossDictMeasurement
from headaudit.checks.shapes import BadInput, BadInputMeasurement
from headaudit.checks.trainer import Step, StepMeasurement
from headaudit.errors import ConfigError, SubjectError
from headaudit.hosts import HostSet, default_hosts, load_host
from headaudit.messages import Msg, render
from headaudit.model import Report
from headaudit.names import NameMap, parse_map, parse_needs
from headaudit.profiles import active_profile
from headaudit.render.markdown import render_markdown
from headaudit.runner import run_check
from headaudit.subjects import Subject, bundled_reference, make_subject
from tests.conftest import ROLES, RunCheck, bytecode_env, part_of
from tests.test_cli import in_process

ROOT = Path(__file__).resolve().parents[1]
MINE = (
    "contrastive.tiny",
    "host.loss-dict",
    "compat.forward",
    "compat.constructor",
    "compat.manager-api",
    "compat.checkpoint",
    "shapes.global-3d",
    "shapes.batch-independence",
    "shapes.permutation",
    "shapes.dtype",
    "shapes.bad-input",
    "edges.cluster-empty",
    "edges.small-batches",
    "edges.zero-prototypes",
    "trainer.detect",
    "trainer.step",
)
TOO_MANY = "too many values to unpack"
NOT_ENOUGH = "not enough values to unpack (expected 3, got 2)"


@pytest.fixture(scope="module")
def audit(reference_report: Report) -> Report:
    """The engineering checks (and contrastive.tiny, a core check of 2.4) on the references:
    their audit alone, cut from the session's full one."""
    return part_of(reference_report, MINE)


def _evidence(report: Report, check_id: str, role: str) -> Any:
    result = report.result(check_id, role)
    assert result is not None
    return result.evidence


# --- module-level names --------------------------------------------------------------------


def test_module_names_parse_map_and_refuse_mixed_kinds() -> None:
    (need,) = parse_needs("x.y", ["module:HeadOptimal|module:Head"])
    assert need.alternatives == ("module:HeadOptimal", "module:Head")
    maps = NameMap(parse_map(["module:Head=module:LegacyHead", "proto_manager=bank"]))
    assert maps.apply("module:Head") == "module:LegacyHead"
    assert maps.apply("module:HeadOptimal") == "module:HeadOptimal"  # exact, never a prefix
    assert maps.apply("proto_manager.valid_mask") == "bank.valid_mask"
    for bad in ("module:Head=proto_manager", "module:Head=forward[ce_loss]", "module:a.b=module:c"):
        with pytest.raises(ConfigError):
            parse_map([bad])


class _Lonely:
    """A head class whose module defines no compatibility ``Head``."""


@pytest.mark.parametrize("role", ROLES)
def test_a_missing_module_name_is_na_naming_it(check: RunCheck, role: str) -> None:
    from types import ModuleType

    from headaudit.reference.head_optimal import HeadOptimal

    module = ModuleType("only_optimal")
    module.HeadOptimal = HeadOptimal  # type: ignore[attr-defined]
    module.Heads = HeadOptimal  # type: ignore[attr-defined]  # a near miss, offered as the suggestion
    subject = make_subject(HeadOptimal, module=module)
    result = check("compat.forward", subject, role)
    assert result.verdict == "n/a"
    assert result.evidence["missing"] == [
        {"name": "module:Head", "looked_for": "module:Head", "suggestion": "module:Heads"}
    ]
    assert result.summary("en").startswith("the subject file defines no `module:Head`")  # the file, not the head
    mapped = make_subject(HeadOptimal, module=module, names=NameMap((("module:Head", "module:Heads"),)))
    assert check("compat.forward", mapped, role).verdict == "fail"  # HeadOptimal returns three values


# --- host files load like heads ----------------------------------------------------------------


def _copy_host(folder: Path, name: str = "models_mae.py", prefix: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(bundled_reference("backbone.py"), folder / "backbone.py")
    text = bundled_reference(name).read_text()
    future = "from __future__ import annotations\n"
    (folder / name).write_text(text.replace(future, future + prefix, 1))
    return folder / name


@pytest.mark.usefixtures("bytecode_written")
def test_a_host_copy_loads_from_another_folder_with_its_sibling(tmp_path: Path) -> None:
    before_path, before = list(sys.path), set(sys.modules)
    host = load_host(str(_copy_host(tmp_path / "project")))
    assert host.runnable
    assert host.class_name == "main_model"  # the class that calls self.head(...)
    assert host.host_cls is not None
    assert host.host_cls.__module__.startswith("headaudit_subject_models_mae")
    assert host.module is not None
    assert host.module.TinyBackbone.__module__ == "backbone"  # the sibling, by its top-level name
    assert sys.path == before_path
    assert "backbone" not in set(sys.modules) - before
    assert not list(tmp_path.rglob("__pycache__"))


def test_a_host_whose_imports_are_missing_is_kept_for_its_source(tmp_path: Path) -> None:
    path = _copy_host(tmp_path / "real", prefix="import timm  # noqa: F401  (the real host's backbone)\n")
    host = load_host(str(path))
    assert not host.runnable
    assert host.unavailable == "ModuleNotFoundError: No module named 'timm'"
    assert host.missing_module == "timm"
    assert "self.head(poolling_feature, features, labels=target)" in host.source
    assert host.class_name == "main_model"  # found statically


def test_bad_host_specs_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SubjectError, match="does not exist"):
        load_host(str(tmp_path / "nope.py"))
    path = _copy_host(tmp_path / "p")
    with pytest.raises(SubjectError, match="has no class 'Missing'"):
        load_host(f"{path}:Missing")
    (tmp_path / "p" / "plain.py").write_text("class Net:\n    def forward(self, x):\n        return x\n")
    with pytest.raises(SubjectError, match=r"no class whose methods call self\.head"):
        load_host(str(tmp_path / "p" / "plain.py"))


# --- the host matrix, cell by cell ---------------------------------------------------------------

# (role, host variant, head class, mode) -> (outcome, lost_in or message substring); BEHAVIOR.md 5.
MATRIX: dict[tuple[str, str, str, str], tuple[str, str | None]] = {
    ("candidate", "host", "HeadOptimal", "train"): ("raises", TOO_MANY),
    ("candidate", "host", "HeadOptimal", "eval"): ("raises", TOO_MANY),
    ("candidate", "host", "HeadOptimal", "eval-no-target"): ("raises", TOO_MANY),
    ("candidate", "host", "Head", "train"): ("loses-breakdown", "head"),
    ("candidate", "host", "Head", "eval"): ("works", None),
    ("candidate", "host", "Head", "eval-no-target"): ("works", None),
    ("candidate", "suggested", "HeadOptimal", "train"): ("works", None),
    ("candidate", "suggested", "HeadOptimal", "eval"): ("raises", TOO_MANY),
    ("candidate", "suggested", "HeadOptimal", "eval-no-target"): ("raises", TOO_MANY),
    ("candidate", "suggested", "Head", "train"): ("raises", NOT_ENOUGH),
    ("candidate", "suggested", "Head", "eval"): ("works", None),
    ("candidate", "suggested", "Head", "eval-no-target"): ("works", None),
    ("candidate", "fixed", "HeadOptimal", "train"): ("works", None),
    ("candidate", "fixed", "HeadOptimal", "eval"): ("works", None),
    ("candidate", "fixed", "HeadOptimal", "eval-no-target"): ("works", None),
    ("candidate", "fixed", "Head", "train"): ("loses-breakdown", "head"),
    ("candidate", "fixed", "Head", "eval"): ("works", None),
    ("candidate", "fixed", "Head", "eval-no-target"): ("works", None),
    ("baseline", "host", "Head", "train"): ("loses-breakdown", "head"),
    ("baseline", "host", "Head", "eval"): ("works", None),
    ("baseline", "host", "Head", "eval-no-target"): ("works", None),
    ("baseline", "suggested", "Head", "train"): ("raises", NOT_ENOUGH),
    ("baseline", "suggested", "Head", "eval"): ("works", None),
    ("baseline", "suggested", "Head", "eval-no-target"): ("works", None),
    ("baseline", "fixed", "Head", "train"): ("loses-breakdown", "head"),
    ("baseline", "fixed", "Head", "eval"): ("works", None),
    ("baseline", "fixed", "Head", "eval-no-target"): ("works", None),
}


def _cells(report: Report, role: str) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    hosts = _evidence(report, "host.loss-dict", role)["hosts"]
    return {(role, c["host"], c["head"], c["mode"]): c for h in hosts for c in h["cells"]}


def test_the_host_matrix_is_complete(audit: Report) -> None:
    measured = {key for role in ROLES for key in _cells(audit, role)}
    assert measured == set(MATRIX)


@pytest.mark.parametrize("key", list(MATRIX), ids=["-".join(k) for k in MATRIX])
def test_host_matrix_cell(audit: Report, key: tuple[str, str, str, str]) -> None:
    cell = _cells(audit, key[0])[key]
    outcome, detail = MATRIX[key]
    assert cell["outcome"] == outcome, cell
    if outcome == "raises":
        assert cell["detail"].startswith("ValueError: ")
        assert detail in cell["detail"]
    elif outcome == "loses-breakdown":
        assert cell["lost_in"] == detail
        assert {"cluster_loss", "sep_loss", "div_loss", "contrastive_loss", "proto_loss"} <= set(cell["lost"])
    else:
        assert not cell["lost"]


def test_static_predictions_agree_with_the_run(audit: Report) -> None:
    for role in ROLES:
        evidence = _evidence(audit, "host.loss-dict", role)
        for host in evidence["hosts"]:
            raised = {(c["head"], c["mode"]) for c in host["cells"] if c["outcome"] == "raises"}
            predicted = {
                (p["head"], p["mode"])
                for site in host["calls"]
                for p in site["predictions"]
                if p["outcome"] == "raises"
            }
            assert predicted == raised, (role, host["variant"])
    quoted = _evidence(audit, "host.loss-dict", "candidate")["hosts"][0]
    assert [(s["line"], s["arity"], s["conditions"]) for s in quoted["calls"]] == [(55, 2, [])]


def test_the_verdict_judges_the_host_and_names_both_fixes(audit: Report) -> None:
    fail = audit.result("host.loss-dict", "candidate")
    assert fail is not None
    assert fail.verdict == "fail"
    text = fail.summary("en")
    assert "the host with `HeadOptimal`" in text
    assert "The report's suggested fix raises" in text
    assert "works in every cell" in text
    ok = audit.result("host.loss-dict", "baseline")
    assert ok is not None
    assert ok.verdict == "pass"
    assert "by the head, which does not return it" in ok.summary("en")
    fixed = _evidence(audit, "host.loss-dict", "candidate")["hosts"][2]
    assert "logits, head_loss, *rest = self.head(" in fixed["forward_source"]


def _hosts_with(host: Path) -> HostSet:
    bundled = default_hosts()
    return HostSet(load_host(str(host)), bundled.suggested, bundled.fixed, bundled.wrapper)


def _run(check_id: str, subject: Subject, role: str, hosts: HostSet) -> Any:
    found = by_id(check_id)
    assert found is not None
    return run_check(found, subject, role, seed=0, profile=active_profile(), hosts=hosts)


@pytest.mark.parametrize("role", ROLES)
def test_a_copy_of_the_host_elsewhere_gives_the_same_matrix(
    tmp_path: Path, references: dict[str, Subject], audit: Report, role: str
) -> None:
    hosts = _hosts_with(_copy_host(tmp_path / "elsewhere"))
    for name, subject in references.items():
        result = _run("host.loss-dict", subject, role, hosts)
        expected = audit.result("host.loss-dict", name)
        assert expected is not None
        assert result.verdict == expected.verdict
        got = [c for h in result.evidence["hosts"] for c in h["cells"]]
        want = [c for h in expected.evidence["hosts"] for c in h["cells"]]
        assert got == want


@pytest.mark.parametrize("role", ROLES)
def test_an_unimportable_host_is_judged_from_its_source(
    tmp_path: Path, references: dict[str, Subject], role: str
) -> None:
    hosts = _hosts_with(_copy_host(tmp_path / "real", prefix="import timm  # noqa: F401\n"))
    optimal = _run("host.loss-dict", references["candidate"], role, hosts)
    assert optimal.verdict == "fail"
    assert optimal.message.id == "host.loss-dict.fail_static"
    assert "No module named 'timm'" in optimal.summary("en")
    assert "line 56 unpacks 2 values" in optimal.summary("en")  # one line below the quoted host's 55
    cells = optimal.evidence["hosts"][0]["cells"]
    assert {c["outcome"] for c in cells} == {"unavailable"}
    original = _run("host.loss-dict", references["baseline"], role, hosts)
    assert original.verdict == "pass"  # its two-name unpack takes head.py's two values: every cell decided
    assert original.message.id == "host.loss-dict.pass_static"
    assert "No module named 'timm'" in original.summary("en")
    # the wrapper checks carry the head in a host that imported (the bundled fix)
    assert _run("trainer.detect", references["candidate"], role, hosts).verdict == "pass"
    assert _run("trainer.step", references["candidate"], role, hosts).verdict == "pass"


_INDEXING_HOST = '''
from torch import nn


class Net(nn.Module):
    """A user's host: keeps the head's return whole and indexes it."""

    def forward(self, images, labels=None):
        glob, patches = self.forward_train(images)
        out = self.head(patches, glob, labels=labels)
        logits, loss = out[0], out[1]
        if self.training:
            return loss, {"loss": loss.detach()}
        return logits, loss
'''

_BACKBONE_HOST = """
from torch import nn


class Model(nn.Module):
    def forward(self, images, target=None):
        features, pooled = self.backbone(images)  # set by a constructor the audit never runs
        logits, head_loss = self.head(pooled, features, labels=target)
        return logits, head_loss
"""


@pytest.mark.parametrize("role", ROLES)
def test_other_hosts(tmp_path: Path, references: dict[str, Subject], role: str) -> None:
    indexing = tmp_path / "indexing.py"
    indexing.write_text(_INDEXING_HOST)
    result = _run("host.loss-dict", references["candidate"], role, _hosts_with(indexing))
    assert result.verdict == "pass"  # no unpack: nothing raises
    cells = {(c["head"], c["mode"]): c for c in result.evidence["hosts"][0]["cells"]}
    assert cells[("HeadOptimal", "train")]["outcome"] == "loses-breakdown"
    assert cells[("HeadOptimal", "train")]["lost_in"] == "host"  # the head returned it, the host dropped it
    assert result.evidence["hosts"][0]["calls"][0]["usage"] == "assign"
    backbone = tmp_path / "backbone_host.py"
    backbone.write_text(_BACKBONE_HOST)
    needs = _run("host.loss-dict", references["candidate"], role, _hosts_with(backbone))
    assert {c["outcome"] for c in needs.evidence["hosts"][0]["cells"]} == {"unrunnable"}
    assert needs.verdict == "fail"  # its unguarded two-name unpack cannot take three values
    assert needs.message.id == "host.loss-dict.fail_static"
    original = _run("host.loss-dict", references["baseline"], role, _hosts_with(backbone))
    assert original.verdict == "pass"  # decided from its source: two names, two values
    assert "`backbone`" in original.summary("en")  # why it was read rather than run


def test_manager_uses_in_the_host_are_scanned(tmp_path: Path, references: dict[str, Subject]) -> None:
    path = _copy_host(tmp_path / "uses")
    text = path.read_text().replace(
        "        features, poolling_feature = self.forward_train(images)\n",
        "        features, poolling_feature = self.forward_train(images)\n"
        "        self.head.proto_manager.apply_momentum_updates()\n",
        1,
    )
    path.write_text(text)
    result = _run("compat.manager-api", references["candidate"], "candidate", _hosts_with(path))
    assert result.verdict == "fail"
    uses = [u for u in result.evidence["host_uses"] if u["file"] == result.evidence["hosts_scanned"][0]]
    assert [(u["name"], u["present"]) for u in uses] == [("apply_momentum_updates", False)]
    assert "apply_momentum_updates (" in result.summary("en")
    # the head's own file is a scanned caller too: its uses are all present
    own = [u for u in result.evidence["host_uses"] if u["file"] != result.evidence["hosts_scanned"][0]]
    assert own
    assert all(u["present"] for u in own)
    # without that host use, the missing names no caller uses are a warning, named
    plain = _hosts_with(_copy_host(tmp_path / "plain"))
    unused = _run("compat.manager-api", references["candidate"], "candidate", plain)
    assert unused.verdict == "warn"
    assert "`apply_momentum_updates` (method)" in unused.summary("en")


# --- evidence of the other checks ------------------------------------------------------------


def test_compat_evidence(audit: Report) -> None:
    ctor = _evidence(audit, "compat.constructor", "candidate")
    refused = {t["keyword"]: t["detail"] for t in ctor["tries"] if t["outcome"] == "refused"}
    assert set(refused) == {"max_prototypes", "var_threshold", "*together"}
    assert "multiple values for keyword argument 'max_prototypes'" in refused["max_prototypes"]
    assert "unexpected keyword argument 'var_threshold'" in refused["var_threshold"]
    api = _evidence(audit, "compat.manager-api", "candidate")
    missing = {m["name"]: m.get("renamed_to") for m in api["missing"]}
    assert {"expand_prototypes", "apply_momentum_updates", "var_threshold"} <= set(missing)
    assert missing["expand_prototypes"] == "expand_prototype"
    assert missing["apply_momentum_updates"] is None
    ckpt = _evidence(audit, "compat.checkpoint", "candidate")
    assert ckpt["strict_load"].startswith("RuntimeError: Error(s) in loading state_dict")
    renamed = dict(map(tuple, ckpt["renamed"]))
    assert renamed == {
        f"mixed_attn.local_self_attn.{leaf}": f"mixed_attn.light_attn.{leaf}"
        for leaf in ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")
    }
    assert {"proto_manager.momentum_cache", "proto_manager.cache_count"} <= set(ckpt["unexpected"])
    assert {"mixed_attn.gate.2.weight", "mixed_attn.gate.2.bias"} <= set(ckpt["missing"])
    assert _evidence(audit, "compat.checkpoint", "baseline")["missing"] == []


def test_trainer_step_runs_each_head_through_a_working_host(audit: Report) -> None:
    steps = {s["head"]: s for s in _evidence(audit, "trainer.step", "candidate")["steps"]}
    assert steps["HeadOptimal"]["host"] == "fixed"
    passed = {(c["host"], c["mode"]) for c in steps["HeadOptimal"]["passed_over"]}
    assert ("host", "train") in passed  # the quoted host's failure, kept as evidence (host.loss-dict)
    assert ("suggested", "eval") in passed
    assert steps["Head"]["host"] == "host"
    for step in steps.values():
        assert step["loss_shape"] == [1]
        assert step["prototype_gradient"] == "ok"
        assert step["gradient_norm"] > 0
        assert step["logits_shape"] == step["expected_logits"]
    detect = _evidence(audit, "trainer.detect", "candidate")
    assert [d["detected"] for d in detect["heads"]] == [True, True]
    assert detect["linear"]["detected"] is False


def test_shapes_and_edges_evidence(audit: Report) -> None:
    for role in ROLES:
        coupling = _evidence(audit, "shapes.batch-independence", role)["counterexample"]
        assert coupling["alone_change"] > 1e3 * coupling["tolerance"]
        assert coupling["largest_change"] >= coupling["alone_change"]
        assert _evidence(audit, "shapes.dtype", role)["logits"] == "float32"
        bad = {c["case"]: c for c in _evidence(audit, "shapes.bad-input", role)["cases"]}
        assert bad["pool-2d"]["raised"] == "ValueError: not enough values to unpack (expected 3, got 2)"
        assert bad["label-range"]["raised"].startswith("IndexError")
        assert bad["nan-features"]["outcome"] == "nan-propagated"
        zero = _evidence(audit, "edges.zero-prototypes", role)
        assert zero["stage"] == "forward"
        assert "max(): Expected reduction dim" in zero["raised"]
    small = {c["name"]: c for c in _evidence(audit, "edges.small-batches", "baseline")["cases"]}
    assert small["one-prototype-in-all"]["raised"].startswith("IndexError: min()")
    assert all(small[n].get("raised") is None for n in ("batch-of-one", "one-class", "one-prototype-per-class"))


# --- judges on hand-made measurements ---------------------------------------------------------


def _judge(check_id: str, measurement: object) -> tuple[str, str]:
    check = by_id(check_id)
    assert check is not None
    finding = check.judge(measurement)
    return finding.verdict, finding.message.id


def test_a_keyword_whose_effect_cannot_be_read_back_is_named_not_passed() -> None:
    ok = KeywordTry("margin", "accepted", None, 0.3)
    unseen = KeywordTry("temperature", "accepted", None, 5.0, ("temperature",))
    assert _judge("compat.constructor", ConstructorMeasurement("o", "Head", ("margin",), (ok,))) == (
        "pass",
        "compat.constructor.pass",
    )
    warned = ConstructorMeasurement("o", "Head", ("margin", "temperature"), (ok, unseen))
    assert _judge("compat.constructor", warned) == ("warn", "compat.constructor.warn")
    assert warned.unreadable == ("temperature",)
    no_other = ConstructorMeasurement("o", "Head", ("margin", "mode"), (ok,), ("mode",))
    assert _judge("compat.constructor", no_other)[0] == "warn"  # never tried at another value
    ignored = KeywordTry("max_prototypes", "ignored", "max_prototypes=10", 11)
    assert _judge("compat.constructor", ConstructorMeasurement("o", "Head", ("m",), (ok, ignored, unseen)))[0] == "fail"


def _host(variant: str, cells: tuple[Cell, ...], runtime: str | None = None) -> HostEvidence:
    return HostEvidence(variant, f"{variant}.py", "m", "0" * 64, runtime, (), cells, None)


def test_host_loss_dict_rules() -> None:
    works = (Cell("x", "H", "train", "works"),)
    raises = (Cell("x", "H", "train", "raises", "ValueError: boom"),)
    lost = (Cell("x", "H", "train", "loses-breakdown", None, ("cluster_loss",), "host"),)
    unavailable = (Cell("x", "H", "train", "unavailable", "ModuleNotFoundError: No module named 'timm'"),)

    def m(host: tuple[Cell, ...], runtime: str | None = None) -> LossDictMeasurement:
        hosts = (_host("host", host, runtime), _host("suggested", works), _host("fixed", works))
        return LossDictMeasurement(("H",), (), hosts, Msg("host.loss-dict.instances"))

    assert _judge("host.loss-dict", m(raises)) == ("fail", "host.loss-dict.fail")
    assert _judge("host.loss-dict", m(lost)) == ("pass", "host.loss-dict.pass")  # the claim: only the breakdown
    assert _judge("host.loss-dict", m(works)) == ("pass", "host.loss-dict.pass")
    assert _judge("host.loss-dict", m(unavailable, "ModuleNotFoundError: x")) == ("n/a", "host.loss-dict.na_runtime")


def test_shapes_bad_input_rules() -> None:
    clear = BadInput("pool-2d", ("pool_img_features",), "clear", "ValueError: pool_img_features ...", True)
    unclear = BadInput("pool-2d", ("pool_img_features",), "unclear", "ValueError: not enough", False)
    nan = BadInput("nan-features", ("img_features",), "nan-propagated", output_finite=False)
    silent = BadInput("label-range", ("labels",), "silent", output_finite=True, output_shape=(3, 3))
    assert _judge("shapes.bad-input", BadInputMeasurement((clear,)))[0] == "pass"
    assert _judge("shapes.bad-input", BadInputMeasurement((clear, unclear)))[0] == "warn"
    assert _judge("shapes.bad-input", BadInputMeasurement((clear, nan)))[0] == "warn"
    assert _judge("shapes.bad-input", BadInputMeasurement((unclear, silent)))[0] == "fail"
    assert _judge("shapes.bad-input", BadInputMeasurement(()))[0] == "error"  # nothing tried: no pass


def test_edges_zero_prototypes_rules() -> None:
    early = ZeroPrototypesMeasurement("constructor", "ValueError: num_prototypes must be >= 1", True)
    late = ZeroPrototypesMeasurement("forward", "IndexError: max(): ...", False)
    silent = ZeroPrototypesMeasurement("none", None, None, True, (2, 3))
    assert _judge("edges.zero-prototypes", early)[0] == "pass"
    assert _judge("edges.zero-prototypes", late) == ("warn", "edges.zero-prototypes.late")
    assert _judge("edges.zero-prototypes", silent) == ("fail", "edges.zero-prototypes.accepted")


def test_trainer_step_rules() -> None:
    ok = Step("H", "fixed", (), loss_shape=(1,), loss_finite=True, prototype_gradient="ok", gradient_norm=1.0,
              logits_shape=(4, 3), logits_finite=True, expected_logits=(4, 3))  # fmt: skip
    none = Step("G", None, ())
    assert _judge("trainer.step", StepMeasurement("w", (ok,)))[0] == "pass"
    assert _judge("trainer.step", StepMeasurement("w", (ok, none)))[0] == "warn"  # one head never stepped
    assert _judge("trainer.step", StepMeasurement("w", (none,)))[0] == "error"  # nothing measured: no pass
    vector = Step("H", "fixed", (), loss_shape=(4,), loss_finite=True)
    assert _judge("trainer.step", StepMeasurement("w", (vector,))) == ("fail", "trainer.step.fail")


# --- claims, 三 and 四 -------------------------------------------------------------------------


def test_engineering_claims_on_the_references(audit: Report) -> None:
    expected = {"2.1": "refuted", "2.2": "refuted", "2.3": "confirmed", "2.4": "caveats", "2.5": "confirmed"}
    for ref, verdict in expected.items():
        claim = audit.claim(ref)
        assert claim is not None
        assert claim.verdict == verdict, (ref, claim.message)
    c22 = audit.claim("2.2")
    assert c22 is not None
    # refuted by what fails; the manager only lacks names no scanned caller uses (warn), and the
    # redesigned gate's weights are said to be a gap no fix can give, in the claim's text
    assert c22.message.id == "claim.verdict.with_limits"
    assert c22.message.params["verdict"].params["checks"] == ["compat.constructor", "compat.checkpoint"]
    assert "`mixed_attn.gate.1`, `mixed_attn.gate.2`" in render(c22.message, "en")
    assert audit.claim("2.4").message.params["checks"] == ["edges.zero-prototypes"]  # type: ignore[union-attr]


def test_section_four_is_derived_from_the_matrix(audit: Report) -> None:
    advice = judge_host_fix(audit)
    assert advice.recommended
    assert set(advice.ran) == set(ROLES)
    assert len(advice.fixed_cells) == 9  # (2 + 1 head classes) x 3 modes
    assert {(c["head"], c["mode"], c["subject"]) for c in advice.suggested_failures} == {
        ("HeadOptimal", "eval", "candidate"),
        ("HeadOptimal", "eval-no-target", "candidate"),
        ("Head", "train", "candidate"),
        ("Head", "train", "baseline"),
    }
    config = judge_configuration(audit)
    assert config.subject == "candidate"
    assert not config.recommended
    assert ("2.1", "refuted") in config.blocking_claims
    assert ("shapes.batch-independence", "fail") in config.blocking_findings
    md = render_markdown(audit, "en")
    four = md.split("## 4. Usage advice")[1]
    assert "use_class_balanced=True," in four
    assert "Recommended instead" in four
    assert "logits, head_loss, *rest = self.head(poolling_feature, features, labels=target)" in four
    assert "not recommended" in four
    # 4.3: which part of the checkpoint gap a fix can give, and which none can (the verdict is fail)
    checkpoint = {a.role: a for a in judge_checkpoint(audit)}
    assert checkpoint["baseline"].loads
    candidate = checkpoint["candidate"]
    assert not candidate.loads
    assert candidate.redesigned == ("mixed_attn.gate.1", "mixed_attn.gate.2")
    assert len(candidate.renamed) == 4
    assert candidate.other == ("proto_manager.cache_count", "proto_manager.momentum_cache")
    assert "No fix can give this part: the weights of `mixed_attn.gate.1`, `mixed_attn.gate.2`" in four


def test_a_host_fix_is_not_recommended_without_a_working_matrix(audit: Report) -> None:
    import dataclasses

    results = []
    for r in audit.results:
        if r.check == "host.loss-dict":
            hosts = [dict(h) for h in r.evidence["hosts"]]
            hosts[2] = {**hosts[2], "cells": [{**c, "outcome": "raises", "detail": "E"} for c in hosts[2]["cells"]]}
            r = dataclasses.replace(r, evidence={**r.evidence, "hosts": hosts})
        results.append(r)
    broken = dataclasses.replace(audit, results=tuple(results))
    assert not judge_host_fix(broken).recommended
    four = render_markdown(broken, "en").split("## 4. Usage advice")[1]
    assert "No host edit can be recommended" in four
    assert "```python\ndef forward" not in four


def test_sections_three_and_four_in_both_languages(audit: Report) -> None:
    en = render_markdown(audit, "en")
    for heading in ("### 3.2 Engineering claims", "### 3.3 Conclusion", "## 4. Usage advice"):
        assert heading in en
    assert "### 3.1 Theory claims" not in en  # no theory claim's checks ran in this audit: no empty table
    three = en.split("### 3.2 Engineering claims")[1].split("### 3.3")[0]
    rows = [line for line in three.splitlines() if line.startswith("| 2.")]
    assert [r.split()[1] for r in rows] == ["2.1", "2.2", "2.3", "2.4", "2.5"]
    conclusion = en.split("### 3.3 Conclusion")[1].split("## 4.")[0]
    assert "2 refuted" in conclusion  # 2.1 and 2.2 (the theory claims did not run here)
    assert "The conclusion does not hold" in conclusion
    assert "### 2.6 Further engineering checks" in en
    assert "#### `shapes.dtype`" in en.split("### 2.6")[1]
    zh = render_markdown(audit, "zh")
    headings = ("### 3.2 工程问题", "### 3.3 最终结论", "## 四、使用建议", "### 4.2 宿主代码的调用处")
    headings += ("### 4.3 加载 head.py 的检查点",)
    for heading in headings:
        assert heading in zh
    assert "### 宿主文件" in zh


# --- the command line ----------------------------------------------------------------------------


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``headaudit ARGS`` in a subprocess that writes bytecode (the ``__pycache__`` check)."""
    env = bytecode_env()
    return subprocess.run(
        [sys.executable, "-m", "headaudit", *args], capture_output=True, text=True, cwd=cwd, env=env, check=False,
        timeout=300,
    )  # fmt: skip


def test_the_host_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The bad paths run in process (after the ``__pycache__`` check): one line, exit 2."""
    path = _copy_host(tmp_path / "project")
    out = _cli("report", "--only", "host.loss-dict", "--host", str(path), "--format", "json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["extra"]["hosts"][0]["path"] == "project/models_mae.py"  # relative to the working directory
    assert data["environment"]["args"] == ["--host", str(path)]
    verdicts = {r["subject"]: r["verdict"] for r in data["results"]}
    assert verdicts == {"baseline": "pass", "candidate": "fail"}
    assert not list(tmp_path.rglob("__pycache__"))
    for bad, needle in ((str(tmp_path / "nope.py"), "does not exist"), (f"{path}:Nope", "has no class 'Nope'")):
        code, _, stderr = in_process(monkeypatch, capsys, tmp_path, "report", "--only", "host.loss-dict", "--host", bad)
        assert code == 2
        assert needle in stderr
        assert len(stderr.strip().splitlines()) == 1


# --- the bundled fix, pinned on its own (like tests/test_host_reference.py) -----------------------


@pytest.mark.parametrize("head_name", ["HeadOptimal", "Head"])
def test_the_bundled_fix_runs_with_both_heads_in_training_and_eval(head_name: str) -> None:
    import torch

    from headaudit.reference import head_optimal, models_mae_fixed

    torch.manual_seed(0)
    head = getattr(head_optimal, head_name)(3, 16, 2, 16, dropout_rate=0.0)
    model = models_mae_fixed.main_model(head, feat_dim=16)
    images, labels = torch.randn(2, 3, 28, 28, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 2])
    loss, extra = model.train()(images, target=labels)
    assert loss.shape == (1,)
    assert torch.equal(extra["head_loss"], loss.detach())
    if head_name == "HeadOptimal":  # every term the head returns is kept, detached
        assert {"ce_loss", "cluster_loss", "sep_loss", "div_loss", "contrastive_loss", "proto_loss"} <= set(extra)
        assert not any(v.requires_grad for v in extra.values())
    else:
        assert set(extra) == {"head_loss"}  # the compat head returns no breakdown
    for target in (labels, None):
        logits, head_loss = model.eval()(images, target=target)
        assert logits.shape == (2, 3)
        assert float(head_loss) == 0.0


@pytest.mark.parametrize("role", ROLES)
def test_a_head_that_raises_is_an_error_not_a_finding(subject: Any, check: RunCheck, role: str) -> None:
    broken = subject("forward_raises")
    for check_id in ("host.loss-dict", "trainer.step", "shapes.global-3d", "shapes.permutation", "compat.forward"):
        result = check(check_id, broken, role)
        if check_id == "compat.forward":  # the file has no compatibility Head: n/a naming it
            assert result.verdict == "n/a"
            continue
        assert result.verdict == "error", (check_id, result.summary("en"))
        assert "forward is broken on purpose" in result.summary("en")
