"""The references reproduce BEHAVIOR.md, defects included, and the design's named properties.

A reference that quietly fixed a defect would make the report lie, so each quirk the
audit reports on is pinned here directly against the reference code.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from headaudit.checks._common import Layout, layouts
from headaudit.checks.contrastive import different_class_mean
from headaudit.reference import head as original
from headaudit.reference import head_optimal as optimal
from headaudit.reference.recommended import ISIC2018_TASK3_COUNTS, RECOMMENDED_KWARGS


def set_manager_counts(manager: torch.nn.Module, counts: list[int]) -> None:
    """Give each class of a reference manager ``counts[c]`` valid rows (the buffers the heads keep)."""
    per_class = int(manager.max_prototypes)
    with torch.no_grad():
        manager.protos_per_class.copy_(torch.tensor(counts))
        mask = torch.zeros_like(manager.valid_mask)
        for c, k in enumerate(counts):
            mask[c * per_class : c * per_class + k] = True
        manager.valid_mask.copy_(mask)


SMALL = {"num_classes": 3, "emb_dim": 8, "num_heads": 2, "img_feat_dim": 8, "dropout_rate": 0.0}


def _inputs(batch: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 5, 8, generator=gen), torch.randn(batch, 8, generator=gen)


# --- named properties of the design ---------------------------------------------------


@given(layout=layouts(min_classes_with_rows=1), seed=st.integers(0, 1000))
def test_contrastive_mask_excludes_same_class_pairs(layout: Layout, seed: int) -> None:
    loss = optimal.OptimalPrototypeLoss(layout.num_classes, layout.max_prototypes)
    manager = optimal.DynamicPrototypeManagerOptimal(layout.num_classes, 6, 1, layout.max_prototypes)
    set_manager_counts(manager, list(layout.counts))
    protos = torch.randn(layout.num_classes * layout.max_prototypes, 6, generator=torch.Generator().manual_seed(seed))
    value = loss.compute_contrastive_loss(protos.double(), manager.valid_mask, manager.get_prototype_indices())
    assert float(value) == pytest.approx(different_class_mean(protos.double().numpy(), layout), abs=1e-9)


def test_oracle_on_a_hand_computed_case() -> None:
    # rows 0,1 in class 0 (identical), row 2 in class 1 orthogonal to them: cross pairs have cos 0
    layout = Layout(2, 2, (2, 1))
    protos = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]], dtype=torch.float64)
    assert different_class_mean(protos.numpy(), layout) == 0.0
    protos[2] = torch.tensor([1.0, 1.0])
    assert different_class_mean(protos.numpy(), layout) == pytest.approx(2**-0.5)


def test_fusion_is_the_softmax_weighted_sum_of_the_three_branches() -> None:
    """head_optimal.py's block output is w0*cross_out + w1*self_out + w2*light_out, w = softmax(gate)."""
    torch.manual_seed(0)
    block = optimal.MixedAttentionBlockOptimal(8, 2, dropout=0.0).eval()
    seen: dict[str, torch.Tensor] = {}
    for name in ("norm1", "norm2", "norm3", "gate"):
        getattr(block, name).register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, out))
    out, _ = block(torch.randn(1, 6, 8), torch.randn(1, 10, 8))
    w = torch.softmax(seen["gate"], dim=-1)
    expected = w[..., 0:1] * seen["norm1"] + w[..., 1:2] * seen["norm2"] + w[..., 2:3] * seen["norm3"]
    assert torch.allclose(out, expected, atol=1e-6)


@given(momentum=st.floats(0.05, 0.95), seed=st.integers(0, 10_000), steps=st.integers(1, 6))
def test_ema_stays_unit_norm_for_generic_values(momentum: float, seed: int, steps: int) -> None:
    torch.manual_seed(0)
    manager = optimal.DynamicPrototypeManagerOptimal(2, 6, 2, 3, momentum=momentum)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        manager.momentum_update(1, torch.randn(6, generator=gen))
        assert float(manager.prototypes[1].detach().norm()) == pytest.approx(1.0, abs=1e-5)


