"""The audit contract for user files that differ from the references (issue: truthful on any head).

One group of tests per point: output capture, declared names, subject exceptions,
keywords and settings, name maps, claim roll-ups, imports, the report, the CLI, and a
subject that exits or hangs. Subjects are the small heads in ``tests/subjects``.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from torch import nn

from headaudit.checks import REGISTRY
from headaudit.claims import CLAIMS, judge_claim
from headaudit.context import Context
from headaudit.messages import Msg, render
from headaudit.model import Result
from headaudit.names import NameMap, closest, split_key, split_module, split_parameter
from headaudit.profiles import active_profile
from headaudit.reference.head_optimal import HeadOptimal
from headaudit.runner import run_check
from headaudit.subjects import bundled_reference, load_subject, make_subject
from tests.conftest import ROLES, SUBJECTS_DIR, LoadSubject, RunCheck
from tests.test_cli import in_process

ROOT = Path(__file__).resolve().parents[1]


def headaudit(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "headaudit", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env,
        check=False,
        timeout=timeout,
    )


# --- 1. what the subject prints never reaches the report -----------------------------


def test_a_printing_head_cannot_corrupt_json() -> None:
    out = headaudit(
        "report", "--only", "gate.convex", "--candidate", str(SUBJECTS_DIR / "printing_head.py"), "--format", "json"
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)  # valid JSON although the subject prints at import and in forward
    assert "printing_head" not in out.stderr
    candidate = next(r for r in data["results"] if r["subject"] == "candidate")
    assert "printing_head: forward" in candidate["output"]
    assert "printing_head: to stderr" in candidate["output"]
    assert "straight to fd 1" in candidate["output"]  # C-level writes to the descriptor too
    assert "UserWarning: printing_head: a warning" in candidate["output"]
    loaded = next(s for s in data["subjects"] if s["role"] == "candidate")
    assert "printing_head: imported" in loaded["load_output"]


@pytest.mark.parametrize("role", ROLES)
def test_output_is_kept_per_check(subject: LoadSubject, check: RunCheck, role: str) -> None:
    talking = subject("printing_head")
    assert "printing_head: forward" in check("gate.convex", talking, role).output
    assert check("ema.isolation", talking, role).output == ""  # no forward there: nothing printed


# --- 2. a part the head does not have is n/a, naming it --------------------------------


def _remove(obj: Any, path: str) -> None:
    """Make ``obj.<path>`` absent on this instance (attribute, module, buffer or method)."""
    *parents, last = path.split(".")
    for part in parents:
        obj = getattr(obj, part)
    tables = [obj.__dict__.get(t, {}) for t in ("_modules", "_parameters", "_buffers")]
    if any(last in t for t in tables) or last in obj.__dict__:
        delattr(obj, last)
    elif hasattr(obj, last):  # defined on the class: a subclass that sets it to None (absent to the audit)
        hidden = obj.__dict__.setdefault("_hidden", {})
        hidden[last] = getattr(obj, last)
        obj.__class__ = type(f"Without_{last}", (type(obj),), {last: None})


def _drop_key(head: Any, source: str, key: str) -> None:
    target = head if source == "forward" else getattr(head, source)
    forward = type(target).forward

    @functools.wraps(forward)  # keeps the signature the audit reads
    def without(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
        hidden = self.__dict__.get("_hidden", {})
        self.__dict__.update(hidden)  # the head's own code may still use what the audit must not see
        try:
            out = forward(self, *args, **kwargs)
        finally:
            for name in hidden:
                self.__dict__.pop(name, None)
        if isinstance(out, dict):
            out = {k: v for k, v in out.items() if k != key}
        elif isinstance(out, tuple) and len(out) == 3 and isinstance(out[2], dict):
            out = (*out[:2], {k: v for k, v in out[2].items() if k != key})
        return out

    target.__class__ = type(f"Without_{key}", (type(target),), {"forward": without})


def _without(alternatives: tuple[str, ...]) -> type:
    class Stripped(HeadOptimal):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            for name in alternatives:
                key = split_key(name)
                if split_module(name) is not None or split_parameter(name) is not None:
                    continue  # a module-level name or a forward parameter: stripped where it is declared
                if key is not None:
                    _drop_key(self, *key)
                else:
                    _remove(self, name)

    if any(split_parameter(name) is not None for name in alternatives):
        # forward's labels under a name the audit does not know (no **kwargs to take them)
        def forward(self: nn.Module, pool_img_features: Any, img_features: Any, other_name: Any = None) -> Any:
            return HeadOptimal.forward(self, pool_img_features, img_features, labels=other_name)  # type: ignore[arg-type]

        Stripped.forward = forward  # type: ignore[method-assign]
    return Stripped


def _stripped(alternatives: tuple[str, ...]) -> Any:
    """A subject without the names: attributes stripped from the head, module-level names from its module."""
    cls = _without(alternatives)
    module = ModuleType("stripped_subject")
    for name in ("HeadOptimal", "Head"):
        if f"module:{name}" not in alternatives:
            setattr(module, name, cls)
    return make_subject(cls, module=module)


_NEEDS = sorted({(c.id, n.alternatives) for c in REGISTRY for n in c.parsed if not n.optional})


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("check_id", "alternatives"), _NEEDS, ids=[f"{c}-{'|'.join(a)}" for c, a in _NEEDS])
def test_each_check_is_na_for_a_head_without_each_declared_name(
    check: RunCheck, check_id: str, alternatives: tuple[str, ...], role: str
) -> None:
    result = check(check_id, _stripped(alternatives), role)
    assert result.verdict == "n/a", result.summary("en")
    assert " | ".join(alternatives) in [m["name"] for m in result.evidence["missing"]]


@pytest.mark.parametrize("role", ROLES)
def test_other_loss_terms_are_na_with_a_suggestion(subject: LoadSubject, check: RunCheck, role: str) -> None:
    other = subject("other_terms")
    for check_id in ("contrastive.pairs", "contrastive.value", "contrastive.tiny"):
        assert check(check_id, other, role).verdict == "n/a"
    result = check("contrastive.value", other, role)
    names = {m["name"]: m["suggestion"] for m in result.evidence["missing"]}
    # align_loss, spread_loss and the cluster term are other terms, not renames of it
    (suggestion,) = names.values()
    assert suggestion is None or not any(t in suggestion for t in ("cluster", "sep", "align", "spread")), suggestion


@pytest.mark.parametrize("role", ROLES)
def test_conflicts_are_measured_on_the_terms_a_loss_has(subject: LoadSubject, check: RunCheck, role: str) -> None:
    partial = check("losses.conflicts", subject("other_terms:NoDiversity"), role)
    assert partial.verdict == "fail", partial.summary("en")  # cluster/separation still conflict
    assert partial.message.id == "losses.conflicts.fail_partial"
    assert partial.evidence["absent_terms"] == ["diversity"]
    pairs = {row["pair"] for table in partial.evidence["tables"] for row in table["pairs"]}
    assert pairs == {"cluster/separation", "cluster/contrastive", "separation/contrastive"}
    lone = check("losses.conflicts", subject("other_terms:ClusterOnly"), role)
    assert lone.verdict == "n/a"  # one term: no pair
    assert lone.evidence["missing"][0]["name"] == "proto_loss_fn[sep_loss]"


def test_a_renamed_loss_key_is_suggested() -> None:
    assert closest("contrastive_loss", ["cluster_loss", "contrast_loss", "proto_loss"]) == "contrast_loss"
    assert closest("div_loss", ["sep_loss", "cluster_loss"]) is None
    assert closest("expand_prototype", ["add_prototype", "get_prototypes"]) == "add_prototype"  # a verb renamed
    assert closest("compute_contrastive_loss", ["compute_cluster_loss"]) is None


def test_an_undeclared_name_is_the_check_s_own_error(references: dict[str, Any]) -> None:
    ctx = Context(references["candidate"], 0, active_profile(), frozenset({"proto_manager.prototypes"}), {})
    ctx.get(references["candidate"].probe, "proto_manager")  # a prefix of a declared name is allowed
    with pytest.raises(Exception, match="did not declare"):
        ctx.get(references["candidate"].probe, "mixed_attn")


# --- 3. a subject that raises is not a refutation ---------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_a_head_count_that_cannot_be_built_is_avoided(subject: LoadSubject, check: RunCheck, role: str) -> None:
    split = subject("split_heads")
    ctx = Context(split, 0, active_profile(), frozenset(), {})
    built = ctx.build_full(num_classes=3, emb_dim=16, num_heads=1)  # 1 // 2 heads would raise: another count
    assert built.sizes[2] != 1
    for check_id in ("contrastive.pairs", "gate.convex"):
        assert check(check_id, split, role).verdict == "pass"


# --- 4. keywords are never dropped silently; settings are read back ---------------------


@pytest.mark.parametrize("role", ROLES)
def test_a_compat_subclass_gets_its_forwarded_keywords(subject: LoadSubject, check: RunCheck, role: str) -> None:
    compat = subject("compat_kwargs:Head")
    result = check("ema.standard", compat, role)
    assert result.verdict == "pass"
    assert sorted(r["momentum"] for r in result.evidence["per_momentum"]) == [0.1, 0.5, 0.9, 0.99]
    ctx = Context(compat, 0, active_profile(), frozenset(), {}, ("momentum", "margin"))
    built = ctx.build_full(num_classes=3, emb_dim=8, max_prototypes=5, momentum=0.5, margin=2.0)
    assert built.refused == {"max_prototypes": ("refused", built.refused["max_prototypes"][1])}
    assert "multiple values" in built.refused["max_prototypes"][1]
    assert built.settings["momentum"] == 0.5
    assert built.settings["margin"] == 2.0
    assert built.settings["max_prototypes"] == 3  # what the head really has, shown as such


class _IgnoresMomentum(HeadOptimal):
    def __init__(self, *args: Any, momentum: float = 0.9, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # drops `momentum` on the floor


class _NoMomentumKeyword(HeadOptimal):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, dropout_rate: float = 0.1):
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, dropout_rate=dropout_rate)


@pytest.mark.parametrize("role", ROLES)
def test_a_setting_that_does_not_take_effect_is_na(check: RunCheck, role: str) -> None:
    ignored = check("ema.standard", make_subject(_IgnoresMomentum), role)
    assert ignored.verdict == "n/a"
    assert "did not take effect" in ignored.summary("en") or "accepted none" in ignored.summary("en")
    refused = check("ema.standard", make_subject(_NoMomentumKeyword), role)
    assert refused.verdict == "n/a"
    assert "momentum" in refused.summary("en")


# --- 5. name maps ----------------------------------------------------------------------

_RENAMED = (("proto_manager.momentum_update", "proto_manager.momentum_update_fixed"),)


@pytest.mark.parametrize("role", ROLES)
def test_a_renamed_method_is_na_with_a_suggestion_and_passes_when_mapped(
    subject: LoadSubject, check: RunCheck, role: str
) -> None:
    plain = check("ema.standard", subject("renamed_ema"), role)
    assert plain.verdict == "n/a"
    assert plain.evidence["missing"][0]["suggestion"] == "proto_manager.momentum_update_fixed"
    mapped = subject("renamed_ema", _RENAMED)
    for check_id in ("ema.standard", "ema.unit-norm", "ema.isolation"):
        assert check(check_id, mapped, role).verdict == "pass", check_id


@pytest.mark.parametrize("role", ROLES)
def test_a_map_leaves_a_subject_that_keeps_the_original_name_alone(
    subject: LoadSubject, check: RunCheck, role: str
) -> None:
    """One ``--map`` serves both slots: the original file beside a renamed copy is measured as it is."""
    original = load_subject(str(bundled_reference("head_optimal.py")), names=NameMap(_RENAMED))
    for check_id in ("ema.standard", "ema.isolation"):
        assert check(check_id, original, role).verdict == "pass", check_id
    both_absent = subject("other_terms", (("proto_loss_fn[div_loss]", "proto_loss_fn[diversity]"),))
    result = check("loss.diversity-value", both_absent, role)
    assert result.verdict == "n/a"  # neither name there: the mapped one is named
    assert result.evidence["missing"][0]["looked_for"] == "proto_loss_fn[diversity]"


def test_maps_from_the_command_line_and_from_pyproject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In process (the maps are read from the command line and the config, not the process)."""

    def run(*args: str, cwd: Path) -> tuple[int, str, str]:
        return in_process(monkeypatch, capsys, cwd, *args)

    renamed = str(SUBJECTS_DIR / "renamed_ema.py")
    args = ["report", "--only", "ema.standard", "--candidate", renamed, "--format", "json"]
    on_cli = json.loads(run(*args, "--map", "=".join(_RENAMED[0]), cwd=tmp_path)[1])
    assert on_cli["environment"]["maps"] == [list(_RENAMED[0])]
    assert "--map" in on_cli["environment"]["args"]
    (tmp_path / "pyproject.toml").write_text(
        '[tool.headaudit.map]\n"proto_manager.momentum_update" = "proto_manager.momentum_update_fixed"\n'
    )
    from_file = json.loads(run(*args, cwd=tmp_path)[1])
    verdicts = {r["subject"]: r["verdict"] for r in from_file["results"]}
    assert verdicts["candidate"] == "pass"
    md = run("report", "--only", "ema.standard", "--candidate", renamed, cwd=tmp_path)[1]
    assert "name maps in use: `proto_manager.momentum_update=proto_manager.momentum_update_fixed`" in md
    (tmp_path / "pyproject.toml").write_text("[tool.headaudit.map]\nx = 3\n")
    code, _, stderr = run(*args, cwd=tmp_path)
    assert code == 2
    assert "[tool.headaudit.map]" in stderr


