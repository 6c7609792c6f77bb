"""What the original report missed: class weights, static findings, graph breaks, the section, SARIF.

The verdicts on the references and the hand-made subjects (both slots) are in
``tests/expectations.py`` and run by ``test_checks.py``; this module tests what those
cannot: static checks on hand-made head files, one pattern each (flagged and not
flagged, on and off the forward path); the judges on hand-made measurements; the
simulation's reproducibility; dynamo failing; the report section and the SARIF log.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from textwrap import dedent
from typing import Any

import numpy as np
import pytest

from headaudit.bench.results import GraphBreaks
from headaudit.checks import by_id
from headaudit.checks import compile as compile_area
from headaudit.checks.compile import BreakSite, CompileMeasurement, Trace, normalise_reason
from headaudit.checks.static import Site, StaticMeasurement
from headaudit.checks.weights import (
    DATA_COUNTS,
    MARGIN,
    AbsentMeasurement,
    AbsentMode,
    CbMeasurement,
    Comparison,
    DataShare,
    DirectCase,
    ShrinkStats,
    simulated_batches,
)
from headaudit.messages import Msg, render
from headaudit.model import CheckInfo, Report, Result
from headaudit.render.markdown import render_markdown
from headaudit.render.missed import render_missed, why
from headaudit.render.sarif import LEVELS, SARIF_VERSION, render_sarif, sarif_log
from headaudit.subjects import Subject, bundled_reference, load_subject
from tests.conftest import ROLES, RunCheck, part_of
from tests.test_cli import in_process

ROOT = Path(__file__).resolve().parents[1]
MISSED = (
    "weights.absent-classes",
    "weights.cb-vs-inverse",
    "static.host-syncs",
    "static.class-loops",
    "static.data-writes",
    "compile.graph-breaks",
)


def _checks() -> list[Any]:
    found = [by_id(c) for c in MISSED]
    assert all(found)
    return found


@pytest.fixture(scope="module")
def missed_report(reference_report: Report) -> Report:
    """The section's checks on the references, as the CLI runs them: cut from the suite's
    one full audit of the references (each pair starts from the run's seed, so it is the
    result an audit of these checks alone measures)."""
    return part_of(reference_report, [c.id for c in _checks()])


# --- static checks on hand-made head files ----------------------------------------------------

_HEAD = """
import torch
import torch.nn.functional as F
from torch import nn


class Loss(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.num_classes = num_classes

    def forward(self, sims, labels):
{loss}


class Head(nn.Module):
    def __init__(self, num_classes, emb_dim, num_heads, img_feat_dim, **kwargs):
        super().__init__()
        self.num_classes = num_classes
        self.proj = nn.Linear(img_feat_dim, num_classes)
        self.scale = nn.Parameter(torch.ones(num_classes))
        self.proto_loss_fn = Loss(num_classes)

    def forward(self, pool_img_features, img_features, labels=None):
{forward}

    def update(self, value):
{update}


class Unused(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))

    def forward(self, x):
        self.w.data.zero_()
        return x.sum().item()
"""

_PLAIN_LOSS = "        return (1 - sims).mean()"
_PLAIN_FORWARD = """\
        logits = self.proj(img_features) * self.scale
        if self.training and labels is not None:
            return logits, self.proto_loss_fn(logits, labels)
        return logits, logits.new_zeros(())"""
_PLAIN_UPDATE = """\
        with torch.no_grad():
            self.scale.copy_(value)"""


def _indent(code: str) -> str:
    return "\n".join("        " + line if line else line for line in dedent(code).strip("\n").splitlines())


def _write(tmp_path: Path, name: str, *, loss: str = "", forward: str = "", update: str = "") -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(
        _HEAD.format(
            loss=_indent(loss) if loss else _PLAIN_LOSS,
            forward=_indent(forward) if forward else _PLAIN_FORWARD,
            update=_indent(update) if update else _PLAIN_UPDATE,
        )
    )
    return path


_FORWARD_HEAD = """\
logits = self.proj(img_features) * self.scale
"""
_FORWARD_TAIL = """
if self.training and labels is not None:
    return logits, self.proto_loss_fn(logits, labels)
