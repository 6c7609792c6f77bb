"""A head whose forward never returns: the time budget must end the check, not the audit."""

from __future__ import annotations

from headaudit.reference.head_optimal import HeadOptimal as _Base


class HeadOptimal(_Base):
    def forward(self, pool_img_features, img_features, labels=None):  # type: ignore[no-untyped-def, override]
        while True:
            pass
