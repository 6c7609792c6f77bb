"""A host that dispatches on the head's return is judged from its source (issue 25, item 8).

- :func:`headaudit.astscan.follow` on small host methods: each comparison a dispatch uses
  (``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in``, ``isinstance``), unpacks and indexes
  in the arm taken with the error Python gives, ``try``/``except`` dispatch, the loss-dict
  keys that reach the return, and what the source alone does not decide;
- ``host.loss-dict`` with the hosts of ``tests/subjects/hosts/timm_dispatch.py`` (they
  import timm, so they cannot run here) against head.py, head_optimal.py and head_fixed.py
  in both slots: every cell decided from the source and the verdict it gives;
- the prediction is the run: on an importable copy of the same hosts, and on the bundled
  hosts, every cell the source decides is the cell the run measures (outcome, error, lost
  terms).
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path
from typing import Any

import pytest

from headaudit.astscan import HostPath, ReturnShape, follow
from headaudit.checks import by_id
from headaudit.hosts import HostSet, default_hosts, load_host
from headaudit.profiles import active_profile
from headaudit.runner import run_check
from headaudit.subjects import Subject, bundled_reference, load_subject
from tests.conftest import ROLES

THREE = ReturnShape("tuple", ("tensor", "tensor", "dict"), ((), (), ("ce_loss", "proto_loss")))
TWO = ReturnShape("tuple", ("tensor", "tensor"), ((), ()))
TOO_MANY = "ValueError: too many values to unpack (expected 2)"
NOT_ENOUGH = "ValueError: not enough values to unpack (expected 3, got 2)"
HOSTS = Path(__file__).parent / "subjects" / "hosts" / "timm_dispatch.py"


def _walk(body: str, shape: ReturnShape, *, training: bool = True, target: bool = True) -> HostPath:
    source = "def forward(self, images, target=None):\n" + textwrap.indent(textwrap.dedent(body), "    ")
    function = ast.parse(source).body[0]
    assert isinstance(function, ast.FunctionDef)
    return follow(function, shape, training=training, target=target)


_DISPATCH = """
out = self.head(images, images, labels=target)
if {cond}:
    logits, loss, loss_dict = out
else:
    logits, loss = out
    loss_dict = {{}}
