"""Detection rates of the property searches, as validated and recorded.

A search that misses a defect for some seeds would let a report pass for lack of
evidence. Each search check is validated on its must-fail subjects over seeds 0-199
(the slow test ``tests/test_detection.py``); the measured rates are written to
``headaudit/data/detection.json`` by that test (``HEADAUDIT_WRITE_DETECTION=1``) and
compared with it on every run, so the recorded figures cannot drift from what the
searches do. Reports quote the recorded file in their reproducibility block.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["DETECTION_FILE", "recorded_detection"]

DETECTION_FILE = "detection.json"


def recorded_detection() -> Any:
    """The recorded validation (``{"seeds": ..., "profile": ..., "checks": {...}}``), or None."""
    path = resources.files("headaudit").joinpath("data", DETECTION_FILE)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
