"""One training run of one head at one seed: a pure function of picklable inputs.

:func:`run_one` takes a :class:`HeadSpec` (the subject's spec string, the name maps and the
constructor settings), the :class:`~headaudit.train.data.TrainData` arrays, a
:class:`TrainConfig` and a seed, and returns a :class:`SeedRun` of plain numbers, so the
runs can be spread over worker processes (:mod:`headaudit.train.pool`) and give the same
numbers wherever they run.

Per seed, every head is trained the same way: the backbone is initialised from the seed
before the head is built (same weights for every head), the batches are the same indices
in the same order (:func:`batch_plan`: consecutive chunks of seeded permutations, like a
shuffled data loader dropping its last short batch), the optimiser is AdamW over backbone
and head together, for the same number of steps. One intra-op thread and
``torch.use_deterministic_algorithms(True)``: same seed, same numbers.

The head is reached as the host reaches it (BEHAVIOR.md 5): ``forward(patches (B, L, D),
global (B, 1, D), labels=...)`` in training mode, its second value (or the value itself) the
loss to minimise; in eval mode without labels, its first value the logits. Names go through
the user's maps (``forward``, ``forward.labels``, ``proto_manager.*``), so a renamed head
trains too. Whatever the subject raises ends that run with the subject's message (``error``),
never with a number.

After training the same model is evaluated on the test split (in a seeded order, so that
batches mix classes) at each evaluation batch size: balanced accuracy, macro-F1 and the
recall of every class. The spread of the balanced accuracy over those batch sizes is the cost
of batch coupling: 0 for a head whose prediction of a sample does not depend on its batch.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from headaudit.build import SettingNotApplied, construct
from headaudit.names import NameMap, labels_keyword, walk
from headaudit.sandbox import SubjectRaised, call_subject, captured
from headaudit.train.data import TrainData

__all__ = ["DigitsBackbone", "HeadSpec", "SeedRun", "TrainConfig", "batch_plan", "run_one"]


@dataclass(frozen=True)
class TrainConfig:
    """How every head is trained. Seeds are ``seed, seed + 1, ..., seed + seeds - 1``.

    ``eval_batches`` are the evaluation batch sizes; 0 stands for the whole test split.
    ``width`` is the backbone's feature size ``D`` (and the head's ``emb_dim``) on images;
    on a user's features ``D`` is theirs.
    """

    seeds: int = 5
    steps: int = 150
    batch: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.05
    width: int = 32
    seed: int = 0
    eval_batches: tuple[int, ...] = (1, 16, 0)

    @property
    def seed_list(self) -> tuple[int, ...]:
        return tuple(range(self.seed, self.seed + self.seeds))

    def to_dict(self) -> dict[str, Any]:
        return {
            "seeds": list(self.seed_list),
            "steps": self.steps,
            "batch": self.batch,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "width": self.width,
            "eval_batches": list(self.eval_batches),
            "optimizer": "AdamW",
        }


@dataclass(frozen=True)
class HeadSpec:
    """A head to train: ``role`` names it in the tables (``candidate+cb`` for the recommended
    configuration), ``spec`` is the subject (``PATH[:CLASS]``), ``maps`` the user's name maps,
    ``settings`` constructor keywords the run relies on (read back after construction)."""

    role: str
    spec: str
    maps: tuple[tuple[str, str], ...] = ()
    settings: tuple[tuple[str, Any], ...] = ()
    display: str = ""  # the subject's path as the report shows it


@dataclass(frozen=True)
class SeedRun:
    """The numbers of one (head, seed) run, or why it has none.

    ``status`` is ``"ok"``, ``"error"`` (the subject raised: ``detail`` is its message) or
    ``"n/a"`` (a setting the run relies on was refused or did not take effect). Per
    evaluation batch size (the config's order): ``balanced_accuracy``, ``macro_f1`` and
    ``recall`` per class. ``losses`` is the training total per step.
    """

    role: str
    seed: int
    status: str = "ok"
    detail: str = ""
    balanced_accuracy: tuple[float, ...] = ()
    macro_f1: tuple[float, ...] = ()
    recall: tuple[tuple[float, ...], ...] = ()
    losses: tuple[float, ...] = ()
    same_class_cosine: float | None = None
    other_class_cosine: float | None = None
    seconds_per_step: float | None = None  # wall clock; None: not timed (served from the cache)
    cpu_seconds_per_step: float | None = None  # this process's CPU time: what an idle core would take


class DigitsBackbone(nn.Module):
    """A small conv backbone: an 8x8 image to ``(B, 49, D)`` patches and a ``(B, 1, D)`` global feature.

    A 2x2 convolution (stride 1) gives the 7x7 map of patches ``models_mae.py`` feeds the
    head, a per-token MLP and a LayerNorm follow, and the global feature is the mean of the
    patches. No batch statistics: a sample's features never depend on its batch, so any batch
    coupling measured comes from the head.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, width, kernel_size=2)
        self.mlp = nn.Sequential(nn.GELU(), nn.Linear(width, width))
        self.norm = nn.LayerNorm(width)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.conv(images).flatten(2).transpose(1, 2)  # (B, 49, D)
        patches = self.norm(tokens + self.mlp(tokens))
        return patches, patches.mean(dim=1, keepdim=True)


