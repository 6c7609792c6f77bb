"""The logits use a detached temperature: values unchanged, the temperature is never trained.

Breaks forward.contract alone: the training total's gradient is not its derivative in
`temperature` (every value a forward returns is right).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def forward(self, pool_img_features: torch.Tensor, img_features: torch.Tensor, labels: Any = None) -> Any:
        similarities = self.forward_features(pool_img_features, img_features)[0]
        logits = self.aggregate_similarities(similarities) * self.temperature.detach()
        if not (self.training and labels is not None):
            return logits, torch.tensor(0.0), {}
        ce = F.cross_entropy(logits, labels)
        pm = self.proto_manager
        loss_dict = self.proto_loss_fn(similarities, labels, pm.prototypes, pm.get_prototype_indices(), pm.valid_mask)
        s_ce, s_p = self.log_sigma_ce, self.log_sigma_proto
        total = torch.exp(-s_ce) * ce + s_ce + torch.exp(-s_p) * loss_dict["proto_loss"] + s_p
        return logits, total, {"ce_loss": ce, **loss_dict, "total_loss": total}
