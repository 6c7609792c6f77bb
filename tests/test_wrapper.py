"""``--wrapper``: the training wrapper of ``trainer.detect`` and ``trainer.step`` is the user's own.

- a wrapper loads like a host (its class: the one that calls ``self.model(...)``); a missing
  file or class is one clear line and exit 2;
- where it decides that a head is multi-prototype is read from its source, and run on the
  built wrapper where it imports (a broken detection fails, a module-level one passes);
- a wrapper that imports what this machine lacks (timm, the project's ``mae_lite``) is
  ``n/a`` naming the module, and its source is judged: the detection's own text on each
  head and on an ``nn.Linear`` control, its ``self.model(...)`` unpacks against what the
  host returns; a defect read so fails, and a name the reading cannot resolve is named.

Every check runs each reference head in both slots.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from headaudit.checks import by_id
from headaudit.checks._hosting import DetectionSite, detection_site
from headaudit.checks.trainer import DetectMeasurement, StepMeasurement
from headaudit.errors import SubjectError
from headaudit.hosts import HostSet, default_hosts, load_wrapper
from headaudit.model import Result
from headaudit.profiles import active_profile
from headaudit.runner import run_check
from headaudit.subjects import Subject
from tests.conftest import ROLES, SUBJECTS_DIR
from tests.test_cli import in_process

WRAPPERS = SUBJECTS_DIR / "wrapper"
TIMM = "ModuleNotFoundError: No module named 'timm'"
QUOTED = DetectionSite(
    "self._detect_multi_prototype_head()", "Model.__init__", 25, "_use_multi_prototype_head", "guard"
)


def _hosts(name: str | None) -> HostSet:
    bundled = default_hosts()
    wrapper = load_wrapper(str(WRAPPERS / name)) if name else bundled.wrapper
    return HostSet(bundled.host, bundled.suggested, bundled.fixed, wrapper)


def _run(check_id: str, subject: Subject, role: str, wrapper: str | None) -> Result:
    found = by_id(check_id)
    assert found is not None
    return run_check(found, subject, role, seed=0, profile=active_profile(), timeout=60, hosts=_hosts(wrapper))


def _heads(subject: Subject) -> list[str]:
    return ["HeadOptimal", "Head"] if subject.head_cls.__name__ == "HeadOptimal" else ["Head"]


# --- loading -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("bytecode_written")
def test_a_wrapper_that_does_not_import_is_kept_for_its_source() -> None:
    wrapper = load_wrapper(str(WRAPPERS / "timm_imagenet_exp.py"))
    assert wrapper.class_name == "Model"  # the class calling self.model(...), not the project's Exp
    assert not wrapper.runnable
    assert wrapper.unavailable == TIMM
    assert wrapper.missing_module == "timm"
    assert not list(WRAPPERS.rglob("__pycache__"))
    assert detection_site(wrapper) == QUOTED
    bundled = detection_site(default_hosts().wrapper)
    assert bundled is not None
    assert (bundled.expression, bundled.flag, bundled.found_by) == (QUOTED.expression, QUOTED.flag, "guard")


def test_bad_wrapper_specs_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SubjectError, match=r"wrapper file .* does not exist"):
        load_wrapper(str(tmp_path / "missing.py"))
    with pytest.raises(SubjectError, match="has no class 'NoSuchClass'; it defines: Model, Exp"):
        load_wrapper(f"{WRAPPERS / 'timm_imagenet_exp.py'}:NoSuchClass")
    plain = tmp_path / "plain.py"
    plain.write_text("class Net:\n    def forward(self, x):\n        return self.head(x)\n")
    with pytest.raises(SubjectError, match=r"no class whose methods call self\.model"):
        load_wrapper(str(plain))


# --- a wrapper that imports: the detection is run ------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_a_broken_detection_fails_and_the_quoted_one_passes(references: dict[str, Subject], role: str) -> None:
    for subject in references.values():
        broken = _run("trainer.detect", subject, role, "broken_detect.py")
        assert broken.verdict == "fail", broken.summary("en")
        assert broken.message.id == "trainer.detect.missed"
        assert [d["detected"] for d in broken.evidence["heads"]] == [False] * len(_heads(subject))
        assert broken.evidence["site"]["expression"] == "self._detect_multi_prototype_head()"
        quoted = _run("trainer.detect", subject, role, None)
        assert quoted.verdict == "pass"
        # the source reading agrees with the run, head by head and on the nn.Linear control
        run = [(d["head"], d["detected"]) for d in (*quoted.evidence["heads"], quoted.evidence["linear"])]
        read = [(d["head"], d["detected"]) for d in quoted.evidence["from_source"]]
        assert read == run == [*((h, True) for h in _heads(subject)), ("nn.Linear", False)]
        assert [(d["head"], d["detected"]) for d in broken.evidence["from_source"]] == [
            *((h, False) for h in _heads(subject)),
            ("nn.Linear", False),
        ]


@pytest.mark.parametrize("role", ROLES)
def test_a_detection_in_a_module_function_is_found_and_run(references: dict[str, Subject], role: str) -> None:
    site = detection_site(load_wrapper(str(WRAPPERS / "module_detect.py")))
    assert site is not None
    assert (site.expression, site.flag, site.function) == (
        "has_multi_prototype_head(self.model)",
        None,
        "Model.forward",
    )
    for subject in references.values():
        assert _run("trainer.detect", subject, role, "module_detect.py").verdict == "pass"
        assert _run("trainer.step", subject, role, "module_detect.py").verdict == "pass"


# --- a wrapper that does not import: n/a naming the module, the source judged ---------------------


@pytest.mark.parametrize("role", ROLES)
def test_an_unimportable_wrapper_is_na_naming_the_module_and_judged_from_its_source(
    references: dict[str, Subject], role: str
) -> None:
    for subject in references.values():
        heads = _heads(subject)
        detect = _run("trainer.detect", subject, role, "timm_imagenet_exp.py")
        assert detect.verdict == "n/a"
        assert detect.message.id == "trainer.detect.na_runtime"
        text = detect.summary("en")
        assert "No module named 'timm'" in text
        assert "`self._detect_multi_prototype_head()` (line 25) is true for every head class" in text
        assert detect.evidence["heads"] == []  # nothing was run
        assert detect.evidence["missing_module"] == "timm"
        read = [(d["head"], d["detected"], d.get("unresolved")) for d in detect.evidence["from_source"]]
        assert read == [*((h, True, None) for h in heads), ("nn.Linear", False, None)]
        assert "无法导入" in detect.summary("zh")

        step = _run("trainer.step", subject, role, "timm_imagenet_exp.py")
        assert step.verdict == "n/a"
        assert step.message.id == "trainer.step.na_runtime"
        assert "No module named 'timm'" in step.summary("en")
        assert "its 4 calls of `self.model(...)` take what the host returns" in step.summary("en")
        assert step.evidence["steps"] == []
        # what the host carrying each head returned to the wrapper: two values in training and eval
        assert {(r["head"], r["mode"], r["values"]) for r in step.evidence["host_returns"]} == {
            (h, mode, 2) for h in heads for mode in ("train", "eval")
        }
        calls = {c["line"]: c for c in step.evidence["calls"]}
        assert sorted(calls) == [40, 42, 48, 50]
        train, linear, evaluate, linear_eval = (calls[n] for n in (40, 42, 48, 50))
        assert (train["arity"], train["conditions"]) == (2, ["self.training", "self._use_multi_prototype_head"])
        assert {(p["head"], p["mode"], p["outcome"]) for p in train["predictions"]} == {
            *((h, "train", "unpacks") for h in heads),
            *((h, "eval", "not-reached") for h in heads),
        }
        assert {(p["mode"], p["outcome"]) for p in evaluate["predictions"]} == {
            ("train", "not-reached"),
            ("eval", "unpacks"),
        }
        assert all(p["reached"] is False for c in (linear, linear_eval) for p in c["predictions"])


@pytest.mark.parametrize("role", ROLES)
def test_defects_read_from_an_unimportable_wrapper_fail(references: dict[str, Subject], role: str) -> None:
    for subject in references.values():
        detect = _run("trainer.detect", subject, role, "timm_broken_detect.py")
        assert detect.verdict == "fail"
        assert detect.message.id == "trainer.detect.fail_static"
        assert "No module named 'timm'" in detect.summary("en")
        assert f"is false for {', '.join(_heads(subject))}" in detect.summary("en")
        assert _run("trainer.step", subject, role, "timm_broken_detect.py").verdict == "n/a"

        step = _run("trainer.step", subject, role, "timm_three_values.py")
        assert step.verdict == "fail"
        assert step.message.id == "trainer.step.fail_static"
        assert "line 36 unpacks 3 values from `self.model(...)` where the host returns 2" in step.summary("en")
        assert "No module named 'timm'" in step.summary("en")
        assert _run("trainer.detect", subject, role, "timm_three_values.py").verdict == "n/a"


@pytest.mark.parametrize("role", ROLES)
def test_a_detection_needing_a_missing_import_names_it(references: dict[str, Subject], role: str) -> None:
    for subject in references.values():
        detect = _run("trainer.detect", subject, role, "timm_isinstance.py")
        assert detect.verdict == "n/a"
        assert detect.message.id == "trainer.detect.na_unresolved"
        text = detect.summary("en")
        assert "No module named 'timm'" in text
        assert "`MultiPrototypeHead` (from `mae_lite.models`)" in text
        assert "No module named 'mae_lite'" in text
        assert {d.get("detected") for d in detect.evidence["from_source"]} == {None}
        step = _run("trainer.step", subject, role, "timm_isinstance.py")
        assert step.verdict == "n/a"  # the guards read the flag: whether each call runs is not known
        outcomes = {(c["line"], p["mode"]): p["outcome"] for c in step.evidence["calls"] for p in c["predictions"]}
        assert outcomes[(33, "train")] == outcomes[(41, "eval")] == "depends"
        assert outcomes[(33, "eval")] == outcomes[(41, "train")] == "not-reached"  # self.training alone decides
        assert "unpacks" not in outcomes.values()


def test_trainer_source_rules() -> None:
    def judge(check_id: str, measurement: Any) -> tuple[str, str]:
        check = by_id(check_id)
        assert check is not None
        finding = check.judge(measurement)
        return finding.verdict, finding.message.id

    assert judge("trainer.step", StepMeasurement("w", (), TIMM, "timm")) == ("n/a", "trainer.step.na_runtime")
    assert judge("trainer.detect", DetectMeasurement("w", "h", (), None)) == ("n/a", "trainer.detect.no_site")
    unread = DetectMeasurement("w", "h", (), None, QUOTED, TIMM, "timm", ())
    assert judge("trainer.detect", unread) == ("n/a", "trainer.detect.na_unresolved")  # nothing read: no pass


# --- the command line ----------------------------------------------------------------------------


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "headaudit", *args], capture_output=True, text=True, cwd=cwd, env=env, check=False,
        timeout=300,
    )  # fmt: skip


def test_the_wrapper_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bad paths run in process (one line, exit 2, no traceback: an exception escaping
    ``main`` would fail the test the same way a traceback on stderr does)."""
    path = WRAPPERS / "timm_imagenet_exp.py"
    out = _cli("report", "--only", "trainer.detect,trainer.step", "--wrapper", str(path), "--format", "json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["environment"]["args"] == ["--wrapper", str(path)]
    wrapper = data["extra"]["hosts"][-1]
    assert (wrapper["variant"], wrapper["class"], wrapper["missing_module"]) == ("wrapper", "Model", "timm")
    assert {r["verdict"] for r in data["results"]} == {"n/a"}
    for bad, needle in (
        (str(tmp_path / "missing.py"), "does not exist"),
        (f"{path}:NoSuchClass", "has no class 'NoSuchClass'"),
    ):
        code, _, stderr = in_process(
            monkeypatch, capsys, tmp_path, "report", "--only", "trainer.detect", "--wrapper", bad
        )
        assert code == 2
        assert needle in stderr
        assert len(stderr.strip().splitlines()) == 1
        assert "Traceback" not in stderr
    assert "--wrapper PATH[:CLASS]" in _cli("report", "--help").stdout
