"""The canonical JSON form of a Report (the Markdown renderers are views of it)."""

from __future__ import annotations

import json

from headaudit.model import Report

__all__ = ["parse_json", "render_json"]


def render_json(report: Report) -> str:
    """Stable JSON: sorted keys, two-space indent, UTF-8 text, trailing newline."""
    return json.dumps(report.to_dict(), ensure_ascii=False, indent=2, sort_keys=True, allow_nan=False) + "\n"


def parse_json(text: str) -> Report:
    """The Report that :func:`render_json` wrote."""
    return Report.from_dict(json.loads(text))