def batch_plan(data: TrainData, config: TrainConfig, seed: int) -> list[np.ndarray]:
    """The training batches of ``seed``: index arrays, the same for every head."""
    n = len(data.train_y)
    size = min(config.batch, n)
    rng = np.random.default_rng([seed, 1027])
    plan: list[np.ndarray] = []
    while len(plan) < config.steps:
        order = rng.permutation(n)
        for start in range(0, n - size + 1, size):
            plan.append(order[start : start + size])
            if len(plan) == config.steps:
                break
    return plan


_SUBJECTS: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}


def _subject(head: HeadSpec) -> Any:
    """The loaded subject (once per process)."""
    from headaudit.subjects import load_subject

    key = (head.spec, head.maps)
    if key not in _SUBJECTS:
        _SUBJECTS[key] = load_subject(head.spec, head.role, names=NameMap(head.maps))
    return _SUBJECTS[key]


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    threads, strict = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(strict)
        torch.set_num_threads(threads)


def _build(subject: Any, head: HeadSpec, num_classes: int, dim: int) -> Any:
    settings = {"dropout_rate": 0.0, **dict(head.settings)}
    first: SubjectRaised | None = None
    for heads in (4, 2, 1, 8):
        if dim % heads:
            continue
        try:
            built = construct(subject.head_cls, (num_classes, dim, heads, dim), settings, subject.names)
        except SubjectRaised as exc:
            first = first or exc
            continue
        built.require([name for name, _ in head.settings], settings)
        return built.head
    assert first is not None
    raise first


def _scores(pred: np.ndarray, truth: np.ndarray, classes: int) -> tuple[float, float, tuple[float, ...]]:
    """Balanced accuracy, macro-F1 and per-class recall of predictions."""
    recall, f1 = [], []
    for c in range(classes):
        tp = float(np.sum((pred == c) & (truth == c)))
        fn = float(np.sum((pred != c) & (truth == c)))
        fp = float(np.sum((pred == c) & (truth != c)))
        recall.append(tp / (tp + fn) if tp + fn else 0.0)
        f1.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(recall)), float(np.mean(f1)), tuple(recall)


def _first(out: Any) -> Any:
    return out[0] if isinstance(out, (tuple, list)) else out


def _cosines(head: Any, names: NameMap) -> tuple[float | None, float | None]:
    """Mean cosine between valid prototypes of the same class and of different classes."""
    found_p, protos, _ = walk(head, names.apply("proto_manager.prototypes"))
    found_m, mask, _ = walk(head, names.apply("proto_manager.valid_mask"))
    found_k, per_class, _ = walk(head, names.apply("proto_manager.max_prototypes"))
    if not (found_p and found_m and found_k) or not isinstance(protos, torch.Tensor):
        return None, None
    with torch.no_grad():
        valid = torch.as_tensor(mask).reshape(-1).bool()
        rows = F.normalize(protos.detach().double()[valid], dim=-1)
        cls = torch.arange(valid.numel())[valid] // int(per_class)
        cos = rows @ rows.T
        same = (cls[:, None] == cls[None, :]) & ~torch.eye(len(cls), dtype=torch.bool)
        other = cls[:, None] != cls[None, :]
    return (
        float(cos[same].mean()) if bool(same.any()) else None,
        float(cos[other].mean()) if bool(other.any()) else None,
    )


