"""A head that talks: it prints at import, prints and warns in forward, and writes to stderr."""

from __future__ import annotations

import os
import sys
import warnings

from headaudit.reference.head_optimal import HeadOptimal as _Base

print("printing_head: imported")


class HeadOptimal(_Base):
    def forward(self, pool_img_features, img_features, labels=None):  # type: ignore[no-untyped-def, override]
        print("printing_head: forward")
        sys.stderr.write("printing_head: to stderr\n")
        os.write(1, b"printing_head: straight to fd 1\n")
        warnings.warn("printing_head: a warning", UserWarning, stacklevel=1)
        return super().forward(pool_img_features, img_features, labels)
