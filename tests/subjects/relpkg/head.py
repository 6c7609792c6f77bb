"""A head module inside a package, importing its sibling relatively."""

from __future__ import annotations

from .blocks import PACKAGE_MARK
from .blocks import HeadOptimal as _Base


class HeadOptimal(_Base):
    mark = PACKAGE_MARK
