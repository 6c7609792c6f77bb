"""The result cache: reused results are the ones a run would measure, and a changed input misses.

Every test names its own cache folder (``HEADAUDIT_CACHE_DIR``) and lifts the suite-wide
``HEADAUDIT_NO_CACHE`` (tests/conftest.py), so no result crosses from one test to another.
The counts come from the one line the CLI writes on stderr (``cache: N of M results
reused ...``), the reports from stdout.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from headaudit import cli
from headaudit.cache import ResultCache, cache_root
from headaudit.checks import by_id
from headaudit.profiles import active_profile
from headaudit.runner import run_audit
from headaudit.subjects import bundled_reference, load_subject

SUBJECTS = Path(__file__).parent / "subjects"
#: Cheap checks: two with a property search, the candidate printing in all three.
ONLY = "gate.convex,shapes.batch-independence,ema.standard"
PRINTING = str(SUBJECTS / "printing_head.py")


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("HEADAUDIT_CACHE_DIR", str(folder))
    monkeypatch.delenv("HEADAUDIT_NO_CACHE", raising=False)
    return folder


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _counts(err: str) -> tuple[int, int]:
    """``(reused, total)`` from the stderr line."""
    found = re.search(r"cache: (\d+) of (\d+) results reused", err)
    assert found is not None, err
    return int(found.group(1)), int(found.group(2))


def _head_folder(tmp_path: Path) -> Path:
    """A candidate that imports a sibling module (``blocks.py``), in a folder of its own."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "blocks.py").write_text(
        "from headaudit.reference.head_optimal import HeadOptimal as Base\n\nSCALE = 1.0\n", encoding="utf-8"
    )
    (folder / "head.py").write_text(
        "from blocks import Base\n\n\nclass HeadOptimal(Base):\n    pass\n", encoding="utf-8"
    )
    return folder


