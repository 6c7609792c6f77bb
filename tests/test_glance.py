"""The "At a glance" block: counts and the most severe results, all read from the report."""

from __future__ import annotations

import re
from collections import Counter

from headaudit.model import Report
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
    high = [r.check for r in failing if (c := reference_report.check(r.check)) and c.severity == "high"]
    if high:  # the most severe come first
        assert links[0] == anchor(high[0])


def test_the_block_in_chinese(reference_report: Report) -> None:
    block = _block(render_markdown(reference_report, "zh"), "概览")
    assert "原报告的" in block
    assert "（" in block  # full-width punctuation in the result lines