# --- 6. claim roll-ups -----------------------------------------------------------------


def _result(check_id: str, verdict: str, role: str = "candidate") -> Result:
    return Result(check_id, role, verdict, Msg("common.check_failed", {"detail": "x"}), {})  # type: ignore[arg-type]


def _claim(ref: str) -> Any:
    return next(c for c in CLAIMS if c.ref == ref)


def test_claim_rollups() -> None:
    c13 = _claim("1.3")
    # a failing caveat check does not refute while core checks did not run
    got = judge_claim(c13, [_result("ema.standard", "n/a"), _result("ema.unit-norm", "fail")])
    assert got.verdict == "not-judged"
    got = judge_claim(c13, [_result("ema.isolation", "pass"), _result("ema.unit-norm", "fail")])
    assert got.verdict == "partly-measured"
    assert got.message.params["checks"] == ["ema.standard"]
    # core passed, caveats failed: holds with caveats, naming them
    passing = [_result("ema.standard", "pass"), _result("ema.isolation", "pass")]
    got = judge_claim(c13, [*passing, _result("ema.unit-norm", "fail"), _result("ema.initial-norm", "fail")])
    assert got.verdict == "caveats"
    assert got.message.params["checks"] == ["ema.unit-norm", "ema.initial-norm"]
    assert judge_claim(c13, passing).verdict == "confirmed"
    # two of three core checks missing is never "confirmed"
    c22 = _claim("2.2")
    assert judge_claim(c22, [_result("compat.forward", "pass")]).verdict == "partly-measured"
    # a baseline failure says nothing of a claim about the candidate
    c11 = _claim("1.1")
    got = judge_claim(c11, [_result("contrastive.pairs", "fail", "baseline"), _result("contrastive.pairs", "n/a")])
    assert got.verdict == "not-judged"
    # a failing core check refutes even when others did not run
    assert judge_claim(c11, [_result("contrastive.pairs", "fail")]).verdict == "refuted"


