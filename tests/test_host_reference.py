"""The reference host call sites reproduce BEHAVIOR.md section 5, defects included.

The behaviour matrix of ``host.loss-dict`` (host variant x head class x mode) and the
training wrapper's cases of ``trainer.detect`` and ``trainer.step`` are pinned here
directly against the reference code, cell by cell, so that the audit's checks can be
proven on them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import headaudit.reference
from headaudit.reference import head as original
from headaudit.reference import head_optimal as optimal
from headaudit.reference import models_mae, models_mae_suggested, timm_imagenet_exp
from headaudit.reference.backbone import TinyBackbone

FEAT_DIM = 16
SMALL = {"num_classes": 3, "emb_dim": 16, "num_heads": 2, "img_feat_dim": FEAT_DIM, "dropout_rate": 0.0}
HEADS: dict[str, type[nn.Module]] = {
    "HeadOptimal": optimal.HeadOptimal,
    "compat Head": optimal.Head,
    "head.py Head": original.Head,
}
HOSTS: dict[str, ModuleType] = {"quoted": models_mae, "suggested": models_mae_suggested}
MODES = ("train with target", "eval with target", "eval without target")
REFERENCE_DIR = Path(headaudit.reference.__file__).resolve().parent

WORKS = "works"
LOST = "works, breakdown lost"
KEPT = "works, breakdown kept"
RAISES = "raises"
TOO_MANY = "too many values to unpack"  # Python adds "(expected 2)" (3.11) or "(expected 2, got 3)" (3.13+)
NOT_ENOUGH = "not enough values to unpack (expected 3, got 2)"

# (host, head, mode) -> (outcome, message substring when it raises); every raise is a ValueError.
EXPECTED: dict[tuple[str, str, str], tuple[str, str | None]] = {
    ("quoted", "HeadOptimal", "train with target"): (RAISES, TOO_MANY),
    ("quoted", "HeadOptimal", "eval with target"): (RAISES, TOO_MANY),
    ("quoted", "HeadOptimal", "eval without target"): (RAISES, TOO_MANY),
    ("quoted", "compat Head", "train with target"): (LOST, None),
    ("quoted", "compat Head", "eval with target"): (WORKS, None),
    ("quoted", "compat Head", "eval without target"): (WORKS, None),
    ("quoted", "head.py Head", "train with target"): (LOST, None),
    ("quoted", "head.py Head", "eval with target"): (WORKS, None),
    ("quoted", "head.py Head", "eval without target"): (WORKS, None),
    ("suggested", "HeadOptimal", "train with target"): (KEPT, None),
    ("suggested", "HeadOptimal", "eval with target"): (RAISES, TOO_MANY),
    ("suggested", "HeadOptimal", "eval without target"): (RAISES, TOO_MANY),
    ("suggested", "compat Head", "train with target"): (RAISES, NOT_ENOUGH),
    ("suggested", "compat Head", "eval with target"): (WORKS, None),
    ("suggested", "compat Head", "eval without target"): (WORKS, None),
    ("suggested", "head.py Head", "train with target"): (RAISES, NOT_ENOUGH),
    ("suggested", "head.py Head", "eval with target"): (WORKS, None),
    ("suggested", "head.py Head", "eval without target"): (WORKS, None),
}


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, 28, 28, generator=gen), torch.tensor([0, 2])


def _head(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return HEADS[name](**SMALL)


@dataclass(frozen=True)
class Cell:
    """One measured cell of the matrix: the outcome and what the host returned or raised."""

    outcome: str
    error: BaseException | None = None
    first: torch.Tensor | None = None
    second: torch.Tensor | dict[str, torch.Tensor] | None = None
    computed_terms: frozenset[str] = frozenset()


def _run_cell(host: str, head_name: str, mode: str) -> Cell:
    """Run the host once and classify: the breakdown is "lost" when terms the head's loss
    function computed (captured by a hook) are missing from the host's extra dict."""
    head = _head(head_name)
    model = HOSTS[host].main_model(head, feat_dim=FEAT_DIM)
    model.train(mode.startswith("train"))
    computed: set[str] = set()
    hook = head.get_submodule("proto_loss_fn").register_forward_hook(lambda _m, _a, out: computed.update(out))
    images, labels = _batch()
    try:
        first, second = model(images, target=None if mode == "eval without target" else labels)
    except Exception as exc:
        return Cell(RAISES, error=exc)
    finally:
        hook.remove()
    if not isinstance(second, dict):
        return Cell(WORKS, first=first, second=second, computed_terms=frozenset(computed))
    outcome = KEPT if computed <= set(second) else LOST
    return Cell(outcome, first=first, second=second, computed_terms=frozenset(computed))