def test_a_cached_rerun_and_an_uncached_run_are_byte_identical(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In fresh processes, as a user runs it: cold, then warm (every result reused) from
    what the first process left on disk. The --no-cache run only has to measure everything
    anew, so it runs in this process (one torch import less), compared byte for byte."""
    env = {k: v for k, v in os.environ.items() if k != "HEADAUDIT_NO_CACHE"}
    env["HEADAUDIT_CACHE_DIR"] = str(tmp_path / "cache")
    args = ["report", "--no-bench", "--only", ONLY, "--candidate", PRINTING]
    runs = [
        subprocess.run([sys.executable, "-m", "headaudit", *args], capture_output=True, text=True, env=env,
                       check=False, timeout=300)
        for _ in range(2)
    ]  # fmt: skip
    for run in runs:
        assert run.returncode == 0, run.stderr
    cold, warm = runs
    code, uncached, uncached_err = _run(capsys, *args, "--no-cache")
    assert code == 0, uncached_err
    assert _counts(cold.stderr) == (0, 6)
    assert _counts(warm.stderr) == (6, 6)
    assert uncached_err == ""  # nothing read, nothing said
    assert warm.stdout == cold.stdout == uncached
    assert "printing_head: forward" in warm.stdout  # the captured output came back with its result
    assert "(budget" in warm.stdout  # and the search statistics
    assert "`.headaudit_cache/`" in warm.stdout  # the reproducibility section says how results are reused


def test_json_reports_are_identical_and_swapped_roles_reuse_every_result(
    cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Results are role-blind: stored without the role, restored in the slot that asks."""
    head = str(bundled_reference("head.py"))
    code, first, err = _run(capsys, "report", "--no-bench", "--only", ONLY, "--format", "json", "--candidate", PRINTING)
    assert code == 0
    assert _counts(err) == (0, 6)
    code, again, err = _run(capsys, "report", "--no-bench", "--only", ONLY, "--format", "json", "--candidate", PRINTING)
    assert _counts(err) == (6, 6)
    assert again == first
    code, swapped, err = _run(
        capsys, "report", "--no-bench", "--only", ONLY, "--format", "json", "--baseline", PRINTING, "--candidate", head
    )
    assert _counts(err) == (6, 6)
    uncached = cli.main(
        ["report", "--no-bench", "--only", ONLY, "--format", "json", "--baseline", PRINTING, "--candidate", head,
         "--no-cache"]
    )  # fmt: skip
    assert uncached == 0
    assert capsys.readouterr().out == swapped
    roles = {(r["check"], r["subject"]) for r in json.loads(swapped)["results"]}
    assert ("gate.convex", "baseline") in roles
    assert ("gate.convex", "candidate") in roles


def test_one_file_in_two_slots_is_measured_once_per_check(cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same file as baseline and candidate: each result is measured in one slot and served
    to the other within the run, as the next run would be served; the report is the one
    ``--no-cache`` gives (which measures both slots). An ``error`` is measured in each slot."""
    args = ("report", "--no-bench", "--only", ONLY, "--format", "json", "--baseline", PRINTING, "--candidate", PRINTING)
    code, cached, err = _run(capsys, *args)
    assert code == 0
    assert _counts(err) == (3, 6)
    measured = re.search(r"measured now: ([^(]*) \(", err)
    assert measured is not None, err
    assert set(measured.group(1).split(", ")) == {f"{c} on baseline" for c in ONLY.split(",")}
    assert cli.main([*args, "--no-cache"]) == 0
    assert capsys.readouterr().out == cached
    raising = load_subject(str(SUBJECTS / "forward_raises.py"))
    cache = ResultCache(cache_root())
    check = by_id("gate.convex")
    assert check is not None
    report = run_audit(
        {"baseline": raising, "candidate": raising}, [check], seed=0, profile=active_profile(), cache=cache
    )
    assert cache.measured == [("gate.convex", "baseline"), ("gate.convex", "candidate")]
    assert {r.verdict for r in report.results} == {"error"}


def test_editing_the_candidate_reruns_only_its_pairs(
    cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``headaudit check`` after an edit of the candidate alone: the baseline's results are reused."""
    folder = _head_folder(tmp_path)
    expect = tmp_path / "audit.json"
    args = ("--only", ONLY, "--candidate", str(folder / "head.py"), "--expect", str(expect))
    code, _, err = _run(capsys, "check", "--update", *args)
    assert code == 1  # created
    assert _counts(err) == (0, 6)
    with (folder / "head.py").open("a", encoding="utf-8") as out:
        out.write("# an edit that changes no behaviour\n")
    code, _, err = _run(capsys, "check", *args)
    assert code == 0, err
    assert _counts(err) == (3, 6)
    measured = re.search(r"measured now: ([^(]*) \(", err)
    assert measured is not None, err
    assert set(measured.group(1).split(", ")) == {f"{c} on candidate" for c in ONLY.split(",")}


def test_editing_a_sibling_module_the_candidate_imports_invalidates_its_results(
    cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _head_folder(tmp_path)
    subject = load_subject(str(folder / "head.py"))
    assert str((folder / "blocks.py").resolve()) in dict(subject.files)  # the loader recorded it
    args = ("report", "--no-bench", "--only", ONLY, "--candidate", str(folder / "head.py"))
    _, before, err = _run(capsys, *args)
    assert _counts(err) == (0, 6)
    _, _, err = _run(capsys, *args)
    assert _counts(err) == (6, 6)
    # the sibling now gives the head a gate whose weights do not sum to 1: a stale result would pass
    (folder / "blocks.py").write_text(
        (SUBJECTS / "gate_unnormalised.py").read_text(encoding="utf-8").replace("class HeadOptimal", "class Base"),
        encoding="utf-8",
    )
    _, after, err = _run(capsys, *args)
    assert _counts(err) == (3, 6)
    assert "measured now: gate.convex on candidate" in err
    assert after != before


def test_another_seed_timeout_map_or_profile_misses(cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("report", "--no-bench", "--only", "ema.standard")
    _, _, err = _run(capsys, *args)
    assert _counts(err) == (0, 2)
    for extra in (("--seed", "1"), ("--timeout", "90"), ("--map", "forward.labels=targets"), ("--profile", "dev")):
        _, _, err = _run(capsys, *args, *extra)
        assert _counts(err) == (0, 2), extra
    _, _, err = _run(capsys, *args)
    assert _counts(err) == (2, 2)


def test_a_timed_check_and_an_error_are_always_measured(cache_dir: Path) -> None:
    """``Check.timing`` never comes from the cache (perf.step-time is one); an error is never kept."""
    timed = dataclasses.replace(by_id("ema.standard"), timing=True)  # type: ignore[type-var]
    subjects = {
        "baseline": load_subject(str(bundled_reference("head.py"))),
        "candidate": load_subject(str(SUBJECTS / "forward_raises.py")),
    }
    checks = [timed, by_id("gate.convex")]
    step_time = by_id("perf.step-time")
    assert step_time is not None
    assert step_time.timing
    reports = []
    for _ in range(2):
        cache = ResultCache(cache_root())
        reports.append(run_audit(subjects, checks, seed=0, profile=active_profile(), cache=cache))  # type: ignore[arg-type]
    assert cache.reused == [("gate.convex", "baseline")]
    assert cache.measured == [("gate.convex", "candidate")]  # the timed pairs are not even asked for
    assert reports[1].result("gate.convex", "candidate").verdict == "error"  # type: ignore[union-attr]
    assert reports[0] == reports[1]


def test_a_corrupt_entry_is_a_miss_and_is_written_again(cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("report", "--no-bench", "--only", "ema.standard")
    _, first, _ = _run(capsys, *args)
    entries = sorted((cache_dir / "results").rglob("*.json"))
    assert len(entries) == 2
    entries[0].write_text('{"key": "truncated', encoding="utf-8")
    entries[1].write_text(json.dumps({"key": entries[1].stem, "value": {"verdict": "pass"}}), encoding="utf-8")
    code, again, err = _run(capsys, *args)
    assert code == 0
    assert _counts(err) == (0, 2)
    assert again == first
    _, _, err = _run(capsys, *args)
    assert _counts(err) == (2, 2)


def test_the_folder_is_ignored_by_git_and_cache_clear_removes_it(
    cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(capsys, "report", "--no-bench", "--only", "ema.standard")
    assert (cache_dir / ".gitignore").read_text(encoding="utf-8").splitlines()[-1] == "*"
    assert (
        (cache_dir / "CACHEDIR.TAG")
        .read_text(encoding="utf-8")
        .startswith("Signature: 8a477f597d28d172789f06886806bc55")
    )
    code, out, _ = _run(capsys, "cache", "info")
    assert code == 0
    assert out.startswith(f"{cache_dir}: 2 entries")
    code, out, _ = _run(capsys, "cache", "clear")
    assert code == 0
    assert out.startswith(f"removed {cache_dir} (2 entries")
    assert not cache_dir.exists()
    code, out, _ = _run(capsys, "cache", "clear")
    assert (code, out) == (0, f"no cache at {cache_dir}; nothing to remove\n")


def test_a_folder_that_is_not_a_cache_is_neither_used_nor_cleared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HEADAUDIT_CACHE_DIR", str(tmp_path))
    (tmp_path / "mine.txt").write_text("keep me", encoding="utf-8")
    code, _, err = _run(capsys, "cache", "clear")
    assert code == 2
    assert "is not a headaudit cache" in err
    assert (tmp_path / "mine.txt").is_file()
    monkeypatch.delenv("HEADAUDIT_NO_CACHE", raising=False)
    code, out, err = _run(capsys, "report", "--no-bench", "--only", "ema.standard")
    assert code == 2
    assert out == ""
    assert "exists and is not a headaudit cache" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]  # no .gitignore of `*` over someone's files


def test_no_cache_reads_and_writes_nothing(cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "report", "--no-bench", "--only", "ema.standard", "--no-cache")
    assert code == 0
    assert err == ""
    assert not cache_dir.exists()


def test_the_folder_sits_beside_the_nearest_pyproject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEADAUDIT_CACHE_DIR", raising=False)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n", encoding="utf-8")
    (tmp_path / "src" / "deep").mkdir(parents=True)
    assert cache_root(tmp_path / "src" / "deep") == tmp_path / ".headaudit_cache"
    bare = tmp_path / "src"
    monkeypatch.setenv("HEADAUDIT_CACHE_DIR", str(bare / "elsewhere"))
    assert cache_root(tmp_path) == bare / "elsewhere"


def test_the_default_report_shows_a_cached_mutation_score_and_the_command_otherwise(
    cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``mutate`` keeps its score; the default report shows the whole catalogue's score
    measured on this code, and the command that measures it while none is cached."""
    args = ("report", "--no-bench", "--only", "static.data-writes")  # any check: the section is the report's
    _, out, _ = _run(capsys, *args)
    assert "Not measured in this run" in out
    code, _, _ = _run(capsys, "mutate", "--only", "gate-sigmoid")
    assert code == 0
    (entry,) = (cache_dir / "mutation").rglob("*.json")
    measured = json.loads(entry.read_text(encoding="utf-8"))["value"]
    assert measured["measured_with"]["version"] == cli.__version__
    _, out, _ = _run(capsys, *args)
    assert "Not measured in this run" in out  # one mutant's score is not the catalogue's
    # the score of the whole catalogue on this code, as `headaudit mutate` would keep it
    whole = ResultCache(cache_dir)
    namespace = cli._parser().parse_args(["report"])
    namespace.seed, namespace.profile = 0, None
    whole.store_mutation(cli._mutation_key(namespace, cli._mutants(None)), measured)
    _, out, _ = _run(capsys, *args)
    sources = measured["measured_with"]["sources"][:16]
    assert "1 of 1 single-change mutants of `headaudit:reference/head_fixed.py`" in out
    assert f"with headaudit {cli.__version__}, sources sha256 `{sources}…`" in out
    assert "| `gate-sigmoid` |" in out
    _, zh, _ = _run(capsys, *args, "--lang", "zh")
    assert f"headaudit {cli.__version__}（源码 sha256 `{sources}…`）" in zh
    _, out, _ = _run(capsys, *args, "--no-cache")
    assert "Not measured in this run" in out
    _, out, _ = _run(capsys, *args, "--seed", "1")
    assert "Not measured in this run" in out  # measured with another seed
