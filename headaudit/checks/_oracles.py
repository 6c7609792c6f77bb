"""Independent oracles for the component contracts: plain numpy, written from BEHAVIOR.md.

Nothing here calls a subject. Every oracle takes float64 arrays (the subject's inputs,
weights or captured tensors, converted with :func:`arr`) and recomputes what the part
should produce with numpy formulas of its own, so a mistake in the subject's torch code
cannot be repeated by the oracle. The torch modules a head is built from
(``nn.MultiheadAttention``, ``nn.LayerNorm``, ``nn.Linear``) are read for their weights
only; :class:`OracleUnavailable` says when a part is not one of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "OracleUnavailable",
    "arr",
    "attention",
    "cluster_terms",
    "cosine_matrix",
    "cross_entropy",
    "diversity",
    "gelu",
    "layer_norm",
    "linear",
    "perturb",
    "separation",
    "softmax",
    "unit",
]


class OracleUnavailable(Exception):
    """A part of the subject is not a module whose computation the oracle knows.

    ``found`` is what the part is (a type name, a count); ``expected`` what the oracle needs.
    """

    def __init__(self, part: str, found: str, expected: str) -> None:
        super().__init__(f"{part}: {found}, expected {expected}")
        self.part, self.found, self.expected = part, found, expected


def arr(x: Any) -> np.ndarray:
    """A tensor (or array) as a float64 numpy array, detached from any graph."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero)."""
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``out[i, j] = cos(a[i], b[j])`` for rows of ``a`` (n, d) and ``b`` (m, d)."""
    return unit(a) @ unit(b).T


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = x - x.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


_ERF = np.frompyfunc(math.erf, 1, 1)


def gelu(x: np.ndarray) -> np.ndarray:
    """The exact GELU, ``x * Phi(x)`` with the error function."""
    return 0.5 * x * (1.0 + np.asarray(_ERF(x / math.sqrt(2.0)), dtype=np.float64))


def linear(x: np.ndarray, module: Any, part: str) -> np.ndarray:
    """``x W^T + b`` from an ``nn.Linear``'s weights."""
    if not isinstance(module, nn.Linear):
        raise OracleUnavailable(part, type(module).__name__, "nn.Linear")
    out = x @ arr(module.weight).T
    return out + arr(module.bias) if module.bias is not None else out


def layer_norm(x: np.ndarray, module: Any, part: str) -> np.ndarray:
    """Layer normalisation over the last dim with an ``nn.LayerNorm``'s weights and eps."""
    if not isinstance(module, nn.LayerNorm) or len(module.normalized_shape) != 1:
        raise OracleUnavailable(part, type(module).__name__, "nn.LayerNorm")
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    out = (x - mean) / np.sqrt(var + module.eps)
    if module.weight is not None:
        out = out * arr(module.weight)
    if module.bias is not None:
        out = out + arr(module.bias)
    return out


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, module: Any, part: str) -> np.ndarray:
    """Multi-head attention of one sequence of queries ``(L, E)`` over keys/values ``(S, E)``.

    Written from the definition (per head: ``softmax(Q K^T / sqrt(d)) V``, heads
    concatenated, then the output projection) with an ``nn.MultiheadAttention``'s weights
    and its ``num_heads``. Tokens are the rows: BEHAVIOR.md's attentions are batch-first
    over one sequence, so a module that treats them otherwise gives other values.
    """
    if not isinstance(module, nn.MultiheadAttention):
        raise OracleUnavailable(part, type(module).__name__, "nn.MultiheadAttention")
    if module.bias_k is not None or module.add_zero_attn:
        raise OracleUnavailable(part, "add_bias_kv/add_zero_attn", "nn.MultiheadAttention")
    e = q.shape[-1]
    packed = getattr(module, "in_proj_weight", None)  # None when kdim or vdim differ from the embedding size
    if packed is not None:
        wq, wk, wv = np.split(arr(packed), 3, axis=0)
    else:
        wq, wk, wv = (arr(w) for w in (module.q_proj_weight, module.k_proj_weight, module.v_proj_weight))
    bias = getattr(module, "in_proj_bias", None)
    bq, bk, bv = np.split(arr(bias), 3) if bias is not None else (0.0, 0.0, 0.0)
    heads = int(module.num_heads)
    d = e // heads
    qh = (q @ wq.T + bq).reshape(q.shape[0], heads, d).transpose(1, 0, 2)
    kh = (k @ wk.T + bk).reshape(k.shape[0], heads, d).transpose(1, 0, 2)
    vh = (v @ wv.T + bv).reshape(v.shape[0], heads, d).transpose(1, 0, 2)
    weights = softmax(qh @ kh.transpose(0, 2, 1) / math.sqrt(d), axis=-1)
    joined = (weights @ vh).transpose(1, 0, 2).reshape(q.shape[0], e)
    return linear(joined, module.out_proj, f"{part}.out_proj")