@pytest.mark.parametrize(("host", "head_name", "mode"), list(EXPECTED))
def test_host_matrix_cell(host: str, head_name: str, mode: str) -> None:
    outcome, message = EXPECTED[(host, head_name, mode)]
    cell = _run_cell(host, head_name, mode)
    assert cell.outcome == outcome, (cell.outcome, cell.error)
    if outcome == RAISES:
        assert type(cell.error) is ValueError
        assert message is not None
        assert message in str(cell.error)
        return
    assert cell.first is not None
    if mode.startswith("train"):
        # (head_loss, extra_dict): the head's total, shape (1,) because log_sigma_* are (1,).
        assert cell.first.shape == (1,)
        assert cell.first.requires_grad
        assert isinstance(cell.second, dict)
        assert torch.equal(cell.second["head_loss"], cell.first.detach())
        assert all(not v.requires_grad for v in cell.second.values())
        assert cell.computed_terms >= {"cluster_loss", "sep_loss", "div_loss", "contrastive_loss", "proto_loss"}
    else:
        # (logits, head_loss) with a zero loss, targets or not.
        assert cell.first.shape == (2, 3)
        assert isinstance(cell.second, torch.Tensor)
        assert float(cell.second) == 0.0
        assert not cell.computed_terms


def test_host_matrix_is_complete() -> None:
    assert set(EXPECTED) == {(h, n, m) for h in HOSTS for n in HEADS for m in MODES}


def test_quoted_host_loses_the_breakdown_the_suggested_host_keeps() -> None:
    lost = _run_cell("quoted", "compat Head", "train with target")
    assert isinstance(lost.second, dict)
    assert set(lost.second) == {"head_loss"}
    kept = _run_cell("suggested", "HeadOptimal", "train with target")
    assert isinstance(kept.second, dict)
    assert set(kept.second) == {
        "head_loss",
        "ce_loss",
        "cluster_loss",
        "sep_loss",
        "div_loss",
        "contrastive_loss",
        "proto_loss",
        "total_loss",
    }


def _head_call_unpacks(module: ModuleType) -> list[int]:
    """Arity of each ``... = self.head(...)`` assignment in the module's source."""
    tree = ast.parse(Path(module.__file__ or "").read_text())
    arities = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            if isinstance(func, ast.Attribute) and func.attr == "head" and ast.unparse(func) == "self.head":
                (target,) = node.targets
                arities.append(len(target.elts) if isinstance(target, ast.Tuple) else 1)
    return arities


def test_host_sources_unpack_as_quoted() -> None:
    assert _head_call_unpacks(models_mae) == [2]
    assert sorted(_head_call_unpacks(models_mae_suggested)) == [2, 3]


# --- the training wrapper (trainer.detect, trainer.step) -------------------------------


def _wrapper(host: ModuleType, head_name: str, **kwargs: object) -> timm_imagenet_exp.Model:
    return timm_imagenet_exp.Model(host.main_model(_head(head_name), feat_dim=FEAT_DIM), **kwargs)


@pytest.mark.parametrize("head_name", list(HEADS))
def test_wrapper_detects_multi_prototype_heads(head_name: str) -> None:
    wrapper = _wrapper(models_mae, head_name)
    assert wrapper._detect_multi_prototype_head() is True
    assert wrapper._use_multi_prototype_head is True


def test_wrapper_does_not_detect_a_linear_head() -> None:
    torch.manual_seed(0)
    linear = timm_imagenet_exp.LinearHeadModel(num_classes=3, feat_dim=FEAT_DIM)
    assert isinstance(linear.head, nn.Linear)
    assert timm_imagenet_exp.Model(linear)._detect_multi_prototype_head() is False
    assert timm_imagenet_exp.Model(nn.Sequential(nn.Flatten()))._detect_multi_prototype_head() is False


def _assert_step_reaches_prototypes(wrapper: timm_imagenet_exp.Model) -> dict[str, torch.Tensor]:
    images, labels = _batch()
    wrapper.train()
    loss, extra_dict = wrapper(images, target=labels)
    # The wrapper returns the head's total as it is: shape (1,), one element, so backward() accepts it.
    assert loss.shape == (1,)
    assert torch.isfinite(loss).all()
    loss.backward()
    grad = wrapper.model.head.proto_manager.prototypes.grad
    assert grad is not None
    assert torch.isfinite(grad).all()
    assert grad.abs().sum() > 0
    return extra_dict


@pytest.mark.parametrize("head_name", ["compat Head", "head.py Head"])
def test_wrapper_step_through_quoted_host_with_a_two_value_head(head_name: str) -> None:
    wrapper = _wrapper(models_mae, head_name)
    extra_dict = _assert_step_reaches_prototypes(wrapper)
    assert set(extra_dict) == {"head_loss"}
    wrapper.eval()
    images, labels = _batch()
    for target in (labels, None):
        logits, head_loss = wrapper(images, target=target)
        assert logits.shape == (2, 3)
        assert float(head_loss) == 0.0