def run_one(head: HeadSpec, data: TrainData, config: TrainConfig, seed: int) -> SeedRun:
    """Train ``head`` at ``seed`` and measure it (see the module docstring); never raises for the subject."""
    with _deterministic(), captured():
        try:
            return _run(head, data, config, seed)
        except SubjectRaised as exc:
            return SeedRun(head.role, seed, "error", f"{exc.where} raised {exc.detail}")
        except SettingNotApplied as exc:
            return SeedRun(head.role, seed, "n/a", f"{exc.name}={exc.wanted!r} was not applied ({exc.detail})")


def _run(head: HeadSpec, data: TrainData, config: TrainConfig, seed: int) -> SeedRun:
    subject = _subject(head)
    names: NameMap = subject.names
    images = data.kind == "images"
    dim = config.width if images else data.feature_dim
    torch.manual_seed(seed)
    backbone = DigitsBackbone(dim) if images else None
    torch.manual_seed(seed + 7919)
    model = _build(subject, head, data.num_classes, dim)
    found, forward, _ = walk(model, names.apply("forward"))
    keyword = labels_keyword(forward, names) if found else None
    if keyword is None:
        return SeedRun(head.role, seed, "n/a", f"the head's forward takes no {names.apply('forward.labels')!r}")
    params = {id(p): p for p in model.parameters()}
    if backbone is not None:
        params.update({id(p): p for p in backbone.parameters()})
    optimiser = torch.optim.AdamW(list(params.values()), lr=config.lr, weight_decay=config.weight_decay)

    def features(idx: np.ndarray, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if backbone is not None:
            x = torch.from_numpy(data.train_x[idx] if train else data.test_x[idx])
            return backbone(x)
        assert data.train_global is not None
        assert data.test_global is not None
        patches = torch.from_numpy(data.train_x[idx] if train else data.test_x[idx])
        glob = torch.from_numpy(data.train_global[idx] if train else data.test_global[idx])
        return patches, glob[:, None, :]

    model.train(True)
    losses: list[float] = []
    start, cpu = time.perf_counter(), time.process_time()
    for idx in batch_plan(data, config, seed):
        patches, glob = features(idx, True)
        labels = torch.from_numpy(data.train_y[idx])
        out = call_subject("forward (training, with labels)", forward, patches, glob, **{keyword: labels})
        total = out[1] if isinstance(out, (tuple, list)) and len(out) > 1 else out
        if not isinstance(total, torch.Tensor) or total.numel() != 1 or not total.requires_grad:
            kind = type(total).__name__ if not isinstance(total, torch.Tensor) else f"tensor {tuple(total.shape)}"
            detail = f"the training forward's loss is {kind}, not a scalar with a graph"
            return SeedRun(head.role, seed, "error", detail)
        optimiser.zero_grad(set_to_none=True)
        call_subject("the training loss's backward()", total.backward)
        optimiser.step()
        losses.append(float(total.detach()))
    seconds = (time.perf_counter() - start) / max(1, len(losses))
    cpu_seconds = (time.process_time() - cpu) / max(1, len(losses))

    model.train(False)
    if backbone is not None:
        backbone.train(False)
    order = np.random.default_rng([seed, 2027]).permutation(len(data.test_y))
    truth = data.test_y[order]
    accs, f1s, recalls = [], [], []
    with torch.no_grad():
        patches, glob = features(order, False)
        for size in config.eval_batches:
            step = size or len(order)
            parts = [
                _first(call_subject("forward (eval)", forward, patches[i : i + step], glob[i : i + step]))
                for i in range(0, len(order), step)
            ]
            pred = torch.cat([torch.as_tensor(p) for p in parts]).argmax(dim=-1).numpy()
            acc, f1, recall = _scores(pred, truth, data.num_classes)
            accs.append(acc)
            f1s.append(f1)
            recalls.append(recall)
    same, other = _cosines(model, names)
    return SeedRun(
        head.role,
        seed,
        balanced_accuracy=tuple(accs),
        macro_f1=tuple(f1s),
        recall=tuple(recalls),
        losses=tuple(losses),
        same_class_cosine=same,
        other_class_cosine=other,
        seconds_per_step=seconds,
        cpu_seconds_per_step=cpu_seconds,
    )
