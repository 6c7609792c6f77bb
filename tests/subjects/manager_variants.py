"""Prototype managers a user might write, each a small change to head_optimal.py's.

- ``BufferPrototypes``: the rows live in a buffer, moved only by the EMA and by
  expansion. Nothing is lost by an update that was never a parameter: ema.isolation and
  manager.expand pass; losses.conflicts is n/a (no loss gradient reaches the rows).
- ``RaisesWhenFull``: ``expand_prototype`` raises at capacity instead of returning False,
  which breaks a caller's ``if not expand(...)``: manager.expand fails, naming the raise.
- ``NormalisesOldRow``: the EMA normalises the old row before mixing, so rows that start
  off unit norm do not skew the first step: ema.initial-norm warns (norms off, their
  consequence absent) instead of failing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from headaudit.reference.head_optimal import DynamicPrototypeManagerOptimal, HeadOptimal


class _RaisingManager(DynamicPrototypeManagerOptimal):
    @torch.no_grad()
    def expand_prototype(self, class_idx: int, new_proto: torch.Tensor) -> bool:
        k = int(self.protos_per_class[class_idx])
        if k >= self.max_prototypes:
            raise ValueError(f"class {class_idx} is full ({k} of {self.max_prototypes} prototypes)")
        return super().expand_prototype(class_idx, new_proto)


class _PrenormManager(DynamicPrototypeManagerOptimal):
    @torch.no_grad()
    def momentum_update(self, proto_idx: int, new_value: torch.Tensor) -> None:
        old = F.normalize(self.prototypes.data[proto_idx], p=2, dim=-1)
        mixed = self.momentum * old + (1 - self.momentum) * F.normalize(new_value, p=2, dim=-1)
        self.prototypes.data[proto_idx] = F.normalize(mixed, p=2, dim=-1)


class BufferPrototypes(HeadOptimal):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        manager = self.proto_manager
        rows = manager.prototypes.detach().clone()
        del manager.prototypes
        manager.register_buffer("prototypes", rows)


class RaisesWhenFull(HeadOptimal):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        self.proto_manager.__class__ = _RaisingManager


class NormalisesOldRow(HeadOptimal):
    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        self.proto_manager.__class__ = _PrenormManager
