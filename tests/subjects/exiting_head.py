"""A head whose forward ends the process with sys.exit(3): the audit must go on."""

from __future__ import annotations

import sys

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def forward(self, pool_img_features, img_features, labels=None):  # type: ignore[no-untyped-def, override]
        sys.exit(3)
