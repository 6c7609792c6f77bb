"""SARIF 2.1.0 of the located findings, for code-scanning tools: a pure function of a Report.

Code-scanning tools (GitHub code scanning, IDE viewers) show a SARIF result on the line it
names, so a pull request that adds a host read or a loop over classes to a head file gets
the finding on that line. This renderer writes one run of the tool ``headaudit`` with:

- ``tool.driver.rules``: one rule per check that ran and places findings in files (the
  ``static.*`` checks, and ``compile.graph-breaks`` whose break reasons are mapped to
  ``file:line``), ``id`` the check id, descriptions from the message catalogue (title and
  method), the default level from the check's severity;
- ``results``: one per place (per subject), ``ruleId`` the check id, ``level`` from the
  subject's verdict and the check's severity (see :data:`LEVELS`), the message (the
  place, what was found, in which function), and a physical location: the file as the
  report shows it (relative to the working directory as ``%SRCROOT%``-based URI; bundled
  references as ``headaudit:reference/...``; other absolute paths as ``file://`` URIs),
  the line, and the column where known; ``partialFingerprints["headaudit/v1"]`` is the
  place's finding fingerprint (:mod:`headaudit.fingerprints`: file name, function, what was
  found, occurrence), so a viewer tracks a result across edits that move its line.

Keys are sorted and nothing depends on the clock, so the same Report gives the same bytes.
No torch; nothing is re-run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from headaudit import __version__
from headaudit.fingerprints import FINGERPRINT_VERSION, located
from headaudit.messages import Msg, render
from headaudit.model import CheckInfo, Report, Result

__all__ = ["LEVELS", "SARIF_SCHEMA", "SARIF_VERSION", "render_sarif"]

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

#: Result level by (verdict, severity): a failing check is an error unless its severity is
#: low (a warning); a check that warns gives warnings, or notes when its severity is low.
LEVELS: dict[tuple[str, str], str] = {
    ("fail", "high"): "error",
    ("fail", "medium"): "error",
    ("fail", "low"): "warning",
    ("warn", "high"): "warning",
    ("warn", "medium"): "warning",
    ("warn", "low"): "note",
}

Json = Any


def _located(info: CheckInfo) -> bool:
    return info.id.startswith("static.") or info.id == "compile.graph-breaks"


def _uri(path: str) -> dict[str, str]:
    """An ``artifactLocation`` for a path as the report shows it."""
    if path.startswith("headaudit:"):
        return {"uri": path}
    pure = PurePosixPath(path)
    if pure.is_absolute():
        return {"uri": "file://" + quote(pure.as_posix())}
    return {"uri": quote(pure.as_posix()), "uriBaseId": "%SRCROOT%"}


def _places(result: Result) -> Iterator[dict[str, Json]]:
    """``{file, line, col, source, message, fingerprint}`` of each place a result names."""
    ev = result.evidence if isinstance(result.evidence, Mapping) else {}
    traces = ev.get("traces") or []
    for site, finding in located(result.check, ev):
        if not site.get("line"):
            continue
        if "reason" in site and "detail" not in site:  # a graph break of the first trace
            params = {"reason": site["reason"], "count": site["count"], "classes": traces[0].get("num_classes")}
            msg = Msg("report.missed.sarif.break", params)
            yield {**site, "col": None, "message": msg, "fingerprint": finding.fingerprint}
            continue
        depth = site.get("depth")
        params = {"detail": site["detail"], "function": site["function"]}
        if depth:
            msg = Msg("report.missed.sarif.loop", {**params, "depth": depth})
        elif site.get("on_forward_path"):
            msg = Msg("report.missed.sarif.on_path", params)
        else:
            msg = Msg("report.missed.sarif.off_path", params)
        yield {**site, "message": msg, "fingerprint": finding.fingerprint}


def _rule(info: CheckInfo, lang: str) -> dict[str, Json]:
    return {
        "id": info.id,
        "name": "".join(part.capitalize() for part in info.id.replace(".", "-").split("-")),
        "shortDescription": {"text": info.title(lang)},
        "fullDescription": {"text": info.method(lang)},
        "defaultConfiguration": {"level": LEVELS[("fail", info.severity)]},
        "properties": {"severity": info.severity, "tags": ["headaudit", info.id.split(".")[0]]},
    }


def _result(info: CheckInfo, index: int, result: Result, place: Mapping[str, Json], lang: str) -> dict[str, Json]:
    region: dict[str, Json] = {"startLine": int(place["line"])}
    if place.get("col"):
        region["startColumn"] = int(place["col"])
    if place.get("source"):
        region["snippet"] = {"text": str(place["source"])}
    return {
        "ruleId": info.id,
        "ruleIndex": index,
        "level": LEVELS.get((result.verdict, info.severity), "note"),
        "message": {"text": render(place["message"], lang)},
        "locations": [{"physicalLocation": {"artifactLocation": _uri(str(place["file"])), "region": region}}],
        "partialFingerprints": {f"headaudit/v{FINGERPRINT_VERSION}": place["fingerprint"]},
        "properties": {"subject": result.subject, "verdict": result.verdict},
    }


def sarif_log(report: Report, lang: str = "en") -> dict[str, Json]:
    """The SARIF log as a dict (see :func:`render_sarif`)."""
    infos = [c for c in report.checks if _located(c)]
    rules = [_rule(c, lang) for c in infos]
    results = []
    for index, info in enumerate(infos):
        for result in report.results:
            if result.check != info.id or result.verdict not in ("fail", "warn"):
                continue
            results += [_result(info, index, result, place, lang) for place in _places(result)]
    run = {
        "tool": {
            "driver": {
                "name": "headaudit",
                "version": report.environment.tool_version or __version__,
                "rules": rules,
            }
        },
        "columnKind": "unicodeCodePoints",
        "results": results,
    }
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def render_sarif(report: Report, lang: str = "en") -> str:
    """Stable SARIF 2.1.0 JSON text of the report's located findings."""
    return json.dumps(sarif_log(report, lang), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
