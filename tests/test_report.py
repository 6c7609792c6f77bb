"""The report: JSON is canonical and round-trips; Markdown is a complete view in en and zh."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

from headaudit.claims import CLAIMS
from headaudit.messages import LANGS, Msg, catalogue, placeholders, render
from headaudit.model import Report, Result
from headaudit.render import parse_json, render_json, render_markdown
from headaudit.render.markdown import cell

_CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def test_json_round_trips(reference_report: Report) -> None:
    text = render_json(reference_report)
    again = parse_json(text)
    assert again == reference_report
    assert render_json(again) == text
    for lang in LANGS:
        assert render_markdown(again, lang) == render_markdown(reference_report, lang)


def test_json_has_the_documented_fields(reference_report: Report) -> None:
    data = json.loads(render_json(reference_report))
    assert data["schema_version"] == 2
    assert [(s["role"], len(s["sha256"])) for s in data["subjects"]] == [("baseline", 64), ("candidate", 64)]
    for result in data["results"]:
        assert set(result) >= {"check", "subject", "verdict", "message", "summary", "evidence", "output"}
        assert result["verdict"] in {"pass", "fail", "warn", "n/a", "error"}
        # language-neutral id and parameters beside the rendered texts
        assert result["message"]["id"].startswith(result["check"]) or result["message"]["id"].startswith("common.")
        assert result["message"]["id"] in catalogue("en")  # the id exists
        assert result["summary"]["en"]
        assert result["summary"]["zh"]
    for claim in data["claims"]:
        assert claim["verdict"] in {"confirmed", "caveats", "refuted", "partly-measured", "not-judged"}


def test_every_message_id_exists_in_every_language_with_the_same_placeholders() -> None:
    en, zh = catalogue("en"), catalogue("zh")
    assert set(en) == set(zh)
    for key in en:
        assert placeholders(en[key]) == placeholders(zh[key]), key


def test_the_chinese_catalogue_is_chinese() -> None:
    zh = catalogue("zh")
    for key, text in zh.items():
        words = re.sub(r"`[^`]*`|\{[^}]*\}|[A-Za-z_]+\(|[A-Za-z_.]+\.[A-Za-z_]+", "", text)
        if len(re.findall(r"[A-Za-z]{4,}", words)) > 2:
            assert _CJK.search(text), key


def test_markdown_sections_and_claims(reference_report: Report) -> None:
    md = render_markdown(reference_report, "en")
    assert md.startswith("# Evidence-based audit of `head_optimal.py`")
    for heading in ("## Subjects", "## 1. Theory", "## 2. Engineering", "## 3. Summary", "## Reproducibility"):
        assert heading in md
    for ref in ("1.1", "1.2", "1.3", "1.4", "2.4"):
        assert f"### {ref} " in md
    for result in reference_report.results:
        assert f"`headaudit report --only {result.check} --seed 0`" in md
        assert result.summary("en") in md
    for subject in reference_report.subjects:
        assert subject.sha256 in md


def test_claim_verdicts_on_the_references(reference_report: Report) -> None:
    md = render_markdown(reference_report, "en")
    summary = md.split("## 3. Summary")[1].split("## Reproducibility")[0]
    rows = {line.split()[1]: line for line in summary.splitlines() if re.match(r"\| \d\.\d ", line)}
    assert "confirmed" in rows["1.1"]
    assert "confirmed" in rows["1.2"]
    assert "holds with caveats" in rows["1.3"]
    assert "refuted" in rows["1.4"]
    assert "refuted" in rows["2.1"]  # the quoted host raises with HeadOptimal
    assert "refuted" in rows["2.2"]
    assert "confirmed" in rows["2.3"]
    assert "holds with caveats" in rows["2.4"]  # edges.zero-prototypes
    assert "confirmed" in rows["2.5"]


def test_the_english_report_has_no_chinese(reference_report: Report) -> None:
    md = render_markdown(reference_report, "en")
    assert not _CJK.search(md), _CJK.search(md)


def test_the_chinese_report_has_no_english_sentences(reference_report: Report) -> None:
    md = render_markdown(reference_report, "zh")
    for heading in ("## 被测文件", "## 一、理论分析", "## 二、工程分析", "## 三、总结", "## 可复现性"):
        assert heading in md
    for claim in CLAIMS:
        if any(reference_report.check(c) for c in claim.checks):
            assert render(Msg(f"claim.{claim.ref}.says"), "zh") in md
    prose = re.sub(r"```.*?```", "", md, flags=re.S)  # evidence and output blocks are data
    prose = re.sub(r"`[^`]*`", "", prose)
    english = catalogue("en")
    leftovers = [t for t in english.values() if not placeholders(t) and len(t.split()) >= 2 and t in prose]
    assert not leftovers


def test_unjudged_claims_are_named_not_passed(reference_report: Report) -> None:
    from headaudit.claims import judge_claims

    kept = tuple(r for r in reference_report.results if not r.check.startswith("compat."))
    partial = dataclasses.replace(
        reference_report,
        checks=tuple(c for c in reference_report.checks if not c.id.startswith("compat.")),
        results=kept,
        claims=judge_claims(kept),
    )
    md = render_markdown(partial, "en")
    assert "Not judged in this run" in md
    assert "### 2.2 " not in md  # no check of claim 2.2 ran: it is absent, not passing


def test_renderers_do_not_import_torch() -> None:
    code = "import sys, headaudit.render, headaudit.claims; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_markdown_evidence_blocks_are_valid_json(reference_report: Report) -> None:
    md = render_markdown(reference_report, "en")
    blocks = re.findall(r"```json\n(.*?)\n```", md, flags=re.S)
    assert len(blocks) == len(reference_report.checks)
    for block in blocks:
        assert set(json.loads(block)) == {"baseline", "candidate"}


def test_table_cells_survive_pipes_and_line_breaks() -> None:
    assert cell("a | b\nc") == "a \\| b<br>c"


def test_a_multi_line_message_does_not_break_the_summary_table(reference_report: Report) -> None:
    bad = Result(
        "ema.standard",
        "candidate",
        "error",
        Msg("common.subject_raised", {"where": "forward", "detail": "RuntimeError: first | line\nsecond line"}),
        {},
    )
    results = tuple(
        bad if (r.check, r.subject) == ("ema.standard", "candidate") else r for r in reference_report.results
    )
    md = render_markdown(dataclasses.replace(reference_report, results=results), "en")
    summary = md.split("## 3. Summary")[1].split("## Reproducibility")[0]
    row = next(line for line in summary.splitlines() if line.startswith("| 1.3 "))
    assert "first \\| line<br>second line" in row
    assert row.count(" | ") == 3  # still four cells


def test_the_examples_table_says_na_for_checks_that_did_not_run(reference_report: Report) -> None:
    md = render_markdown(reference_report, "en")
    table = md.split("Property searches per check")[1]
    row = next(line for line in table.splitlines() if line.startswith("| `gate.sum-to-one` |"))
    assert row.split("|")[2].strip() == "n/a"  # head.py has no three gate weights: nothing was searched
