"""A loss dict with a new term inside proto_loss and a diagnostic outside it.

``ortho_loss`` (a small penalty on the valid rows' Gram matrix) is added to
``proto_loss``; ``sep_active_frac`` (the share of samples whose separation hinge is
active, computed without gradient) is reported beside the terms and not summed.
``loss.terms-sum`` must pass, naming the diagnostic it leaves out; ``SumsDiagnostic`` adds
the diagnostic into ``proto_loss`` in some batches only, so no fixed set of keys sums to
it, and must fail.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from headaudit.reference.head_optimal import HeadOptimal as _Base
from headaudit.reference.head_optimal import OptimalPrototypeLoss


class DiagnosticLoss(OptimalPrototypeLoss):
    sum_diagnostic_when_odd = False

    def forward(self, similarities, labels, prototypes, proto_indices, valid_mask):  # type: ignore[no-untyped-def, override]
        terms = super().forward(similarities, labels, prototypes, proto_indices, valid_mask)
        unit = F.normalize(prototypes[valid_mask], dim=-1)
        gram = unit @ unit.t()
        terms["ortho_loss"] = 0.001 * (gram - torch.eye(len(unit), dtype=gram.dtype)).pow(2).mean()
        with torch.no_grad():
            nearest_other = (1 - similarities).amin(dim=-1).amin(dim=-1)
            terms["sep_active_frac"] = (nearest_other < self.margin).float().mean()
        terms["proto_loss"] = terms["proto_loss"] + terms["ortho_loss"]
        if self.sum_diagnostic_when_odd and len(labels) % 2:
            terms["proto_loss"] = terms["proto_loss"] + terms["sep_active_frac"]
        return terms


class HeadOptimal(_Base):
    loss_cls = DiagnosticLoss

    def __init__(self, num_classes: int, emb_dim: int, num_heads: int, img_feat_dim: int, **kwargs: object) -> None:
        super().__init__(num_classes, emb_dim, num_heads, img_feat_dim, **kwargs)  # type: ignore[arg-type]
        self.proto_loss_fn.__class__ = self.loss_cls  # the same loss, settings and all, with the change


class _SometimesSummed(DiagnosticLoss):
    sum_diagnostic_when_odd = True


class SumsDiagnostic(HeadOptimal):
    loss_cls = _SometimesSummed