def test_wrapper_step_through_quoted_host_with_head_optimal_raises() -> None:
    wrapper = _wrapper(models_mae, "HeadOptimal")
    images, labels = _batch()
    wrapper.train()
    with pytest.raises(ValueError, match=TOO_MANY):
        wrapper(images, target=labels)
    wrapper.eval()
    with pytest.raises(ValueError, match=TOO_MANY):
        wrapper(images, target=labels)


def test_wrapper_through_suggested_host() -> None:
    extra_dict = _assert_step_reaches_prototypes(_wrapper(models_mae_suggested, "HeadOptimal"))
    assert {"head_loss", "ce_loss", "proto_loss", "total_loss"} <= set(extra_dict)
    wrapper = _wrapper(models_mae_suggested, "HeadOptimal").eval()
    images, labels = _batch()
    with pytest.raises(ValueError, match=TOO_MANY):
        wrapper(images, target=labels)
    compat = _wrapper(models_mae_suggested, "compat Head").train()
    with pytest.raises(ValueError, match=r"not enough values to unpack \(expected 3, got 2\)"):
        compat(images, target=labels)


def test_wrapper_with_a_linear_head_uses_train_loss_fn() -> None:
    torch.manual_seed(0)
    wrapper = timm_imagenet_exp.Model(timm_imagenet_exp.LinearHeadModel(num_classes=3, feat_dim=FEAT_DIM))
    images, labels = _batch()
    wrapper.train()
    loss, extra_dict = wrapper(images, target=labels)
    logits, head_loss = wrapper.model(images)
    assert float(head_loss) == 0.0
    assert loss.shape == ()
    assert torch.allclose(loss, F.cross_entropy(logits, labels))
    assert extra_dict == {}
    loss.backward()
    assert wrapper.model.head.weight.grad is not None
    wrapper.eval()
    logits, head_loss = wrapper(images, target=labels)
    assert logits.shape == (2, 3)
    assert float(head_loss) == 0.0


def test_wrapper_custom_train_loss_fn_and_unused_arguments() -> None:
    torch.manual_seed(0)
    calls: list[int] = []

    def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls.append(len(target))
        return logits.sum()

    wrapper = timm_imagenet_exp.Model(timm_imagenet_exp.LinearHeadModel(3, FEAT_DIM), train_loss_fn=loss_fn)
    images, labels = _batch()
    wrapper(images, target=labels, epoch=3, update_param=True)
    assert calls == [2]


def test_wrapper_warns_when_mixup_is_on_with_a_multi_prototype_head() -> None:
    images, labels = _batch()
    with pytest.warns(UserWarning, match="hard labels"):
        _wrapper(models_mae, "compat Head", mixup=True).train()(images, target=labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _wrapper(models_mae, "compat Head").train()(images, target=labels)
        torch.manual_seed(0)
        linear = timm_imagenet_exp.Model(timm_imagenet_exp.LinearHeadModel(3, FEAT_DIM), mixup=True)
        linear.train()(images, target=labels)


# --- the stand-in backbone and the sibling import scheme --------------------------------


def test_backbone_shapes_and_determinism() -> None:
    images, _ = _batch()
    torch.manual_seed(0)
    first = TinyBackbone()
    torch.manual_seed(0)
    second = TinyBackbone()
    features, pooled = first(images)
    assert features.shape == (2, 1, 16)
    assert pooled.shape == (2, 49, 16)
    assert torch.equal(features, second(images)[0])
    assert torch.allclose(features, pooled.mean(dim=1, keepdim=True))
    wide_features, wide_pooled = TinyBackbone(feat_dim=24)(images)
    assert wide_features.shape == (2, 1, 24)
    assert wide_pooled.shape == (2, 49, 24)
    # No batch statistics: a sample's features do not depend on the rest of the batch.
    assert torch.allclose(first(images[:1])[1], pooled[:1], atol=1e-6)


def test_hosts_import_the_backbone_relatively_inside_the_package() -> None:
    for module in (models_mae, models_mae_suggested, timm_imagenet_exp):
        assert module.TinyBackbone is TinyBackbone
        assert TinyBackbone.__module__ == "headaudit.reference.backbone"


def test_hosts_import_the_backbone_by_name_from_a_folder_on_sys_path(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(REFERENCE_DIR)!r})
        import torch
        import head_optimal, models_mae, models_mae_suggested, timm_imagenet_exp
        for module in (models_mae, models_mae_suggested, timm_imagenet_exp):
            assert module.TinyBackbone.__module__ == "backbone", module.TinyBackbone.__module__
        torch.manual_seed(0)
        head = head_optimal.Head(3, 16, 2, 16, dropout_rate=0.0)
        wrapper = timm_imagenet_exp.Model(models_mae.main_model(head, feat_dim=16)).eval()
        logits, head_loss = wrapper(torch.randn(2, 3, 28, 28))
        print(tuple(logits.shape), float(head_loss))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(2, 3) 0.0"