return loss, {{"head_loss": loss, **loss_dict}}
"""

#: Conditions that are true for three values and false for two.
THREE_ARM = [
    "len(out) == 3",
    "len(out) != 2",
    "len(out) > 2",
    "len(out) >= 3",
    "not len(out) < 3",
    "not len(out) <= 2",
    "len(out) in (3, 4)",
    "len(out) not in (2,)",
    "isinstance(out, tuple) and len(out) == 3",
    "len(out) == 3 and isinstance(out[2], dict)",
    "isinstance(out[-1], dict)",
    "isinstance(out[-1], (dict, list))",
    "2 < len(out)",
]


@pytest.mark.parametrize("cond", THREE_ARM)
def test_a_right_dispatch_takes_each_head_by_its_arm(cond: str) -> None:
    three = _walk(_DISPATCH.format(cond=cond), THREE)
    assert (three.outcome, three.keys, three.open_keys) == ("returns", ("ce_loss", "head_loss", "proto_loss"), False)
    assert three.branches[0].endswith("-> True")
    two = _walk(_DISPATCH.format(cond=cond), TWO)
    assert (two.outcome, two.keys, two.called) == ("returns", ("head_loss",), True)
    assert two.branches[0].endswith("-> False")


@pytest.mark.parametrize("cond", THREE_ARM)
def test_a_swapped_dispatch_raises_what_python_raises(cond: str) -> None:
    body = _DISPATCH.format(cond=f"not ({cond})")
    three, two = _walk(body, THREE), _walk(body, TWO)
    assert (three.outcome, three.detail, three.operation, three.line) == ("raises", TOO_MANY, "unpack:2", 7)
    assert (two.outcome, two.detail, two.operation, two.line) == ("raises", NOT_ENOUGH, "unpack:3", 5)
    with pytest.raises(ValueError, match=r"too many values to unpack \(expected 2\)"):
        _logits, _loss = (1, 2, 3)  # type: ignore[misc]  # the same operation, here


def test_indexes_and_starred_unpacks() -> None:
    body = """
    out = self.head(images, images, labels=target)
    logits, loss = out[0], out[1]
    loss_dict = out[2]
    return loss, loss_dict
    """
    assert _walk(body, THREE).keys == ("ce_loss", "proto_loss")
    two = _walk(body, TWO)
    assert (two.outcome, two.detail, two.operation) == ("raises", "IndexError: tuple index out of range", "index:2")
    guarded = body.replace("loss_dict = out[2]", "loss_dict = out[2] if len(out) > 2 else {}")
    assert _walk(guarded, TWO).outcome == "returns"
    starred = """
    logits, loss, *rest = self.head(images, images, labels=target)
    extra = dict(rest[0]) if rest and isinstance(rest[0], dict) else {}
    return loss, extra
    """
    assert _walk(starred, THREE).keys == ("ce_loss", "proto_loss")
    assert _walk(starred, TWO).keys == ()
    one = _walk(starred, ReturnShape("tuple", ("tensor",), ((),)))
    assert one.detail == "ValueError: not enough values to unpack (expected at least 2, got 1)"
    assert one.operation == "unpack:2+"
    listed = _walk("a, b = self.head(images)[:2]\nreturn a", THREE)
    assert listed.outcome == "returns"


def test_mode_and_target_decide_like_the_run() -> None:
    body = """
    if self.training and target is not None:
        logits, loss, loss_dict = self.head(images, images, labels=target)
        return loss, loss_dict
    logits, loss = self.head(images, images, labels=target)
    return logits, loss
    """
    assert _walk(body, TWO, training=True, target=True).detail == NOT_ENOUGH
    assert _walk(body, THREE, training=False, target=True).detail == TOO_MANY
    assert _walk(body, TWO, training=True, target=False).outcome == "returns"  # no target: the second call


def test_explicit_raise_assert_and_try() -> None:
    raising = """
    out = self.head(images, images, labels=target)
    if len(out) != 3:
        raise ValueError("the head must return three values")
    return out[1], out[2]
    """
    two = _walk(raising, TWO)
    message = "ValueError: the head must return three values"
    assert (two.outcome, two.detail, two.operation) == ("raises", message, "raise")
    assert _walk(raising, THREE).keys == ("ce_loss", "proto_loss")
    asserting = "out = self.head(images)\nassert len(out) == 3, 'three values'\nreturn out"
    assert _walk(asserting, TWO).detail == "AssertionError: three values"
    trying = """
    out = self.head(images, images, labels=target)
    try:
        logits, loss, loss_dict = out
    except ValueError:
        logits, loss = out
        loss_dict = {}
    return loss, {"head_loss": loss, **loss_dict}
    """
    assert _walk(trying, TWO).outcome == "returns"
    assert _walk(trying, THREE).keys == ("ce_loss", "head_loss", "proto_loss")
    wrong_handler = trying.replace("except ValueError", "except KeyError")
    assert _walk(wrong_handler, TWO).detail == NOT_ENOUGH


def test_an_element_used_as_what_it_is_not_raises() -> None:
    aux = ReturnShape("tuple", ("tensor", "tensor", "tensor"), ((), (), ()))  # a third value that is a tensor
    body = """
    out = self.head(images)
    if len(out) == 3:
        logits, loss, loss_dict = out
        return loss, {"head_loss": loss, **loss_dict}
    return out[1], {}
    """
    path = _walk(body, aux)
    assert (path.outcome, path.detail, path.operation) == (
        "raises",
        "TypeError: 'Tensor' object is not a mapping",
        "spread",
    )
    items = _walk(body.replace("**loss_dict", "**{k: v for k, v in loss_dict.items()}"), aux)
    assert items.detail == "AttributeError: 'Tensor' object has no attribute 'items'"
    last = _walk("out = self.head(images)\nloss = out[-1]\nreturn loss.detach()", THREE)  # the dict, not the loss
    assert (last.detail, last.operation) == (
        "AttributeError: 'dict' object has no attribute 'detach'",
        "attribute:detach",
    )
    assert _walk("out = self.head(images)\nloss = out[1]\nreturn loss.detach()", THREE).outcome == "returns"


def test_where_the_breakdown_goes() -> None:
    dropped = "logits, loss, loss_dict = self.head(images)\nreturn loss, {'head_loss': loss.detach()}"
    assert (_walk(dropped, THREE).keys, _walk(dropped, THREE).open_keys) == (("head_loss",), False)
    prefixed = """
    logits, loss, loss_dict = self.head(images)
    extra = {"head_loss": loss}
    for name, value in loss_dict.items():
        extra[f"head/{name}"] = value.detach()
    return loss, extra
    """
    assert _walk(prefixed, THREE).keys == ("ce_loss", "head_loss", "proto_loss")  # a prefix keeps the name
    packed = "out = self.head(images)\nreturn self.pack(out)"
    assert _walk(packed, THREE).open_keys  # the source does not say what the helper keeps
    assert not _walk("out = self.head(images)\nreturn self.pack(images)", THREE).open_keys


def test_what_the_source_does_not_decide_is_named() -> None:
    config = """
    out = self.head(images, images, labels=target)
    if self.dict_head:
        logits, loss, loss_dict = out
    else:
        logits, loss = out
    return logits, loss
    """
    path = _walk(config, THREE)
    assert (path.outcome, path.detail, path.line) == ("undecided", "`self.dict_head`", 4)
    same = config.replace("logits, loss, loss_dict = out", "logits, loss = out[:2]")
    same = same.replace("logits, loss = out\n", "logits, loss = out[0], out[1]\n")
    assert _walk(same, THREE).outcome == "returns"  # both arms end alike: decided anyway
    nested = """
    out = self.head(images, images, labels=target)
    if self.training:
        if self.keep_terms:
            loss_dict = out[2]
        else:
            loss_dict = {}
        extra = {"head_loss": out[1], **loss_dict}
    return out[1], extra
    """
    assert _walk(nested, TWO, training=False).outcome == "returns"  # the undecided test is not reached
    for shape in (TWO, THREE):  # the arms leave different names for the rest (and out[2] raises with two)
        assert (_walk(nested, shape).outcome, _walk(nested, shape).detail) == ("undecided", "`self.keep_terms`")
    walrus = "if (n := len(out := self.head(images))) == 3:\n    a, b, c = out\nelse:\n    a, b = out\nreturn n"
    assert _walk(walrus, TWO).outcome == _walk(walrus, THREE).outcome == "returns"
    helper = "out = self.head(images)\nparts = self.split(out)\na, b = parts\nreturn a"
    assert _walk(helper, THREE).outcome == "undecided"
    tensor = _walk("logits, loss = self.head(images)\nreturn loss", ReturnShape("tensor"))
    assert tensor.outcome == "undecided"  # unpacking a tensor iterates over its batch: not known
    loop = "out = self.head(images)\nfor x in out:\n    return x\nreturn None"
    assert _walk(loop, THREE).outcome == "undecided"
    backbone = "feats, pooled = self.backbone(images)\nlogits, loss = self.head(pooled, feats)\nreturn logits"
    assert _walk(backbone, TWO).outcome == "returns"  # the backbone's own values are not the call site's business


# --- host.loss-dict on hosts that cannot run here ---------------------------------------------


@pytest.fixture(scope="module")
def heads() -> dict[str, Subject]:
    return {
        name: load_subject(str(bundled_reference(name)), timeout=30)
        for name in ("head.py", "head_optimal.py", "head_fixed.py")
    }


def _run(subject: Subject, role: str, host: str) -> Any:
    bundled = default_hosts()
    hosts = HostSet(load_host(host), bundled.suggested, bundled.fixed, bundled.wrapper)
    found = by_id("host.loss-dict")
    assert found is not None
    return run_check(found, subject, role, seed=0, profile=active_profile(), hosts=hosts)


#: The head classes each reference gives the check, with the values they return (every mode).
RETURNS = {
    "head.py": {"Head": 2},
    "head_optimal.py": {"HeadOptimal": 3, "Head": 2},
    "head_fixed.py": {"HeadOptimal": 3, "Head": 2},
}


def _static(result: Any) -> list[dict[str, Any]]:
    host = result.evidence["hosts"][0]
    assert host["runtime"] == "ModuleNotFoundError: No module named 'timm'"
    assert {c["outcome"] for c in host["cells"]} == {"unavailable"}
    return list(host["static"])


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("head", list(RETURNS))
@pytest.mark.parametrize("cls", ["main_model", "indexing_model"])
def test_a_right_dispatch_passes_with_every_cell_decided(
    heads: dict[str, Subject], head: str, role: str, cls: str
) -> None:
    result = _run(heads[head], role, f"{HOSTS}:{cls}")
    cells = _static(result)
    assert {(c["head"], c["returned"]) for c in cells} == set(RETURNS[head].items())
    assert len(cells) == 3 * len(RETURNS[head])
    for c in cells:
        if c["returned"] == 3 or c["mode"] != "train":
            assert c["outcome"] == "works", c  # three values: the breakdown is kept
        else:
            assert (c["outcome"], c["lost_in"]) == ("loses-breakdown", "head"), c
            assert "proto_loss" in c["lost"]
    assert result.verdict == "pass"
    assert result.message.id == "host.loss-dict.pass_static"
    text = result.summary("en")
    assert "No module named 'timm'" in text
    if cls == "main_model":
        assert "`isinstance(head_output, tuple) and len(head_output) == 3` is " in text


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("head", list(RETURNS))
def test_a_dispatch_with_swapped_arms_fails_in_every_cell(heads: dict[str, Subject], head: str, role: str) -> None:
    result = _run(heads[head], role, f"{HOSTS}:wrong_arm_model")
    cells = _static(result)
    assert len(cells) == 3 * len(RETURNS[head])
    for c in cells:
        assert c["outcome"] == "raises"
        assert c["detail"] == (TOO_MANY if c["returned"] == 3 else NOT_ENOUGH)
    assert result.verdict == "fail"
    assert result.message.id == "host.loss-dict.fail_static"
    assert "unpacks 3 values where the head returns 2 values" in result.summary("en")


@pytest.mark.parametrize("role", ROLES)
def test_a_dispatch_on_a_constructor_setting_is_na_naming_it(heads: dict[str, Subject], role: str) -> None:
    result = _run(heads["head_optimal.py"], role, f"{HOSTS}:config_model")
    assert {c["outcome"] for c in _static(result)} == {"undecided"}
    assert result.verdict == "n/a"
    assert "`self.dict_head`" in result.summary("en")
    assert "`self.dict_head`" in result.summary("zh")


# --- the prediction is the run --------------------------------------------------------------


def _importable(tmp_path: Path) -> Path:
    path = tmp_path / "dispatch_here.py"
    text = HOSTS.read_text(encoding="utf-8")
    assert "import timm  #" in text
    path.write_text(text.replace("import timm  #", "timm = None  #"), encoding="utf-8")
    return path


def _key(c: dict[str, Any]) -> tuple[Any, ...]:
    detail = c.get("detail") if c["outcome"] == "raises" else None
    return c["outcome"], detail, tuple(c.get("lost", ())), c.get("lost_in")


@pytest.mark.parametrize("head", list(RETURNS))
def test_every_decided_cell_is_the_measured_cell(tmp_path: Path, heads: dict[str, Subject], head: str) -> None:
    path = _importable(tmp_path)
    compared = 0
    for cls in ("main_model", "indexing_model", "wrong_arm_model", None):
        result = _run(heads[head], "candidate", f"{path}:{cls}" if cls else str(bundled_reference("models_mae.py")))
        for host in result.evidence["hosts"]:  # the host under audit, the suggested and the fixed host
            static = {(c["head"], c["mode"]): c for c in host["static"]}
            for c in host["cells"]:
                assert c["outcome"] in ("works", "loses-breakdown", "raises"), c
                assert _key(static[(c["head"], c["mode"])]) == _key(c), (cls, host["variant"], c)
                compared += 1
    assert compared == 4 * 3 * 3 * len(RETURNS[head])
