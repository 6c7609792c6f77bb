"""Heads that compute in reduced precision: under autocast, or with bfloat16 parameters.

Mixed precision is not a defect. A correct head run under ``torch.autocast`` (bfloat16 or
float16) or kept in bfloat16 must get the verdicts head_optimal.py gets in float32
(``HeadOptimal``, ``Float16``, ``Bfloat16Params``), with tolerances at the rounding of the
dtype it computed in, named in the evidence. The wider tolerance must not hide a defect:
the one-defect subjects of the component contracts, run under bfloat16 autocast, still
fail their check (``SimDot``, ``AggMean``, ``GateUnnormalised``, ``SelfReadsInput``,
``CutGraph``).
"""

from __future__ import annotations

from typing import Any

import torch
from agg_mean import HeadOptimal as _AggMean
from cut_graph import HeadOptimal as _CutGraph
from gate_unnormalised import HeadOptimal as _GateUnnormalised
from self_reads_input import HeadOptimal as _SelfReadsInput
from sim_dot import HeadOptimal as _SimDot

from headaudit.reference.head_optimal import HeadOptimal as _Reference


def autocast(base: type, dtype: torch.dtype) -> type:
    """``base`` with its public entry points run under CPU autocast in ``dtype``."""

    class Autocast(base):  # type: ignore[misc, valid-type]
        def forward_features(self, *args: Any, **kwargs: Any) -> Any:
            with torch.autocast("cpu", dtype=dtype):
                return super().forward_features(*args, **kwargs)

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            with torch.autocast("cpu", dtype=dtype):
                return super().forward(*args, **kwargs)

    Autocast.__name__ = Autocast.__qualname__ = f"{base.__name__}Autocast"
    return Autocast


HeadOptimal = autocast(_Reference, torch.bfloat16)
Float16 = autocast(_Reference, torch.float16)
SimDot = autocast(_SimDot, torch.bfloat16)
AggMean = autocast(_AggMean, torch.bfloat16)
GateUnnormalised = autocast(_GateUnnormalised, torch.bfloat16)
SelfReadsInput = autocast(_SelfReadsInput, torch.bfloat16)
CutGraph = autocast(_CutGraph, torch.bfloat16)


class Bfloat16Params(_Reference):
    """head_optimal.py kept in bfloat16; inputs cast to its parameters' dtype on entry."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.to(torch.bfloat16)

    def forward_features(self, pool_img_features: torch.Tensor, img_features: torch.Tensor) -> Any:
        dtype = self.proto_manager.prototypes.dtype
        return super().forward_features(pool_img_features.to(dtype), img_features.to(dtype))