return logits, logits.new_zeros(())
"""

STATIC_CASES: dict[str, tuple[str, dict[str, str], str]] = {
    # rule, the parts of the head file that differ, the verdict
    "clean": ("host-syncs", {}, "pass"),
    "item-in-forward": (
        "host-syncs",
        {"forward": _FORWARD_HEAD + "self.last = logits.max().item()" + _FORWARD_TAIL},
        "fail",
    ),
    "if-on-tensor-in-loss": (
        "host-syncs",
        {"loss": "if labels.sum() == 0:\n    return sims.sum() * 0\nreturn (1 - sims).mean()"},
        "fail",
    ),
    "nonzero-in-loss": ("host-syncs", {"loss": "rows = torch.nonzero(labels)\nreturn (1 - sims[rows]).mean()"}, "fail"),
    "size-and-training-checks": (
        "host-syncs",
        {
            "forward": _FORWARD_HEAD
            + "if logits.size(0) <= 1 or labels is None:\n    return logits, logits.sum() * 0"
            + _FORWARD_TAIL
        },
        "pass",
    ),
    "item-off-path": ("host-syncs", {"update": "self.seen = value.sum().item()"}, "pass"),
    "class-loop-in-loss": (
        "class-loops",
        {
            "loss": "total = sims.sum() * 0\nfor c in range(self.num_classes):\n    total = total + sims[:, c].mean()\n"
            "return total"
        },
        "fail",
    ),
    "loop-over-fixed-range": (
        "class-loops",
        {"loss": "total = sims.sum() * 0\nfor k in range(3):\n    total = total + sims.mean() * k\nreturn total"},
        "pass",
    ),
    "data-write-in-forward": (
        "data-writes",
        {"forward": "self.scale.data.clamp_(min=0)\n" + _FORWARD_HEAD + _FORWARD_TAIL},
        "fail",
    ),
    "data-write-off-path": ("data-writes", {"update": "self.scale.data[0] = value"}, "warn"),
    "data-read-only": ("data-writes", {"update": "self.saved = self.scale.data.clone()"}, "pass"),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", sorted(STATIC_CASES))
def test_static_checks_on_hand_made_heads(tmp_path: Path, check: RunCheck, case: str, role: str) -> None:
    rule, parts, verdict = STATIC_CASES[case]
    subject = load_subject(f"{_write(tmp_path, case, **parts)}:Head")
    result = check(f"static.{rule}", subject, role)
    assert result.verdict == verdict, (result.summary("en"), result.evidence)
    sites = result.evidence["sites"]
    if verdict == "pass":
        assert sites == []
        return
    source = Path(subject.path).read_text().splitlines()
    for site in sites:  # file:line and the source line, as the report shows the file
        assert site["file"] == subject.display
        assert source[site["line"] - 1].strip() == site["source"]
    assert all(s["function"] != "Unused.forward" for s in sites)  # a class the head does not use


_NESTED = """
import torch
from torch import nn