def test_ema_exact_cancellation_leaves_a_zero_row() -> None:
    """The reproduced defect: m*p == -(1-m)*normalize(v) gives a zero row."""
    manager = optimal.DynamicPrototypeManagerOptimal(2, 4, 2, 3, momentum=0.5)
    with torch.no_grad():
        manager.prototypes[0] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    manager.momentum_update(0, torch.tensor([-3.0, 0.0, 0.0, 0.0]))
    assert float(manager.prototypes[0].detach().norm()) == 0.0


@pytest.mark.parametrize("module", [original, optimal])
def test_empty_label_batch_gives_zero_cluster_and_separation(module) -> None:  # type: ignore[no-untyped-def]
    head = (original.Head if module is original else optimal.HeadOptimal)(**SMALL)
    manager = head.proto_manager
    args = [
        torch.zeros(0, 3, manager.max_prototypes),
        torch.zeros(0, dtype=torch.long),
        manager.prototypes,
        manager.get_prototype_indices(),
        manager.valid_mask,
    ]
    terms = head.proto_loss_fn(*args, manager.max_prototypes) if module is original else head.proto_loss_fn(*args)
    assert float(terms["cluster_loss"]) == 0.0
    assert float(terms["sep_loss"]) == 0.0


@pytest.mark.parametrize("counts", [[0, 0, 0], [1, 0, 0], [3, 0, 0]])
def test_contrastive_edge_cases(counts: list[int]) -> None:
    """n <= 1 (and a single class) give 0 in the fix; the original gives NaN for n <= 1."""
    loss = optimal.OptimalPrototypeLoss(3, 3)
    manager = optimal.DynamicPrototypeManagerOptimal(3, 4, 1, 3)
    set_manager_counts(manager, counts)
    protos = torch.randn(9, 4, requires_grad=True)
    value = loss.compute_contrastive_loss(protos, manager.valid_mask, manager.get_prototype_indices())
    assert float(value) == 0.0
    if sum(counts) <= 1:
        orig = original.BalancedPrototypeLoss(3)
        terms = orig(
            torch.zeros(0, 3, 3),
            torch.zeros(0, dtype=torch.long),
            protos,
            manager.get_prototype_indices(),
            manager.valid_mask,
            3,
        )
        assert torch.isnan(terms["contrastive_loss"])


# --- the defects the audit reports -----------------------------------------------------


def test_forward_arities() -> None:
    pool, img = _inputs()
    labels = torch.tensor([0, 1, 2, 0])
    for cls, train_n, eval_n in ((original.Head, 2, 2), (optimal.HeadOptimal, 3, 3), (optimal.Head, 2, 2)):
        head = cls(**SMALL)
        assert len(head.train()(pool, img, labels)) == train_n
        assert len(head.eval()(pool, img, labels)) == eval_n
    _, _, loss_dict = optimal.HeadOptimal(**SMALL).train()(pool, img, labels)
    assert set(loss_dict) == {
        "ce_loss",
        "cluster_loss",
        "sep_loss",
        "div_loss",
        "contrastive_loss",
        "proto_loss",
        "total_loss",
    }


def test_compat_head_constructor_type_errors() -> None:
    with pytest.raises(TypeError, match="multiple values for keyword argument 'max_prototypes'"):
        optimal.Head(3, 8, 2, 8, max_prototypes=10)
    with pytest.raises(TypeError, match="unexpected keyword argument 'var_threshold'"):
        optimal.Head(3, 8, 2, 8, var_threshold=0.5)
    assert optimal.Head(3, 8, 2, 8, num_prototypes=4).proto_manager.max_prototypes == 8


def test_checkpoint_keys_differ() -> None:
    old = original.Head(**SMALL).state_dict()
    new = optimal.Head(3, 8, 2, 8, num_prototypes=5)
    assert any(k.startswith("mixed_attn.local_self_attn.") for k in old)
    assert "mixed_attn.gate.1.weight" in old
    assert "proto_manager.momentum_cache" in old
    assert "mixed_attn.gate.2.weight" in new.state_dict()
    with pytest.raises(RuntimeError, match="light_attn"):
        new.load_state_dict(old, strict=True)


