"""A head file that imports a sibling module by plain name, as user projects do."""

from __future__ import annotations

from blocks import SIBLING_MARK
from blocks import HeadOptimal as _Base


class HeadOptimal(_Base):
    mark = SIBLING_MARK
