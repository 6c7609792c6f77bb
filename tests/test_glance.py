"""The "At a glance" block: counts and the most severe results, all read from the report."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace

from headaudit.model import Report, Result
from headaudit.render import render_markdown
from headaudit.render.glance import anchor


def _block(md: str, heading: str) -> str:
    return md.split(f"## {heading}")[1].split("\n## ")[0]


def test_the_block_follows_the_subjects_and_counts_the_claims(reference_report: Report) -> None:
    md = render_markdown(reference_report, "en")
    assert md.index("## Subjects") < md.index("## At a glance") < md.index("## 1. Theory")
    block = _block(md, "At a glance")
    counts = Counter(c.verdict for c in reference_report.claims)
    assert f"The original report's {len(reference_report.claims)} claims" in block
    assert f"{counts['refuted']} refuted" in block
    assert f"{counts['confirmed']} confirmed" in block


def test_the_most_severe_results_link_to_their_details(reference_report: Report) -> None:
    md = render_markdown(reference_report, "en")
    block = _block(md, "At a glance")
    links = re.findall(r"\]\(#(check-[a-z0-9-]+)\)", block)
    assert links
    for target in links:
        assert f'<a id="{target}"></a>' in md  # the link lands on the check's details
    failing = [r for r in reference_report.results if r.subject == "candidate" and r.verdict == "fail"]
    assert {anchor(r.check) for r in failing} >= set(links) - {anchor(r.check) for r in reference_report.results}
    other = _block(md, "At a glance").split("The other most severe results")[1]
    others = re.findall(r"\]\(#(check-[a-z0-9-]+)\)", other)
    shown = {anchor(r.check) for r in _worse(reference_report)}
    high = [anchor(r.check) for r in failing if (c := reference_report.check(r.check)) and c.severity == "high"]
    if [h for h in high if h not in shown]:  # after the regressions, the most severe come first
        assert others[0] == next(h for h in high if h not in shown)
    assert not set(others) & shown  # a regression is listed once


_BAD = {"pass": 0, "n/a": 0, "warn": 1, "error": 2, "fail": 2}


def _worse(report: Report) -> list[Result]:
    """Computed here from the results, independently of the renderer."""
    out = []
    for r in report.results:
        before = report.result(r.check, "baseline")
        info = report.check(r.check)
        judged = r.subject == "candidate" and before and info and info.group != "performance"
        if judged and before and _BAD[r.verdict] > _BAD[before.verdict]:
            out.append(r)
    return out


def test_what_the_change_broke_comes_first(reference_report: Report) -> None:
    block = _block(render_markdown(reference_report, "en"), "At a glance")
    worse = _worse(reference_report)
    assert worse  # head_optimal.py breaks the host call site, compatibility and the class weights
    assert f"Worse on the candidate than on the baseline: {len(worse)} checks" in block
    section = block.split("Worse on the candidate")[1].split("The other most severe")[0]
    order = [c.id for c in reference_report.checks]
    expected = sorted((r.check for r in worse), key=order.index)
    assert re.findall(r"\]\(#(check-[a-z0-9-]+)\)", section) == [anchor(c) for c in expected]
    assert "host.loss-dict" in expected
    assert "compat.checkpoint" in expected


def test_no_regression_when_the_candidate_matches_the_baseline(reference_report: Report) -> None:
    same = tuple(
        replace(r, verdict=b.verdict, message=b.message)
        if r.subject == "candidate" and (b := reference_report.result(r.check, "baseline"))
        else r
        for r in reference_report.results
    )
    block = _block(render_markdown(replace(reference_report, results=same), "en"), "At a glance")
    assert "Worse on the candidate than on the baseline: none" in block
    contracts = [
        r
        for r in same
        if r.subject == "candidate" and (c := reference_report.check(r.check)) and c.group == "contracts"
    ]
    held = sum(r.verdict == "pass" for r in contracts)
    assert f"Component contracts that hold on the candidate: {held} of {len(contracts)}" in block


def test_the_block_in_chinese(reference_report: Report) -> None:
    block = _block(render_markdown(reference_report, "zh"), "概览")
    assert "原报告的" in block
    assert "（" in block  # full-width punctuation in the result lines