def test_a_gap_no_fix_can_give_is_said_by_the_claim_not_by_a_softer_verdict() -> None:
    c22 = _claim("2.2")
    others = [_result(c, "pass") for c in ("compat.forward", "compat.constructor", "compat.manager-api")]
    redesigned = Result(
        "compat.checkpoint",
        "candidate",
        "fail",
        Msg("common.check_failed", {"detail": "x"}),
        {"changed_modules": ["mixed_attn.gate.1", "mixed_attn.gate.2"]},
    )
    got = judge_claim(c22, [*others, redesigned])
    assert got.verdict == "refuted"  # the checkpoint does not load: the claim is refuted all the same
    assert got.message.id == "claim.verdict.with_limits"
    text = render(got.message, "en")
    assert "refuted by compat.checkpoint" in text
    assert "no fix can give" in text
    assert "`mixed_attn.gate.1`, `mixed_attn.gate.2`" in text
    assert "`mixed_attn.gate.1`" in render(got.message, "zh")
    # a gap a fix could close (a rename, a buffer): no such sentence
    mappable = Result("compat.checkpoint", "candidate", "fail", Msg("common.check_failed", {"detail": "x"}), {})
    assert judge_claim(c22, [*others, mappable]).message.id == "claim.verdict.refuted"
    # evidence on another subject, or a passing check, adds nothing
    baseline = Result("compat.checkpoint", "baseline", "fail", redesigned.message, redesigned.evidence)
    assert judge_claim(c22, [*others, _result("compat.checkpoint", "pass"), baseline]).verdict == "confirmed"