class Loss(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.n_cls = num_classes

    def others(self, sims, c):
        out = sims.sum() * 0
        for o in range(self.n_cls):
            out = out + sims[:, o].mean() * (o != c)
        return out

    def forward(self, sims, labels):
        total = sims.sum() * 0
        for c in range(self.n_cls):
            total = total + self.others(sims, c)
        return total


class Head(nn.Module):
    def __init__(self, num_classes, emb_dim, num_heads, img_feat_dim, **kwargs):
        super().__init__()
        self.proj = nn.Linear(img_feat_dim, num_classes)
        self.proto_loss_fn = Loss(num_classes)

    def forward(self, pool_img_features, img_features, labels=None):
        logits = self.proj(img_features)
        if self.training and labels is not None:
            return logits, self.proto_loss_fn(logits, labels)
        return logits, logits.new_zeros(())
"""


def test_class_loop_depth_counts_across_calls(tmp_path: Path, check: RunCheck) -> None:
    path = tmp_path / "nested.py"
    path.write_text(_NESTED)
    result = check("static.class-loops", load_subject(f"{path}:Head"))
    assert result.verdict == "fail"
    assert sorted(s["depth"] for s in result.evidence["sites"]) == [1, 2]  # the inner loop sits in a helper
    assert "nested up to 2 deep" in result.summary("en")


@pytest.mark.parametrize("role", ROLES)
def test_a_forward_defined_in_another_file_is_not_applicable(tmp_path: Path, check: RunCheck, role: str) -> None:
    path = tmp_path / "subclass.py"
    path.write_text("from headaudit.reference.head_optimal import HeadOptimal as _B\n\n\nclass Mine(_B):\n    pass\n")
    subject = load_subject(f"{path}:Mine")
    for rule in ("host-syncs", "class-loops", "data-writes"):
        result = check(f"static.{rule}", subject, role)
        assert result.verdict == "n/a"
        assert result.evidence["defined_in"] == "headaudit:reference/head_optimal.py"
    reexport = tmp_path / "reexport.py"
    reexport.write_text("from headaudit.reference.head_optimal import HeadOptimal\n")
    result = check("static.host-syncs", load_subject(str(reexport)), role)
    assert result.verdict == "n/a"
    assert result.evidence["elsewhere"] == "class"


_PACKAGE = {
    "__init__.py": "",
    "layers.py": """
import torch
from torch import nn


class Manager(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.num_classes = num_classes
        self.protos = nn.Parameter(torch.randn(num_classes, 4))
        self.register_buffer("counts", torch.ones(num_classes))

    def indices(self):
        return [int(self.counts[c].item()) for c in range(self.num_classes)]

    def expand(self, c, v):
        self.protos.data[c] = v
""",
    "losses.py": """
import torch
from torch import nn


class Loss(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.num_classes = num_classes

    def forward(self, sims, labels):
        total = torch.zeros((), dtype=sims.dtype)
        for c in range(self.num_classes):
            for o in range(self.num_classes):
                total = total + sims[:, o].mean() * (o != c)
        return total
""",
    "head.py": """
from torch import nn

from .layers import Manager
from .losses import Loss


class Head(nn.Module):
    def __init__(self, num_classes, emb_dim, num_heads, img_feat_dim, **kwargs):
        super().__init__()
        self.proj = nn.Linear(img_feat_dim, num_classes)
        self.proto_manager = Manager(num_classes)
        self.proto_loss_fn = Loss(num_classes)

    def forward(self, pool_img_features, img_features, labels=None):
        self.proto_manager.indices()
        logits = self.proj(img_features)
        if self.training and labels is not None:
            return logits, self.proto_loss_fn(logits, labels)
        return logits, logits.new_zeros(())
""",
}


@pytest.mark.parametrize("role", ROLES)
def test_a_head_split_over_a_package_is_scanned_and_traced_whole(tmp_path: Path, check: RunCheck, role: str) -> None:
    """The manager and the loss live in sibling modules: their host reads, loops and writes are found."""
    package = tmp_path / "splitpkg"
    package.mkdir()
    for name, text in _PACKAGE.items():
        (package / name).write_text(text)
    subject = load_subject(f"{package / 'head.py'}:Head")
    syncs = check("static.host-syncs", subject, role)
    assert syncs.verdict == "fail", syncs.summary("en")
    assert any(s["file"].endswith("layers.py") and ".item()" in s["source"] for s in syncs.evidence["sites"])
    loops = check("static.class-loops", subject, role)
    assert loops.verdict == "fail"
    deepest = max(loops.evidence["sites"], key=lambda s: s["depth"])
    assert (deepest["depth"], Path(deepest["file"]).name) == (2, "losses.py")
    writes = check("static.data-writes", subject, role)
    assert writes.verdict == "warn", writes.summary("en")
    assert [Path(s["file"]).name for s in writes.evidence["sites"]] == ["layers.py"]
    assert [Path(f).name for f in writes.evidence["files"]] == ["head.py", "layers.py", "losses.py"]
    traced = check("compile.graph-breaks", subject, role)  # dynamo imports the package's modules by name
    assert traced.verdict in ("pass", "fail"), traced.summary("en")
    assert not [m for m in sys.modules if m.split(".")[0] == "splitpkg"]


# --- judges on hand-made measurements -----------------------------------------------------------


def _judge(check_id: str, measurement: object) -> tuple[str, str]:
    found = by_id(check_id)
    assert found is not None
    finding = found.judge(measurement)
    for lang in ("en", "zh"):  # every branch renders in both languages
        assert render(finding.message, lang)
    return finding.verdict, finding.message.id


def _direct(factor: float) -> DirectCase:
    return DirectCase(3, 7, 0.3, 0.3 * factor, factor, 1e-6, (0.1,), (0.1 * factor,))


def _shrink(changed: int = 0, measured: int = 10, median: float = 1.0) -> ShrinkStats:
    return ShrinkStats(16, measured, 0, changed, median, median, median, median)


def _absent(*modes: AbsentMode, unavailable: dict[str, str] | None = None) -> AbsentMeasurement:
    return AbsentMeasurement((5, 3, 2, 1), modes, unavailable or {}, DATA_COUNTS, (DataShare(16, 10, 0.9, 2.0),), 0)


def _mode(direct: float = 1.0, changed: int = 0, measured: int = 10, label: str = "own") -> AbsentMode:
    return AbsentMode(label, {}, (_direct(direct),), (_shrink(changed, measured),), 1e-6, "float32")


def test_absent_classes_rules() -> None:
    assert _judge("weights.absent-classes", _absent(_mode())) == ("pass", "weights.absent-classes.pass")
    one = _absent(_mode(), unavailable={"use_class_balanced=True": "no-keyword"})
    assert _judge("weights.absent-classes", one) == ("pass", "weights.absent-classes.pass_one_mode")
    assert _judge("weights.absent-classes", _absent(_mode(0.01)))[0] == "fail"
    assert _judge("weights.absent-classes", _absent(_mode(1.0, changed=3)))[0] == "fail"  # the simulation alone
    two = _absent(_mode(1.0, label="use_class_balanced=True"), _mode(0.2, label="use_class_balanced=False"))
    assert _judge("weights.absent-classes", two)[0] == "fail"  # one mode is enough
    nothing = _absent(AbsentMode("own", {}, (_direct(float("nan")),), (_shrink(measured=0),), 1e-6, "float32"))
    assert _judge("weights.absent-classes", nothing) == ("error", "weights.absent-classes.nothing")


def _comparison(batch: float, dataset: float, batches: int = 24, mode: str = "use_class_balanced=True") -> Comparison:
    return Comparison(mode, {}, batches, batch, (3, 1), dataset, (0.5, 0.5), (0.5, 0.5), 0)


def test_cb_vs_inverse_rules() -> None:
    def cb(balanced: Comparison | None, *others: Comparison) -> CbMeasurement:
        return CbMeasurement(
            balanced,
            others,
            {} if balanced else {"use_class_balanced=True": "no-keyword"},
            MARGIN,
            DATA_COUNTS,
            40,
            0.9999,
        )

    assert _judge("weights.cb-vs-inverse", cb(_comparison(0.2, 0.5)))[0] == "pass"
    assert _judge("weights.cb-vs-inverse", cb(_comparison(0.01, 0.35)))[0] == "warn"
    assert _judge("weights.cb-vs-inverse", cb(_comparison(0.0, 0.0)))[0] == "fail"
    assert _judge("weights.cb-vs-inverse", cb(_comparison(MARGIN, MARGIN)))[0] == "fail"  # the margin is inclusive
    own = _comparison(4.7, 4.3, mode="own")
    assert _judge("weights.cb-vs-inverse", cb(None, own)) == ("n/a", "weights.cb-vs-inverse.no_mode")
    assert _judge("weights.cb-vs-inverse", cb(None))[0] == "error"
    assert _judge("weights.cb-vs-inverse", cb(_comparison(0.2, float("nan"), batches=0)))[0] == "error"
    inert = dataclasses.replace(
        cb(_comparison(0.2, 0.5), _comparison(0.2, 0.5, mode="x")), modes_difference=0.0, modes_tolerance=1e-6
    )
    assert _judge("weights.cb-vs-inverse", inert) == ("fail", "weights.cb-vs-inverse.inert")


def _static(rule: str, sites: tuple[Site, ...], path: tuple[str, ...] = ("H.forward",)) -> StaticMeasurement:
    return StaticMeasurement(rule, "h.py", "H", path, sites, ("H",))


def _site(on_path: bool = True, depth: int | None = None) -> Site:
    return Site("h.py", 3, 5, "x.item()", "conversion", ".item()", "H.forward", on_path, depth)


def test_static_rules() -> None:
    assert _judge("static.host-syncs", _static("host-syncs", ()))[0] == "pass"
    assert _judge("static.host-syncs", _static("host-syncs", (_site(),)))[0] == "fail"
    assert _judge("static.host-syncs", _static("host-syncs", (), path=()))[0] == "error"  # nothing scanned
    assert _judge("static.class-loops", _static("class-loops", (_site(depth=2),)))[0] == "fail"
    assert _judge("static.data-writes", _static("data-writes", (_site(False),)))[0] == "warn"
    assert _judge("static.data-writes", _static("data-writes", (_site(False), _site(True))))[0] == "fail"
    assert _judge("static.data-writes", _static("data-writes", ()))[0] == "pass"
    elsewhere = StaticMeasurement("host-syncs", "h.py", "H", (), (), elsewhere="forward", defined_in="b.py")
    assert _judge("static.host-syncs", elsewhere) == ("n/a", "static.elsewhere.forward")


def test_compile_rules() -> None:
    site = BreakSite("Data-dependent branching", 1, "h.py", 3, "if x.sum() > 0:", True)
    fail = CompileMeasurement((Trace(4, 8, 3, 2, (site,)), Trace(8, 8, 3, 2, (site,))), "h.py")
    assert _judge("compile.graph-breaks", fail) == ("fail", "compile.graph-breaks.fail")
    clean = CompileMeasurement((Trace(4, 8, 1, 0, ()),), "h.py")
    assert _judge("compile.graph-breaks", clean) == ("pass", "compile.graph-breaks.pass")
    nothing = CompileMeasurement((Trace(4, 8, 0, 0, ()),), "h.py")
    assert _judge("compile.graph-breaks", nothing)[0] == "error"
    broken = CompileMeasurement((Trace(4, 8, None, None, (), "dynamo.explain raised X"),), "h.py")
    assert _judge("compile.graph-breaks", broken) == ("error", "compile.graph-breaks.error")


# --- the simulation, dynamo, determinism ---------------------------------------------------------


def test_simulated_batches_are_seeded_loader_batches() -> None:
    a, b = simulated_batches(3, 32, 50), simulated_batches(3, 32, 50)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, simulated_batches(4, 32, 50), strict=True))
    first_epoch = np.concatenate(simulated_batches(0, 16, sum(DATA_COUNTS) // 16))
    counts = np.bincount(first_epoch, minlength=len(DATA_COUNTS))
    assert all(counts <= DATA_COUNTS)  # drawn without replacement within an epoch
    assert sum(DATA_COUNTS) - counts.sum() < 16  # only the last, short batch is dropped


def test_weights_evidence_on_the_references(missed_report: Report) -> None:
    base = missed_report.result("weights.absent-classes", "baseline")
    cand = missed_report.result("weights.absent-classes", "candidate")
    assert base is not None
    assert cand is not None
    assert [m["mode"] for m in base.evidence["modes"]] == ["own"]  # head.py has one weighting, named as such
    assert {m["mode"] for m in cand.evidence["modes"]} == {"use_class_balanced=True", "use_class_balanced=False"}
    for mode in cand.evidence["modes"]:
        assert mode["read_back"] == {"use_class_balanced": mode["mode"].endswith("True")}
        seven = next(c for c in mode["direct"] if c["classes_with"] == 7)
        assert seven["factor"] < 0.05  # the present classes' loss collapses
        assert len(seven["private_weights_with"]) == 7  # _get_class_weight, as extra evidence
        assert all(s["median"] < 0.1 for s in mode["simulation"])
    for mode in base.evidence["modes"]:
        assert all(c["factor"] == 1.0 for c in mode["direct"])
        assert all(s["changed"] == 0 and s["median"] == 1.0 for s in mode["simulation"])
    shares = {d["batch"]: d["missing_share"] for d in cand.evidence["data"]}
    assert shares[16] > shares[32] > shares[64] > 0.5  # long-tailed batches usually miss a class
    assert base.evidence["data"] == cand.evidence["data"]  # the data, not the head


def test_dynamo_failing_is_an_error_with_why(
    monkeypatch: pytest.MonkeyPatch, check: RunCheck, references: dict[str, Subject]
) -> None:
    def broken(*args: Any, num_classes: int, batch: int) -> GraphBreaks:
        return GraphBreaks(num_classes, batch, None, None, (), "torch._dynamo unavailable: ImportError: no dynamo")

    monkeypatch.setattr(compile_area, "graph_breaks", broken)
    result = check("compile.graph-breaks", references["candidate"])
    assert result.verdict == "error"
    assert "no dynamo" in result.summary("en")


def test_break_reasons_lose_addresses() -> None:
    assert normalise_reason("<function f at 0x7f3a2b1c>, id=140234") == "<function f at 0x…>, id=…"


def test_graph_breaks_map_to_the_subject_lines(missed_report: Report) -> None:
    for role, name in (("baseline", "head.py"), ("candidate", "head_optimal.py")):
        result = missed_report.result("compile.graph-breaks", role)
        assert result is not None
        first = result.evidence["traces"][0]
        assert first["num_classes"] == 4
        assert first["breaks"] > 0
        lines = bundled_reference(name).read_text().splitlines()
        for site in first["sites"]:
            assert site["in_subject"]
            assert site["file"] == f"headaudit:reference/{name}"
            assert lines[site["line"] - 1].strip() == site["source"]
            assert "0x" not in site["reason"] or "0x…" in site["reason"]


# --- the report section ----------------------------------------------------------------------------


def test_the_section_shows_every_missed_check_with_severity_and_numbers(missed_report: Report) -> None:
    md = render_markdown(missed_report, "en")
    section = md.split("## Findings the original report missed")[1].split("## Reproducibility")[0]
    for check_id in MISSED:
        info = missed_report.check(check_id)
        assert info is not None
        assert info.group == "missed"
        assert f"| `{check_id}` " in section
        assert f"`{check_id}`: {info.title('en')}" in section
    assert section.count("**Why it matters for long-tailed training.**") == len(MISSED)
    assert section.count("- **severity**: ") == len(MISSED)
    cand = missed_report.result("weights.absent-classes", "candidate")
    assert cand is not None
    for share in cand.evidence["data"]:  # the simulation's numbers are in the report
        assert f"{share['missing_share']:.1%} of batches of {share['batch']}" in section
    for mode in cand.evidence["modes"]:
        for stats in mode["simulation"]:
            assert f"{stats['median']:.3g} at {stats['batch']} samples" in section


def test_the_chinese_section_is_chinese(missed_report: Report) -> None:
    md = render_markdown(missed_report, "zh")
    section = md.split("## 原报告遗漏的问题")[1].split("## 可复现性")[0]
    assert section.count("**为何对长尾训练重要。**") == len(MISSED)
    assert "Why it matters" not in section
    assert "severity" not in section


def test_a_missed_check_of_another_area_gets_its_summaries(missed_report: Report) -> None:
    foreign = CheckInfo("shapes.batch-independence", 2, "high", group="missed")
    message = Msg("common.check_failed", {"detail": "a measured 0.25 change"})
    results = tuple(Result("shapes.batch-independence", role, "fail", message, {}) for role in ROLES)
    report = dataclasses.replace(
        missed_report, checks=(*missed_report.checks, foreign), results=(*missed_report.results, *results)
    )
    sentences = [render(m, "en") for m in why(report, "shapes.batch-independence")]
    assert sentences[0].startswith("In a long-tailed batch")  # its context sentence, from the catalogue
    assert sum("a measured 0.25 change" in s for s in sentences) == 2
    lines = render_missed(report, "en")
    assert any(line.startswith("| `shapes.batch-independence` ") for line in lines)


def test_a_finding_that_could_not_run_says_so(missed_report: Report) -> None:
    """A result without measurements (error, n/a) gets its own summary, never a paragraph of numbers."""
    raised = Msg("common.subject_raised", {"where": "proto_loss_fn", "detail": "RuntimeError: boom"})
    results = tuple(
        dataclasses.replace(r, verdict="error", message=raised, evidence={"exception": "RuntimeError: boom"})
        if r.check.startswith("weights.") and r.subject == "baseline"
        else r
        for r in missed_report.results
    )
    report = dataclasses.replace(missed_report, results=results)
    for check_id in ("weights.absent-classes", "weights.cb-vs-inverse"):
        text = " ".join(render(m, "en") for m in why(report, check_id))
        assert "The baseline: could not measure: proto_loss_fn raised RuntimeError: boom." in text
        assert "On the baseline" not in text


def test_no_missed_checks_no_section(missed_report: Report) -> None:
    empty = dataclasses.replace(missed_report, checks=(), results=())
    assert render_missed(empty, "en") == []


# --- SARIF -------------------------------------------------------------------------------------------


def test_sarif_has_the_structure_code_scanning_requires(missed_report: Report) -> None:
    log = json.loads(render_sarif(missed_report))
    assert log["version"] == SARIF_VERSION == "2.1.0"
    assert log["$schema"].endswith("sarif-2.1.0.json")
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "headaudit"
    rule_ids = [r["id"] for r in driver["rules"]]
    assert rule_ids == [c for c in MISSED if c.startswith("static.") or c.startswith("compile.")]
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"]
        assert rule["fullDescription"]["text"]
        assert rule["defaultConfiguration"]["level"] in ("error", "warning", "note")
    assert run["results"]
    for result in run["results"]:
        assert result["ruleId"] in rule_ids
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note")
        assert result["message"]["text"]
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"]["uri"]
        assert isinstance(physical["region"]["startLine"], int)
        assert physical["region"]["startLine"] >= 1


def test_sarif_results_are_the_static_findings_on_their_lines(missed_report: Report) -> None:
    log = sarif_log(missed_report)
    results = log["runs"][0]["results"]
    for check_id in ("static.host-syncs", "static.class-loops", "static.data-writes"):
        for role in ROLES:
            result = missed_report.result(check_id, role)
            assert result is not None
            ours = [r for r in results if r["ruleId"] == check_id and r["properties"]["subject"] == role]
            assert len(ours) == len(result.evidence["sites"])
            info = missed_report.check(check_id)
            assert info is not None
            assert {r["level"] for r in ours} == {LEVELS[(result.verdict, info.severity)]}
            name = "head.py" if role == "baseline" else "head_optimal.py"
            lines = bundled_reference(name).read_text().splitlines()
            for r in ours:
                physical = r["locations"][0]["physicalLocation"]
                assert physical["artifactLocation"]["uri"] == f"headaudit:reference/{name}"
                line = physical["region"]["startLine"]
                assert lines[line - 1].strip() == physical["region"]["snippet"]["text"]


def test_sarif_uris() -> None:
    from headaudit.render.sarif import _uri

    assert _uri("src/my head.py") == {"uri": "src/my%20head.py", "uriBaseId": "%SRCROOT%"}
    assert _uri("/abs/head.py") == {"uri": "file:///abs/head.py"}
    assert _uri("headaudit:reference/head.py") == {"uri": "headaudit:reference/head.py"}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "headaudit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=False,
        timeout=300,
    )


def test_report_and_sarif_are_byte_identical_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first run in a subprocess, the second in this process: two interpreters (their
    own hash seeds and compile caches), one interpreter start fewer."""
    only = "static.host-syncs,compile.graph-breaks,weights.cb-vs-inverse"
    args = ("report", "--only", only, "--no-bench", "--sarif")
    outputs: list[tuple[str, bytes]] = []
    out = _cli(*args, str(tmp_path / "run1.sarif"), cwd=ROOT)
    assert out.returncode == 0, out.stderr
    outputs.append((out.stdout, (tmp_path / "run1.sarif").read_bytes()))
    code, stdout, stderr = in_process(monkeypatch, capsys, ROOT, *args, str(tmp_path / "run2.sarif"))
    assert code == 0, stderr
    outputs.append((stdout, (tmp_path / "run2.sarif").read_bytes()))
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0][1])["runs"][0]["results"]


def test_a_bad_sarif_path_is_exit_2(tmp_path: Path) -> None:
    out = _cli("report", "--only", "static.host-syncs", "--sarif", str(tmp_path / "no" / "such" / "x.sarif"), cwd=ROOT)
    assert out.returncode == 2
    assert "--sarif" in out.stderr
