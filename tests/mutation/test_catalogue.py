"""The mutation catalogue is valid test data.

Static: every ``old`` occurs exactly once, the mutated source compiles and differs, ids are
unique, parts are known and each part has at least two real mutants. Dynamic: each mutated
copy is loaded by path and run; the ``crashes`` flag matches a small smoke run, every real
mutant changes some output of a fixed battery, and every equivalent leaves all of it unchanged.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from .catalogue import MUTANTS, PARTS, Mutant, apply

REFERENCE = Path(__file__).resolve().parents[2] / "reference" / "head_optimal.py"
SOURCE = REFERENCE.read_text(encoding="utf-8")
RTOL, ATOL = 1e-5, 1e-6

Battery = dict[str, Any]


# --------------------------------------------------------------------------- loading


def load(source: str, directory: Path, tag: str) -> ModuleType:
    """Import ``source`` as a fresh module under a unique name, by path (like a user's copy)."""
    name = f"headaudit_mutant_{tag.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
    path = directory / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Deterministic, and polite on shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- smoke run


def smoke(mod: ModuleType) -> Exception | None:
    """A normal small forward and training step plus one EMA update and one expand."""
    try:
        torch.manual_seed(0)
        head = mod.HeadOptimal(3, 16, 2, 16, num_prototypes=2, max_prototypes=3, dropout_rate=0.0)
        gen = torch.Generator().manual_seed(1)
        pool = torch.randn(4, 5, 16, generator=gen)
        img = torch.randn(4, 16, generator=gen)
        labels = torch.tensor([0, 1, 2, 0])
        head.eval()
        head(pool, img)
        head.train()
        out = head(pool, img, labels)
        out[1].backward()
        value = torch.randn(16, generator=gen)
        head.proto_manager.momentum_update(0, value)
        head.proto_manager.expand_prototype(0, value)
    except Exception as exc:
        return exc
    return None


# --------------------------------------------------------------------------- battery


@dataclass(frozen=True)
class Config:
    name: str
    kwargs: dict[str, Any]
    labels: tuple[int, ...]
    patches: int = 5
    img_tokens: int = 0  # 0: 2-D global features (B, D); T > 0: (B, T, D)
    expand_first: tuple[int, ...] = ()  # classes expanded once each before anything else (k_c per class)
    active: bool = False  # perturbed weights, non-zero log sigmas, clustered non-unit prototypes
    seed: int = 0


_BASE = {
    "num_classes": 3,
    "emb_dim": 16,
    "num_heads": 2,
    "img_feat_dim": 16,
    "num_prototypes": 2,
    "max_prototypes": 3,
    "dropout_rate": 0.0,
}

CONFIGS: tuple[Config, ...] = (
    # the smoke configuration: 2 heads, every class present
    Config("base", dict(_BASE), labels=(0, 1, 2, 0), seed=11),
    # class 2 absent from the batch, class-balanced weighting with a non-default beta
    Config(
        "absent-cb",
        {**_BASE, "use_class_balanced": True, "cb_beta": 0.99},
        labels=(0, 0, 1, 1),
        seed=12,
    ),
    # k_c = (3, 2, 1) after expanding: full, partial and single-prototype classes; 4 heads
    Config(
        "uneven-k",
        {**_BASE, "num_heads": 4, "num_prototypes": 1},
        labels=(0, 1, 2, 2, 1),
        patches=3,
        expand_first=(0, 0, 1),
        seed=13,
    ),
    # 3-D global features with T = 3; 1 head
    Config("global-3d", {**_BASE, "num_heads": 1}, labels=(2, 1, 0, 1), img_tokens=3, seed=14),
    # every setting off its default, separation (margin 1.5) and diversity active, weights perturbed
    Config(
        "active",
        {
            **_BASE,
            "num_classes": 4,
            "img_feat_dim": 12,
            "momentum": 0.7,
            "margin": 1.5,
            "temperature": 7.0,
            "clst_scale": 0.7,
            "sep_scale": 0.09,
            "div_scale": 0.02,
            "contrastive_scale": 0.06,
        },
        labels=(0, 1, 2, 3, 1, 0, 2),
        patches=4,
        active=True,
        seed=15,
    ),
)


def clustered_rows(gen: torch.Generator, classes: int, per_class: int, dim: int) -> torch.Tensor:
    """Rows near one direction per class (within-class cosine about 0.85), norms 0.6-1.8."""
    directions = F.normalize(torch.randn(classes, dim, generator=gen), dim=-1)
    rows = directions.repeat_interleave(per_class, dim=0)
    rows = rows + 0.4 * torch.randn(classes * per_class, dim, generator=gen) / dim**0.5
    return rows * (0.6 + 1.2 * torch.rand(classes * per_class, 1, generator=gen))


def flatten(out: Battery, key: str, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        out[key] = value.detach().clone()
    elif isinstance(value, dict):
        out[f"{key}.keys"] = tuple(value)
        for k, v in value.items():
            flatten(out, f"{key}[{k!r}]", v)
    elif isinstance(value, (tuple, list)):
        out[f"{key}.type"] = f"{type(value).__name__}[{len(value)}]"
        for i, v in enumerate(value):
            flatten(out, f"{key}[{i}]", v)
    elif value is None or isinstance(value, (bool, int, float, str)):
        out[key] = value
    else:
        out[key] = f"<{type(value).__name__}>"


def record(out: Battery, key: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn``; store its flattened result, or the exception type, under ``key``."""
    try:
        value = fn()
    except Exception as exc:
        out[key] = f"raised {type(exc).__name__}"
        return None
    flatten(out, key, value)
    return value


def manager_state(head: Any) -> dict[str, Any]:
    pm = head.proto_manager
    return {
        "prototypes": pm.prototypes,
        "protos_per_class": pm.protos_per_class,
        "valid_mask": pm.valid_mask,
        "indices": tuple(tuple(pair) for pair in pm.get_prototype_indices()),
    }


def run_config(mod: ModuleType, cfg: Config, out: Battery) -> None:
    p = cfg.name
    kw = cfg.kwargs
    classes, per_class, dim = kw["num_classes"], kw["max_prototypes"], kw["emb_dim"]
    gen = torch.Generator().manual_seed(cfg.seed)
    batch = len(cfg.labels)
    pool = torch.randn(batch, cfg.patches, kw["img_feat_dim"], generator=gen)
    if cfg.img_tokens:
        img = torch.randn(batch, cfg.img_tokens, kw["img_feat_dim"], generator=gen)
    else:
        img = torch.randn(batch, kw["img_feat_dim"], generator=gen)
    labels = torch.tensor(cfg.labels)
    values = [3.0 * torch.randn(dim, generator=gen) for _ in range(2 + 2 * per_class + len(cfg.expand_first))]

    torch.manual_seed(cfg.seed)
    head = record(out, f"{p}/construct", lambda: mod.HeadOptimal(**kw))
    if head is None:
        return
    out[f"{p}/construct"] = "ok"
    record(out, f"{p}/state_dict-keys", lambda: tuple(head.state_dict()))
    for i, c in enumerate(cfg.expand_first):
        record(out, f"{p}/setup-expand[{i}]", lambda c=c, i=i: head.proto_manager.expand_prototype(c, values[-1 - i]))
    if cfg.active:

        def perturb() -> None:
            noise = torch.Generator().manual_seed(cfg.seed + 100)
            with torch.no_grad():
                for _name, param in sorted(head.named_parameters(), key=lambda item: item[0]):
                    param.add_(0.05 * torch.randn(param.shape, generator=noise))
                head.log_sigma_ce.fill_(0.3)
                head.log_sigma_proto.fill_(-0.4)
                head.proto_manager.prototypes.copy_(clustered_rows(noise, classes, per_class, dim))

        record(out, f"{p}/perturb", perturb)
    record(out, f"{p}/state", lambda: manager_state(head))

    head.eval()
    record(out, f"{p}/eval", lambda: head(pool, img))
    record(out, f"{p}/eval+labels", lambda: head(pool, img, labels))
    record(out, f"{p}/features", lambda: head.forward_features(pool, img))

    def train_step() -> tuple[Any, dict[str, Any]]:
        head.train()
        head.zero_grad(set_to_none=True)
        torch.manual_seed(cfg.seed + 1)
        result = head(pool, img, labels)
        result[1].backward()
        grads = {name: param.grad for name, param in sorted(head.named_parameters(), key=lambda item: item[0])}
        return result, grads

    record(out, f"{p}/train", train_step)

    def train_no_labels() -> Any:
        head.train()
        torch.manual_seed(cfg.seed + 2)
        return head(pool, img)

    record(out, f"{p}/train-no-labels", train_no_labels)

    pm = head.proto_manager
    record(out, f"{p}/ema[0]", lambda: pm.momentum_update(0, values[0]))
    record(out, f"{p}/ema[M+1]", lambda: pm.momentum_update(per_class + 1, values[1]))
    record(out, f"{p}/after-ema", lambda: manager_state(head))
    # expand the first and the last class up to and past capacity
    for i, c in enumerate((0, classes - 1)):
        for j in range(per_class):
            v = values[2 + i * per_class + j]
            record(out, f"{p}/expand[{c},{j}]", lambda c=c, v=v: pm.expand_prototype(c, v))
    record(out, f"{p}/after-expand", lambda: manager_state(head))
    head.eval()
    record(out, f"{p}/eval-after-expand", lambda: head(pool, img))


def run_compat(mod: ModuleType, out: Battery) -> None:
    gen = torch.Generator().manual_seed(21)
    pool = torch.randn(4, 5, 16, generator=gen)
    img = torch.randn(4, 16, generator=gen)
    labels = torch.tensor([0, 1, 2, 1])
    torch.manual_seed(21)
    head = record(out, "compat/construct", lambda: mod.Head(3, 16, 2, 16, num_prototypes=2, dropout_rate=0.0))
    if head is None:
        return
    out["compat/construct"] = "ok"
    head.train()
    record(out, "compat/train", lambda: head(pool, img, labels))
    head.eval()
    record(out, "compat/eval", lambda: head(pool, img))


def run_loss_direct(mod: ModuleType, out: Battery) -> None:
    """The loss called directly on layouts a head cannot reach through forward: classes with k_c = 0."""
    gen = torch.Generator().manual_seed(31)
    sims = torch.rand(4, 3, 3, generator=gen) * 2 - 1
    protos = clustered_rows(gen, 3, 3, 16)
    cases = {
        # only class 0 has prototypes: no other-class prototype, no different-class pair
        "one-class": ([(0, 2), (3, 3), (6, 6)], [0, 1], (0, 0, 0, 0)),
        # k_c = (1, 2, 3)
        "k-1-2-3": ([(0, 1), (3, 5), (6, 9)], [0, 3, 4, 6, 7, 8], (0, 1, 2, 1)),
        # class 1 empty between two non-empty classes
        "middle-empty": ([(0, 3), (3, 3), (6, 8)], [0, 1, 2, 6, 7], (0, 2, 2, 0)),
    }
    for name, (indices, rows, labels) in cases.items():
        mask = torch.zeros(9, dtype=torch.bool)
        mask[rows] = True

        def call(indices: list[tuple[int, int]] = indices, mask: torch.Tensor = mask, labels: Any = labels) -> Any:
            loss_fn = mod.OptimalPrototypeLoss(3, 3, margin=0.8)
            return loss_fn(sims, torch.tensor(labels), protos, indices, mask)

        record(out, f"loss-direct/{name}", call)


def battery(mod: ModuleType) -> Battery:
    out: Battery = {}
    for cfg in CONFIGS:
        run_config(mod, cfg, out)
    run_compat(mod, out)
    run_loss_direct(mod, out)
    return out


def differences(a: Battery, b: Battery) -> list[str]:
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            diffs.append(key)
            continue
        x, y = a[key], b[key]
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            if x.shape != y.shape or x.dtype != y.dtype:
                diffs.append(key)
            elif x.is_floating_point():
                if not torch.allclose(x, y, rtol=RTOL, atol=ATOL, equal_nan=True):
                    diffs.append(key)
            elif not torch.equal(x, y):
                diffs.append(key)
        elif type(x) is not type(y) or x != y:
            diffs.append(key)
    return diffs


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Battery:
    mod = load(SOURCE, tmp_path_factory.mktemp("original"), "original")
    assert smoke(mod) is None
    return battery(mod)


# --------------------------------------------------------------------------- static tests


def test_ids_unique_and_parts_known() -> None:
    ids = [m.id for m in MUTANTS]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]
    assert all(m.part in PARTS for m in MUTANTS), [m.id for m in MUTANTS if m.part not in PARTS]


def test_every_part_has_mutants() -> None:
    real = Counter(m.part for m in MUTANTS if not m.equivalent)
    assert {part: real[part] for part in PARTS if real[part] < 2} == {}
    assert 60 <= sum(real.values()) <= 90
    assert 12 <= sum(m.equivalent for m in MUTANTS) <= 18


def test_flags_and_descriptions() -> None:
    for m in MUTANTS:
        assert not (m.equivalent and m.crashes), m.id
        assert m.description, m.id
        assert "\n" not in m.description, m.id
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", m.id), m.id


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.id for m in MUTANTS])
def test_mutant_applies(mutant: Mutant) -> None:
    assert SOURCE.count(mutant.old) == 1
    mutated = apply(mutant, SOURCE)
    assert mutated != SOURCE
    compile(mutated, f"<{mutant.id}>", "exec")


def test_apply_rejects_missing_or_repeated_old() -> None:
    missing = Mutant("x", "gate", "x", "no such text in the file", "y")
    repeated = Mutant("x", "gate", "x", "if mask.sum() == 0:", "if False:")
    with pytest.raises(ValueError, match="0 times"):
        apply(missing, SOURCE)
    with pytest.raises(ValueError, match="2 times"):
        apply(repeated, SOURCE)


# --------------------------------------------------------------------------- dynamic tests


def test_battery_is_deterministic(original: Battery, tmp_path: Path) -> None:
    again = battery(load(SOURCE, tmp_path, "original-again"))
    assert differences(original, again) == []
    assert not any(isinstance(v, str) and v.startswith("raised") for v in original.values()), [
        k for k, v in original.items() if isinstance(v, str) and v.startswith("raised")
    ]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.id for m in MUTANTS])
def test_mutant_behaviour(mutant: Mutant, original: Battery, tmp_path: Path) -> None:
    mod = load(apply(mutant, SOURCE), tmp_path, mutant.id)
    exc = smoke(mod)
    if mutant.crashes:
        assert exc is not None, f"{mutant.id} is flagged crashes=True but the smoke run passed"
        return
    assert exc is None, f"{mutant.id} raised in the smoke run: {exc!r}"
    diffs = differences(original, battery(mod))
    if mutant.equivalent:
        assert diffs == [], f"equivalent {mutant.id} changed: {diffs[:10]}"
    else:
        assert diffs, f"{mutant.id} is not observable by the battery"