def test_claims_on_the_references(reference_report: Any) -> None:
    expected = {"1.1": "confirmed", "1.2": "confirmed", "1.3": "caveats", "1.4": "refuted"}
    for ref, verdict in expected.items():
        claim = reference_report.claim(ref)
        assert claim.verdict == verdict, (ref, claim.message)
        assert claim.subject == "candidate"
    premise = reference_report.claim("1.4").premise
    assert premise["holds"] is False
    assert "aligned" in premise["measured"]
    as_json = reference_report.to_dict()["claims"]
    assert {c["id"] for c in as_json} >= set(expected)
    one = next(c for c in as_json if c["id"] == "1.3")
    assert set(one) >= {"id", "verdict", "subject", "core", "caveats"}
    assert {p["check"]: p["verdict"] for p in one["core"]} == {"ema.standard": "pass", "ema.isolation": "pass"}


# --- 7. imports --------------------------------------------------------------------------


def _pycache(folder: Path) -> list[Path]:
    return list(folder.rglob("__pycache__"))


@pytest.mark.usefixtures("bytecode_written")
@pytest.mark.parametrize("path", ["sibling/head.py", "relpkg/head.py"])
def test_sibling_and_relative_imports_load_and_leave_no_trace(path: str) -> None:
    before_path, before_modules = list(sys.path), set(sys.modules)
    loaded = load_subject(str(SUBJECTS_DIR / path))
    assert loaded.head_cls.mark in ("sibling", "relpkg")
    assert sys.path == before_path
    assert not {m for m in set(sys.modules) - before_modules if m.split(".")[0] in ("blocks", "relpkg")}
    assert not _pycache(SUBJECTS_DIR / Path(path).parent)


