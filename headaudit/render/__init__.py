"""Renderers: pure functions from a Report to text. They never import torch."""

from __future__ import annotations

from headaudit.render.json import parse_json, render_json
from headaudit.render.markdown import render_markdown

__all__ = ["parse_json", "render_json", "render_markdown"]
