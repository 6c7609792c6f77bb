"""head_optimal.py's head beside a ``has_multi_prototype_head`` that hangs with ``SIGALRM`` blocked.

The check's own time limit is a ``SIGALRM`` (:func:`headaudit.sandbox.time_limit`); a
subject that blocks it, as a long C call holding the signal back does, never sees it.
Only ``trainer.detect`` calls the helper, so with ``--jobs 2`` the parent's watchdog
must kill that pair's worker and record the timeout, and every other pair go on.
"""

from __future__ import annotations

import signal
import time

from torch import nn

from headaudit.reference.head_optimal import HeadOptimal

__all__ = ["HeadOptimal", "has_multi_prototype_head"]


def has_multi_prototype_head(model: nn.Module) -> bool:
    """Blocks the alarm, then sleeps for an hour."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(3600)
    return True