@pytest.mark.usefixtures("bytecode_written")
def test_same_named_siblings_of_two_subjects_do_not_mix(tmp_path: Path) -> None:
    for side in ("one", "two"):
        folder = tmp_path / side
        folder.mkdir()
        (folder / "blocks.py").write_text(f"MARK = {side!r}\n")
        (folder / "head.py").write_text(
            "from blocks import MARK\nfrom headaudit.reference.head_optimal import HeadOptimal as _B\n"
            "class HeadOptimal(_B):\n    mark = MARK\n"
        )
    one = load_subject(str(tmp_path / "one" / "head.py"))
    two = load_subject(str(tmp_path / "two" / "head.py"))
    assert (one.head_cls.mark, two.head_cls.mark) == ("one", "two")
    assert not _pycache(tmp_path)


def test_messages_name_the_file_s_module_not_the_loader_s(tmp_path: Path, check: RunCheck) -> None:
    """A subject's exception quotes ``head.HeadOptimal``, never the unique name the loader gave the module."""
    (tmp_path / "head.py").write_text(
        "from headaudit.reference.head_optimal import Head as _H\n"
        "class Head(_H):\n"
        "    def __init__(self, *args, var_threshold=None, **kwargs):\n"
        "        if var_threshold is not None:\n"
        "            raise TypeError(f'{type(self).__module__}.Head refuses var_threshold')\n"
        "        super().__init__(*args, **kwargs)\n"
    )
    result = check("compat.constructor", load_subject(str(tmp_path / "head.py") + ":Head"), "candidate")
    text = result.summary("en")
    assert "head.Head refuses" in text, text
    assert "headaudit_subject_" not in text, text