def test_absent_classes_collapse_the_candidate_weights() -> None:
    present = torch.tensor([4.0, 4.0, 4.0, 4.0, 0.0, 0.0, 0.0])
    cb = optimal.OptimalPrototypeLoss(7, 10, use_class_balanced=True)._get_class_weight(present)
    plain = optimal.OptimalPrototypeLoss(7, 10)._get_class_weight(present)
    assert 0.004 < float(cb[0]) < 0.008
    assert 0.0005 < float(plain[0]) < 0.0015
    assert float(cb[:4].sum() + cb[4:].sum()) == pytest.approx(7.0)


def test_original_separation_raises_when_other_classes_are_empty() -> None:
    manager = original.DynamicPrototypeManager(3, 4, 1, 2)
    set_manager_counts(manager, [1, 0, 0])
    args = (
        torch.rand(2, 3, 2),
        torch.tensor([0, 0]),
        manager.prototypes,
        manager.get_prototype_indices(),
        manager.valid_mask,
    )
    with pytest.raises((RuntimeError, IndexError)):
        original.BalancedPrototypeLoss(3)(*args, 2)
    optimal.OptimalPrototypeLoss(3, 2)(*args)  # the candidate skips empty classes


@pytest.mark.parametrize("cls", [original.Head, optimal.HeadOptimal])
def test_shared_defects(cls) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    head = cls(**SMALL).eval()
    pool, img = _inputs()
    # the batch is one attention sequence: changing sample 1 changes sample 0's logits
    logits = head(pool, img)[0]
    pool2 = pool.clone()
    pool2[1] += 3.0
    assert not torch.allclose(head(pool2, img)[0][0], logits[0])
    # float64 in, float32 out
    assert head.double()(pool.double(), img.double())[0].dtype == torch.float32
    head.float()
    # a 2-D pool tensor fails in the unpack
    with pytest.raises(ValueError, match="not enough values to unpack"):
        head(pool[:, 0], img)
    # a class with zero prototypes fails in max
    set_manager_counts(head.proto_manager, [0, 5, 5])
    with pytest.raises((RuntimeError, IndexError)):
        head(pool, img)
    # xavier rows are not unit-norm
    norms = cls(**SMALL).proto_manager.prototypes.norm(dim=-1)
    assert (norms - 1).abs().max() > 0.05


def test_original_apply_discards_the_old_row() -> None:
    manager = original.DynamicPrototypeManager(2, 4, 2, 3, momentum=0.99)
    v = torch.tensor([3.0, 4.0, 0.0, 0.0])
    before = manager.prototypes[0].detach().clone()
    manager.momentum_update(0, v)
    assert torch.equal(manager.prototypes[0].detach(), before)  # unchanged until apply
    manager.apply_momentum_updates()
    assert torch.allclose(manager.prototypes[0], F.normalize(v, dim=-1))
    assert float(manager.cache_count.sum()) == 0.0


def test_manager_api_names() -> None:
    old = original.DynamicPrototypeManager(2, 4, 1, 2)
    new = optimal.DynamicPrototypeManagerOptimal(2, 4, 1, 2)
    assert hasattr(old, "expand_prototypes")
    assert hasattr(old, "apply_momentum_updates")
    assert hasattr(new, "expand_prototype")
    assert not hasattr(new, "var_threshold")
    assert new.expand_prototype(0, torch.ones(4)) is True
    assert new.expand_prototype(0, torch.ones(4)) is False  # full at max_prototypes
    assert new.get_prototype_indices() == [(0, 2), (2, 3)]


def test_has_multi_prototype_head() -> None:
    model = torch.nn.Module()
    model.head = optimal.Head(3, 8, 2, 8)
    assert optimal.has_multi_prototype_head(model)
    model.head = torch.nn.Linear(3, 3)
    assert not optimal.has_multi_prototype_head(model)


def test_recommended_configuration_builds() -> None:
    assert sum(ISIC2018_TASK3_COUNTS) == 10015
    head = optimal.HeadOptimal(**RECOMMENDED_KWARGS)  # type: ignore[arg-type]
    assert head.proto_loss_fn.use_class_balanced is True
    assert head.proto_manager.prototypes.shape == (70, 768)