def cross_entropy(logits: np.ndarray, labels: Sequence[int]) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits)`` (unweighted)."""
    top = logits.max(axis=-1, keepdims=True)
    log_z = np.log(np.exp(logits - top).sum(axis=-1)) + top[:, 0]
    picked = logits[np.arange(len(labels)), np.asarray(labels)]
    return float(np.mean(log_z - picked))


def cluster_terms(similarities: np.ndarray, labels: Sequence[int], counts: Sequence[int]) -> dict[int, float]:
    """Per present class: mean over its samples of the distance ``1 - cos`` to its nearest valid own prototype."""
    out: dict[int, float] = {}
    labels = list(labels)
    for c in sorted(set(labels)):
        rows = [b for b, y in enumerate(labels) if y == c]
        out[c] = float(np.mean([np.min(1.0 - similarities[b, c, : counts[c]]) for b in rows]))
    return out


def separation(similarities: np.ndarray, labels: Sequence[int], counts: Sequence[int], margin: float) -> float:
    """Mean over present classes that have another class's valid prototype, of the mean over their
    samples of ``relu(margin - d)``, ``d`` the distance to the nearest valid prototype of another class.
    """
    labels = list(labels)
    per_class = []
    for c in sorted(set(labels)):
        others = [(o, j) for o, k in enumerate(counts) if o != c for j in range(k)]
        if not others:
            continue
        rows = [b for b, y in enumerate(labels) if y == c]
        hinge = [max(0.0, margin - min(1.0 - similarities[b, o, j] for o, j in others)) for b in rows]
        per_class.append(float(np.mean(hinge)))
    return float(np.mean(per_class)) if per_class else 0.0


def diversity(prototypes: np.ndarray, counts: Sequence[int], per_class: int, threshold: float = 0.5) -> float:
    """Mean over classes with >= 2 valid rows of the mean of ``relu(cos - threshold)`` over their
    off-diagonal same-class pairs; 0 when no class has two."""
    values = []
    for c, k in enumerate(counts):
        if k < 2:
            continue
        rows = unit(prototypes[c * per_class : c * per_class + k])
        gram = rows @ rows.T
        off = ~np.eye(k, dtype=bool)
        values.append(float(np.maximum(gram[off] - threshold, 0.0).mean()))
    return float(np.mean(values)) if values else 0.0


@torch.no_grad()
def perturb(module: nn.Module, gen: torch.Generator, scale: float = 0.1) -> None:
    """Move every floating parameter off its initialisation by seeded noise.

    Fresh LayerNorms are the identity map (weight 1, bias 0) and fresh heads share their
    initial values, so two norms or two parameters swapped by mistake would look the same;
    after this they differ. Parameters are visited in name order, so a file gets the same
    noise whichever process runs it.
    """
    for _name, param in sorted(module.named_parameters(), key=lambda item: item[0]):
        if param.is_floating_point():
            param.add_((scale * torch.randn(param.shape, generator=gen, dtype=torch.float64)).to(param.dtype))