def test_the_console_script_loads_a_head_with_a_sibling_import(tmp_path: Path) -> None:
    out = headaudit("report", "--only", "gate.convex", "--candidate", str(SUBJECTS_DIR / "sibling" / "head.py"))
    assert out.returncode == 0, out.stderr
    assert "`tests/subjects/sibling/head.py`" in out.stdout  # shown relative to the working directory
    assert "`headaudit:reference/head.py`" in out.stdout  # the bundled reference


# --- 10. a subject cannot take the audit down ---------------------------------------------


def test_a_head_that_exits_is_an_error_and_the_report_is_written() -> None:
    out = headaudit(
        "report", "--only", "gate.convex,ema.standard", "--candidate", str(SUBJECTS_DIR / "exiting_head.py")
    )
    assert out.returncode == 1
    assert "SystemExit" in out.stdout
    assert "## Reproducibility" in out.stdout


def test_a_head_that_hangs_exceeds_its_budget_and_the_audit_goes_on() -> None:
    out = headaudit(
        "report",
        "--only",
        "gate.convex,ema.standard",
        "--candidate",
        str(SUBJECTS_DIR / "hanging_head.py"),
        "--timeout",
        "2",
        "--format",
        "json",
        timeout=120,
    )
    assert out.returncode == 1
    data = json.loads(out.stdout)
    verdicts = {(r["check"], r["subject"]): r for r in data["results"]}
    hung = verdicts[("gate.convex", "candidate")]
    assert hung["verdict"] == "error"
    assert "exceeded 2 s" in hung["summary"]["en"]
    after = verdicts[("ema.standard", "candidate")]  # the next check still ran, and did not wait again
    assert after["verdict"] == "error"
    assert "not a working head: one training step and one eval pass did not end within 2 s" in after["summary"]["en"]
    assert "--timeout" in data["environment"]["args"]


def test_the_time_limit_interrupts_a_python_loop(references: dict[str, Any]) -> None:
    from headaudit.checks import by_id

    hanging = load_subject(str(SUBJECTS_DIR / "hanging_head.py"))
    found = by_id("gate.convex")
    assert found is not None
    result = run_check(found, hanging, "candidate", seed=0, profile=active_profile(), timeout=0.5)
    assert result.verdict == "error"
    assert result.evidence == {"timeout_seconds": 0.5}


def test_name_map_parsing() -> None:
    from headaudit.errors import ConfigError
    from headaudit.names import parse_map

    maps = NameMap(parse_map(["proto_manager=prototypes", "proto_loss_fn[div_loss]=proto_loss_fn[spread]"]))
    assert maps.apply("proto_manager.momentum_update") == "prototypes.momentum_update"
    assert maps.apply("proto_loss_fn[div_loss]") == "proto_loss_fn[spread]"
    assert maps.apply("mixed_attn.norm1") == "mixed_attn.norm1"
    for bad in ("no-equals", "a.b=", "a.b=c[d]", "=x"):
        with pytest.raises(ConfigError):
            parse_map([bad])
