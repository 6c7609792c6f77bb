"""reference/head_fixed.py, the corrected head (issue 16): one test per property it promises.

The head is imported as ``headaudit.reference.head_fixed``; the equivalence with
head_optimal.py where behaviour should not change is a Hypothesis property with the same
weights copied in; the audit of the file in both slots must have no ``fail``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from headaudit.messages import render
from headaudit.profiles import active_profile
from headaudit.reference import head as original
from headaudit.reference import head_fixed as fixed
from headaudit.reference import head_optimal as optimal
from headaudit.subjects import load_subject
from tests.conftest import ROLES

FIXED_PATH = Path(__file__).resolve().parents[1] / "reference" / "head_fixed.py"


def _head(num_classes: int = 4, **kwargs: object) -> fixed.HeadOptimal:
    torch.manual_seed(0)
    settings: dict[str, object] = {"num_prototypes": 2, "max_prototypes": 3, "dropout_rate": 0.0, **kwargs}
    return fixed.HeadOptimal(num_classes, 16, 2, 8, **settings)  # type: ignore[arg-type]


def _inputs(batch: int = 5, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(batch, 7, 8, generator=gen, dtype=dtype), torch.randn(batch, 8, generator=gen, dtype=dtype)


# --- batch independence ---------------------------------------------------------------------


def test_eval_logits_do_not_depend_on_batch_mates() -> None:
    head = _head().eval()
    pool, img = _inputs(6)
    together = head(pool, img)[0]
    alone = torch.cat([head(pool[i : i + 1], img[i : i + 1])[0] for i in range(6)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
    other_pool, other_img = _inputs(6)
    changed = head(torch.cat([pool[:1], other_pool[1:] * 3]), torch.cat([img[:1], other_img[1:]]))[0]
    torch.testing.assert_close(changed[0], together[0], rtol=1e-5, atol=1e-5)


def test_attention_runs_per_sample() -> None:
    head = _head().eval()
    pool, img = _inputs(3)
    _, class_emb, attn, _ = head.forward_features(pool, img)
    rows = head.num_classes * head.max_prototypes
    assert class_emb.shape == (3, rows, 16)
    assert attn.shape == (3, rows, 7)  # each sample's queries over its own 7 patches


# --- loss terms: no class loops, no host reads ---------------------------------------------


def _op_count(num_classes: int) -> int:
    head = _head(num_classes).train()
    pool, img = _inputs(8)
    labels = torch.arange(8) % num_classes
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        _, total, _ = head(pool, img, labels)
        total.sum().backward()
    return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))


def test_operator_count_does_not_grow_with_classes() -> None:
    counts = {c: _op_count(c) for c in (4, 16, 64)}
    assert max(counts.values()) <= 1.1 * min(counts.values()), counts


def test_forward_path_has_no_host_reads_or_class_loops() -> None:
    from headaudit.astscan import analyze_file

    for head_class in ("HeadOptimal", "Head"):
        analysis = analyze_file(FIXED_PATH, head_class)
        assert "OptimalPrototypeLoss.compute_separation_loss" in {f.qualname for f in analysis.forward_path}
        assert [f.to_dict() for f in analysis.findings] == [], head_class


def test_loss_terms_match_a_per_class_oracle() -> None:
    head = _head(4, num_prototypes=1, max_prototypes=3).train()
    manager = head.proto_manager
    manager.expand_prototype(0, torch.randn(16))
    manager.expand_prototype(0, torch.randn(16))
    manager.expand_prototype(2, torch.randn(16))
    sims = torch.rand(6, 4, 3) * 2 - 1
    labels = torch.tensor([0, 0, 2, 3, 3, 3])
    indices = manager.get_prototype_indices()
    d = 1 - sims
    loss = head.proto_loss_fn
    present = [0, 2, 3]
    counts = torch.bincount(labels, minlength=4).float()
    w = torch.zeros(4)
    w[present] = counts[present].rsqrt()
    w = w / w.sum() * len(present)
    terms = [
        w[c] * d[labels == c, c, : e - s].min(-1).values.mean() for c, (s, e) in enumerate(indices) if c in present
    ]
    want_cluster = torch.stack(terms).sum() / 3
    torch.testing.assert_close(loss.compute_cluster_loss(d, labels, indices), want_cluster)
    seps = []
    for c in present:
        others = torch.cat([d[labels == c, o, : e - s] for o, (s, e) in enumerate(indices) if o != c], -1)
        seps.append(F.relu(loss.margin - others.min(-1).values).mean())
    torch.testing.assert_close(loss.compute_separation_loss(d, labels, indices), torch.stack(seps).mean())
    torch.testing.assert_close(
        loss.compute_separation_loss(d, labels, valid_mask=manager.valid_mask), torch.stack(seps).mean()
    )


# --- class weights ----------------------------------------------------------------------------


def test_absent_classes_do_not_shrink_present_ones() -> None:
    sims = torch.rand(4, 4, 2)
    labels = torch.tensor([0, 1, 1, 2])
    small = _head(4, num_prototypes=2, max_prototypes=2).proto_loss_fn
    big = _head(7, num_prototypes=2, max_prototypes=2).proto_loss_fn
    wide = torch.cat([sims, torch.rand(4, 3, 2)], 1)
    for mode in (False, True):
        small.use_class_balanced = big.use_class_balanced = mode
        a = small.compute_cluster_loss(1 - sims, labels)
        b = big.compute_cluster_loss(1 - wide, labels)
        torch.testing.assert_close(a, b)
    weights = big._get_class_weight(torch.tensor([1.0, 2.0, 1.0, 0, 0, 0, 0]))
    assert (weights[3:] == 0).all()
    torch.testing.assert_close(weights[:3].mean(), torch.tensor(1.0))


def test_dataset_class_counts_replace_batch_counts() -> None:
    loss = _head(3, use_class_balanced=True, cb_beta=0.99).proto_loss_fn
    assert "class_counts" in dict(loss.named_buffers())
    batch = torch.tensor([2.0, 2.0, 2.0])
    torch.testing.assert_close(loss._get_class_weight(batch), torch.ones(3))
    loss.set_class_counts([1000, 100, 10])
    raw = (1 - 0.99) / (1 - 0.99 ** torch.tensor([1000.0, 100.0, 10.0]))
    torch.testing.assert_close(loss._get_class_weight(batch), raw / raw.sum() * 3)
    with pytest.raises(ValueError, match="counts"):
        loss.set_class_counts([1, 2])


# --- unit-norm rows and the EMA ---------------------------------------------------------------


def test_rows_are_unit_norm_from_the_start() -> None:
    rows = _head().proto_manager.prototypes.detach()
    torch.testing.assert_close(rows.norm(dim=-1), torch.ones(rows.size(0)))


@given(
    momentum=st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.99]),
    steps=st.lists(
        st.tuples(st.integers(0, 11), st.sampled_from(["random", "opposite", "same", "tiny"])), min_size=1, max_size=8
    ),
)
def test_rows_stay_unit_norm_under_any_ema_sequence(momentum: float, steps: list[tuple[int, str]]) -> None:
    head = _head(momentum=momentum)
    manager = head.proto_manager
    gen = torch.Generator().manual_seed(len(steps))
    for row, kind in steps:
        old = manager.prototypes[row].detach().clone()
        v = {
            "random": torch.randn(16, generator=gen),
            "opposite": -old * momentum / max(1 - momentum, 1e-9),
            "same": old,
            "tiny": torch.full((16,), 1e-3),
        }[kind]
        manager.momentum_update(row, v)
        manager.apply_momentum_updates()
        norms = manager.prototypes.detach().norm(dim=-1)
        torch.testing.assert_close(norms, torch.ones_like(norms))
        assert manager.prototypes.grad_fn is None


def test_cancelling_update_keeps_the_old_row() -> None:
    manager = _head(momentum=0.5).proto_manager
    old = manager.prototypes[0].detach().clone()
    manager.momentum_update(0, -old)
    torch.testing.assert_close(manager.prototypes[0].detach(), old)


def test_ema_is_the_standard_closed_form() -> None:
    manager = _head(momentum=0.7).proto_manager
    old = manager.prototypes[1].detach().clone()
    v = torch.randn(16)
    manager.momentum_update(1, v)
    want = F.normalize(0.7 * old + 0.3 * F.normalize(v, dim=-1), dim=-1)
    torch.testing.assert_close(manager.prototypes[1].detach(), want)


# --- compatibility ----------------------------------------------------------------------------


def test_compat_head_accepts_every_head_py_keyword() -> None:
    import inspect

    params = inspect.signature(original.Head.__init__).parameters
    defaults = {n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty}
    head = fixed.Head(4, 16, 2, 8, **defaults)
    assert head.max_prototypes == defaults["max_prototypes"]
    assert head.proto_manager.var_threshold == defaults["var_threshold"]
    pool, img = _inputs(3)
    out = head.eval()(pool, img)
    assert len(out) == 2
    out = head.train()(pool, img, torch.tensor([0, 1, 2]))
    assert len(out) == 2
    assert out[1].requires_grad


def test_manager_keeps_the_callers_api() -> None:
    manager = _head(num_prototypes=2, max_prototypes=3).proto_manager
    assert manager.expand_prototypes(1, torch.randn(16)) is True
    assert manager.expand_prototype(1, torch.randn(16)) is False  # full at 3
    assert int(manager.protos_per_class[1]) == 3
    assert bool(manager.valid_mask[5])
    manager.apply_momentum_updates()
    assert manager.var_threshold == 0.5


def test_head_py_checkpoint_loads_through_the_mapping() -> None:
    torch.manual_seed(3)
    old = original.Head(4, 16, 2, 8, num_prototypes=2, max_prototypes=4, dropout_rate=0.0)
    new = fixed.Head(4, 16, 2, 8, num_prototypes=2, max_prototypes=4, dropout_rate=0.0)
    with pytest.warns(UserWarning, match=r"mixed_attn\.gate\."):
        result = fixed.load_head_py_state_dict(new, old.state_dict())
    assert set(result.dropped) == {"proto_manager.momentum_cache", "proto_manager.cache_count"}
    assert result.unmapped
    assert all(k.startswith("mixed_attn.gate.") for k in result.unmapped)
    assert all(k.startswith("mixed_attn.gate.") for k in result.not_loaded)
    assert ("mixed_attn.local_self_attn.in_proj_weight", "mixed_attn.light_attn.in_proj_weight") in result.renamed
    torch.testing.assert_close(new.mixed_attn.light_attn.in_proj_weight, old.mixed_attn.local_self_attn.in_proj_weight)
    torch.testing.assert_close(new.proj[0].weight, old.proj[0].weight)
    torch.testing.assert_close(
        new.proto_manager.prototypes.detach(), F.normalize(old.proto_manager.prototypes.detach(), dim=-1)
    )


def test_head_py_checkpoint_load_state_dict_leaves_only_the_old_gate() -> None:
    """Plain ``load_state_dict`` maps the renames and consumes the EMA cache itself."""
    torch.manual_seed(4)
    old = original.Head(4, 16, 2, 8, num_prototypes=2, max_prototypes=4, dropout_rate=0.0)
    new = fixed.Head(4, 16, 2, 8, num_prototypes=2, max_prototypes=4, dropout_rate=0.0)
    keys = new.load_state_dict(old.state_dict(), strict=False)
    assert sorted(keys.missing_keys) == ["mixed_attn.gate.2.bias", "mixed_attn.gate.2.weight"]
    assert sorted(keys.unexpected_keys) == ["mixed_attn.gate.1.bias", "mixed_attn.gate.1.weight"]
    torch.testing.assert_close(new.mixed_attn.light_attn.in_proj_weight, old.mixed_attn.local_self_attn.in_proj_weight)
    pending = old.state_dict()
    pending["proto_manager.cache_count"][0] = 1.0
    with pytest.warns(UserWarning, match="pending EMA updates"):
        new.load_state_dict(pending, strict=False)


# --- dtype, validation, compile -------------------------------------------------------------


def test_float64_in_float64_out() -> None:
    head = _head().double()
    pool, img = _inputs(3, torch.float64)
    assert head.eval()(pool, img)[0].dtype == torch.float64
    logits, total, parts = head.train()(pool, img, torch.tensor([0, 1, 2]))
    assert logits.dtype == total.dtype == torch.float64
    assert all(v.dtype == torch.float64 for v in parts.values())


@pytest.mark.parametrize(
    ("case", "argument"),
    [
        ("pool-2d", "pool_img_features"),
        ("feature-dim", "pool_img_features"),
        ("batch", "img_features"),
        ("labels", "labels"),
        ("nan", "img_features"),
    ],
)
def test_bad_inputs_name_the_argument(case: str, argument: str) -> None:
    head = _head().train()
    pool, img = _inputs(3)
    labels = torch.tensor([0, 1, 2])
    args = {
        "pool-2d": (pool[:, 0], img, labels),
        "feature-dim": (pool[..., :5], img, labels),
        "batch": (pool, img[:2], labels),
        "labels": (pool, img, torch.tensor([0, 1, 4])),
        "nan": (pool, img.clone().fill_(float("nan")), labels),
    }[case]
    with pytest.raises((ValueError, RuntimeError), match=argument):
        head(*args)


@pytest.mark.parametrize("cls", [fixed.HeadOptimal, fixed.Head])
def test_zero_prototypes_is_refused(cls: type[fixed.HeadOptimal]) -> None:
    with pytest.raises(ValueError, match="num_prototypes"):
        cls(4, 16, 2, 8, num_prototypes=0)


def test_training_step_compiles_without_graph_breaks() -> None:
    if not hasattr(torch, "compile"):
        pytest.skip("torch.compile is not available")
    head = _head().train()
    pool, img = _inputs(4)
    labels = torch.tensor([0, 1, 2, 3])
    want = head(pool, img, labels)[1]
    try:
        compiled = torch.compile(head, fullgraph=True, backend="eager")
        got = compiled(pool, img, labels)[1]
    except RuntimeError as exc:  # no compiler toolchain on this machine
        if "compiler" in str(exc).lower():
            pytest.skip(str(exc))
        raise
    got.sum().backward()
    torch.testing.assert_close(got, want)


# --- return structure -------------------------------------------------------------------------


def test_forward_returns_head_optimal_structure() -> None:
    head = _head()
    pool, img = _inputs(3)
    logits, zero, parts = head.eval()(pool, img, torch.tensor([0, 1, 2]))
    assert logits.shape == (3, 4)
    assert float(zero) == 0.0
    assert parts == {}
    _, total, parts = head.train()(pool, img, torch.tensor([0, 1, 2]))
    assert set(parts) == {
        "ce_loss",
        "cluster_loss",
        "sep_loss",
        "div_loss",
        "contrastive_loss",
        "proto_loss",
        "total_loss",
    }
    assert parts["total_loss"] is total


# --- equivalence with head_optimal.py where behaviour is unchanged --------------------------


def _pair(num_classes: int, num_prototypes: int, extra: int, balanced: bool) -> tuple[torch.nn.Module, torch.nn.Module]:
    kwargs: dict[str, object] = {
        "num_prototypes": num_prototypes,
        "max_prototypes": num_prototypes + extra,
        "dropout_rate": 0.0,
        "use_class_balanced": balanced,
    }
    torch.manual_seed(0)
    old = optimal.HeadOptimal(num_classes, 8, 2, 6, **kwargs)  # type: ignore[arg-type]
    new = fixed.HeadOptimal(num_classes, 8, 2, 6, **kwargs)  # type: ignore[arg-type]
    new.load_state_dict(old.state_dict(), strict=True)  # a head_optimal.py checkpoint loads as is
    return old, new


@given(
    num_classes=st.integers(2, 5),
    num_prototypes=st.integers(1, 3),
    extra=st.integers(0, 2),
    per_class=st.integers(1, 3),
    balanced=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_losses_equal_head_optimal_when_every_class_is_present_equally(
    num_classes: int, num_prototypes: int, extra: int, per_class: int, balanced: bool, seed: int
) -> None:
    old, new = _pair(num_classes, num_prototypes, extra, balanced)
    gen = torch.Generator().manual_seed(seed)
    batch = num_classes * per_class
    sims = torch.rand(batch, num_classes, num_prototypes + extra, generator=gen) * 2 - 1
    labels = torch.arange(batch) % num_classes
    protos = old.proto_manager.prototypes
    want = old.proto_loss_fn(
        sims, labels, protos, old.proto_manager.get_prototype_indices(), old.proto_manager.valid_mask
    )
    got = new.proto_loss_fn(sims, labels, protos, None, new.proto_manager.valid_mask)
    for key, value in want.items():
        torch.testing.assert_close(got[key], torch.as_tensor(value, dtype=got[key].dtype), msg=key)


@given(
    num_classes=st.integers(2, 5),
    num_prototypes=st.integers(1, 3),
    extra=st.integers(0, 2),
    seed=st.integers(0, 2**16),
)
def test_logits_for_one_sample_equal_head_optimal(num_classes: int, num_prototypes: int, extra: int, seed: int) -> None:
    old, new = _pair(num_classes, num_prototypes, extra, False)
    gen = torch.Generator().manual_seed(seed)
    pool, img = torch.randn(1, 5, 6, generator=gen), torch.randn(1, 6, generator=gen)
    torch.testing.assert_close(new.eval()(pool, img)[0], old.eval()(pool, img)[0], rtol=1e-5, atol=1e-5)


# --- the audit, both slots --------------------------------------------------------------------

#: The checks that still fail on this head, and why no change of the head can give a pass
#: (reported to the issue; the tests pin them so that a change is noticed either way).
KNOWN_FAILS = {
    # the quoted host unpacks two values; HeadOptimal keeps head_optimal.py's three.
    "host.loss-dict",
    # the four loss terms keep their definitions (equivalence with head_optimal.py), and
    # cluster/separation conflict by construction once the margin is raised.
    "losses.conflicts",
    # a head.py checkpoint does not load with strict=True: the redesigned gate's weights
    # (gate.1 was a LayerNorm, gate.2 is a Linear) have no counterpart. The verdict says
    # what happened; claim 2.2's text says no fix can give it.
    "compat.checkpoint",
}


def test_audit_of_head_fixed_in_both_slots_has_no_other_fail(tmp_path: Path) -> None:
    """With a cache, as ``report --baseline head_fixed.py --candidate head_fixed.py`` runs:
    each result is measured in one slot and served to the other (the role-swap test
    proves on the references that a slot changes no measurement)."""
    from headaudit.cache import ResultCache
    from headaudit.checks import REGISTRY
    from headaudit.runner import run_audit

    subject = {role: load_subject(str(FIXED_PATH), role, timeout=60) for role in ROLES}
    checks = tuple(c for c in REGISTRY if not c.id.startswith("perf."))
    report = run_audit(subject, checks, seed=0, profile=active_profile(), cache=ResultCache(tmp_path / "cache"))
    bad = {}
    for role in ROLES:
        for found in checks:
            result = report.result(found.id, role)
            if result is not None and result.verdict in ("fail", "error"):
                bad[(found.id, role)] = result.verdict
    assert {k: v for k, v in bad.items() if k[0] not in KNOWN_FAILS} == {}
    assert {k[0] for k in bad} == KNOWN_FAILS
    for role in ROLES:  # strict loading raises: fail, naming the gate's keys under their submodules
        checkpoint = report.result("compat.checkpoint", role)
        assert checkpoint is not None
        assert checkpoint.verdict == "fail"
        assert checkpoint.evidence["changed_modules"] == ["mixed_attn.gate.1", "mixed_attn.gate.2"]
        groups = {g["module"]: (g["missing"], g["unexpected"]) for g in checkpoint.evidence["by_module"]}
        assert groups == {"mixed_attn.gate.1": ([], ["bias", "weight"]), "mixed_attn.gate.2": (["bias", "weight"], [])}
        assert "`mixed_attn.gate.1` (unexpected `bias`, `weight`)" in checkpoint.summary("en")
    claim = report.claim("2.2")  # the claim's text, not the verdict, says no fix can give it
    assert claim is not None
    assert claim.message.id == "claim.verdict.with_limits"
    assert "no fix can give" in render(claim.message, "en")
