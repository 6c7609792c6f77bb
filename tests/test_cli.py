"""The command line: bad input is one line and exit 2; runs are byte-identical per seed."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from headaudit.cli import main

ROOT = Path(__file__).resolve().parents[1]
SUBJECTS = Path(__file__).parent / "subjects"


def headaudit(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "headaudit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=False,
        timeout=300,
    )


def in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], cwd: Path, *args: str
) -> tuple[int, str, str]:
    """``headaudit ARGS`` run in this process from ``cwd``: (exit code, stdout, stderr).

    For the tests that are about what a command does, not about the process: it saves
    each run the interpreter start and torch import of a subprocess. A subject file edited
    between two runs is loaded again from its path (a loaded subject leaves nothing in
    ``sys.modules`` and writes no bytecode); a run that still saw the old text would fail
    the test, not hide a regression."""
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_serial_and_two_worker_reports_are_byte_identical(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Markdown and JSON, byte for byte, serial and in two worker processes, at a seed other
    than the default (the report says which): checks of every kind of measurement (a
    Hypothesis search, a static scan, the trainer, a gradient probe). Every check's result
    in two workers against a serial run: ``swapped_report`` (tests/conftest.py) is measured
    by ``report --jobs 2`` in another interpreter, and the role-swap test compares it with
    the serial ``reference_report``."""
    only = ("--only", "trainer.detect,gate.convex,static.data-writes,ema.standard,contrastive.pairs")
    for form in ("md", "json"):
        args = ("report", *only, "--no-bench", "--seed", "3", "--format", form)
        code, serial, err = in_process(monkeypatch, capsys, ROOT, *args, "--jobs", "1")
        assert code == 0, err
        assert in_process(monkeypatch, capsys, ROOT, *args, "--jobs", "2")[1] == serial
        assert ("seed: 3" in serial) if form == "md" else ('"seed": 3' in serial)


def test_json_and_chinese_outputs() -> None:
    out = headaudit("report", "--only", "ema.standard,gate.convex", "--format", "json")
    assert out.returncode == 0, out.stderr
    assert '"schema_version": 2' in out.stdout
    zh = headaudit("report", "--only", "ema.standard", "--lang", "zh")
    assert "## 一、理论分析" in zh.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["report", "--candidate", "does/not/exist.py"], "does not exist"),
        (["report", "--candidate", str(SUBJECTS / "no_head.py")], "defines neither HeadOptimal nor Head"),
        (["report", "--baseline", f"{ROOT / 'reference' / 'head.py'}:NoSuchHead"], "has no class 'NoSuchHead'"),
        (["report", "--baseline", f"{ROOT / 'reference' / 'head.py'}:NoSuchHead"], "it defines: BalancedPrototypeLoss"),
        (["report", "--candidate", str(SUBJECTS / "broken_ctor.py")], "emb_dim must be a multiple of 64"),
        (["report", "--candidate", str(SUBJECTS)], "is a directory"),
        (["report", "--candidate", "no_such_module_anywhere"], "neither a file nor an importable module"),
        (["report", "--only", "gate.nope"], "unknown check id 'gate.nope'"),
        (["report", "--only", ""], "--only is empty"),
        (["report", "--only", "gate.convex,"], "has an empty id"),
        (["report", "--only", ",,"], "--only is empty"),
        (["report", "--lang", "fr"], "invalid choice"),
        (["report", "--seed", "x"], "invalid int value"),
        (["report", "--seed", "-1"], "outside 0..2**32-1"),
        (["report", "--timeout", "0"], "must be more than 0 seconds"),
        (["report", "--jobs", "0"], "must be 1 (serial) or more"),
        (["mutate", "--jobs", "two"], "invalid number of worker processes"),
        (["report", "--map", "nonsense"], "is not CANONICAL=THEIRS"),
        (["report", "--map", "a.b=c.d", "--map", "a.b=e.f"], "maps 'a.b' twice"),
        (
            ["report", "--candidate", f"{ROOT / 'reference' / 'head.py'}:BalancedPrototypeLoss"],
            "is not a head of this family",
        ),
        (["frobnicate"], "invalid choice"),
        ([], "no command given"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], needle: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A subject that is loaded (``--candidate``/``--baseline``) is loaded in a subprocess,
    where a warning or a traceback from importing it would reach stderr; the rest is refused
    while the arguments are read, before anything is imported, so it runs in this process
    (an exception escaping ``main`` fails the test as a traceback would)."""
    if "--candidate" in args or "--baseline" in args:
        out = headaudit(*args)
        code, stdout, stderr = out.returncode, out.stdout, out.stderr
    else:
        code, stdout, stderr = in_process(monkeypatch, capsys, ROOT, *args)
    assert code == 2
    assert stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert needle in lines[0]
    assert lines[0].count("--help") <= 1  # the usage hint is given once
    assert "headaudit headaudit" not in lines[0]


@pytest.mark.parametrize("value", ["0", "two"])
def test_a_bad_headaudit_jobs_is_one_line_and_exit_2(value: str) -> None:
    out = headaudit("report", "--only", "gate.sum-to-one", "--no-bench", env={**os.environ, "HEADAUDIT_JOBS": value})
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1
    assert "Traceback" not in out.stderr
    assert f"HEADAUDIT_JOBS={value!r}" in out.stderr


def test_usage_hints_name_the_right_command() -> None:
    assert "(see `headaudit --help`)" in headaudit("frobnicate").stderr
    assert "(see `headaudit --help`)" in headaudit().stderr
    assert "(see `headaudit report --help`)" in headaudit("report", "--lang", "fr").stderr


def test_help_documents_subjects_exit_codes_and_profiles() -> None:
    for args in (["--help"], ["report", "--help"]):
        text = headaudit(*args).stdout
        for needle in ("PATH:CLASS", "MODULE[:CLASS]", "exit codes", "HYPOTHESIS_PROFILE", "--map"):
            assert needle in text, (args, needle)


def test_a_closed_pipe_is_not_a_traceback() -> None:
    cmd = f"{shlex.quote(sys.executable)} -m headaudit report --only ema.standard | head -c 10"
    for command in (cmd, f"{shlex.quote(sys.executable)} -m headaudit list | head -n 1"):
        out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=ROOT, check=False)
        assert "Traceback" not in out.stderr, out.stderr
        assert "BrokenPipe" not in out.stderr, out.stderr


def test_the_reproduce_command_repeats_every_option_that_changes_results() -> None:
    candidate = str(SUBJECTS / "renamed_ema.py")
    out = headaudit(
        "report",
        "--only",
        "ema.standard",
        "--candidate",
        candidate,
        "--map",
        "proto_manager.momentum_update=proto_manager.momentum_update_fixed",
        "--timeout",
        "30",
        "--seed",
        "4",
    )
    assert out.returncode == 0, out.stderr
    command = next(line for line in out.stdout.splitlines() if line.startswith("- Command:"))
    for part in ("--seed 4", f"--candidate {candidate}", "--map proto_manager.momentum_update=", "--timeout 30"):
        assert part in command, part
    assert "--only ema.standard --seed 4" in out.stdout  # the per-check command keeps --only


def test_a_check_error_gives_exit_1_and_still_a_report() -> None:
    out = headaudit("report", "--only", "gate.convex", "--candidate", str(SUBJECTS / "forward_raises.py"))
    assert out.returncode == 1
    assert "forward is broken on purpose" in out.stdout


def test_list_prints_the_catalogue() -> None:
    from headaudit.checks import REGISTRY
    from headaudit.train.checks import TRAIN_CHECKS

    out = headaudit("list")
    assert out.returncode == 0
    # the train.* checks, measured on a training session (headaudit train, report --train), come last
    assert [line.split()[0] for line in out.stdout.splitlines()] == [c.id for c in (*REGISTRY, *TRAIN_CHECKS)]


def test_console_script_is_installed() -> None:
    exe = shutil.which("headaudit", path=str(Path(sys.executable).parent))
    assert exe is not None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    assert out.stdout.startswith("headaudit ")


def test_non_editable_install_finds_bundled_references(tmp_path: Path) -> None:
    """A wheel carries the references; run from elsewhere it audits its own copies."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("headaudit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"headaudit/reference/head.py", "headaudit/reference/head_optimal.py"} <= set(names)
    packages = {str(p.relative_to(ROOT)) for p in (ROOT / "headaudit").rglob("__init__.py")}
    assert packages <= set(names), f"packages missing from the wheel: {sorted(packages - set(names))}"
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = headaudit("report", "--only", "ema.standard", "--format", "json", cwd=elsewhere, env=env)
    assert out.returncode == 0, out.stderr
    assert '"path": "headaudit:reference/head.py"' in out.stdout


def test_subjects_can_be_importable_modules() -> None:
    out = headaudit(
        "report", "--only", "gate.sum-to-one", "--candidate", "headaudit.reference.head_optimal:HeadOptimal"
    )
    assert out.returncode == 0, out.stderr
    assert "--candidate headaudit.reference.head_optimal:HeadOptimal" in out.stdout  # in the reproduce command
    assert "| candidate | `HeadOptimal` |" in out.stdout
    assert "`headaudit:reference/head_optimal.py`" in out.stdout


def test_report_leaves_nothing_in_the_working_directory(tmp_path: Path) -> None:
    out = headaudit("report", "--only", "contrastive.pairs", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert list(tmp_path.iterdir()) == []


def test_unknown_hypothesis_profile_is_a_config_error() -> None:
    out = headaudit("report", "--only", "ema.standard", env={**os.environ, "HYPOTHESIS_PROFILE": "fast"})
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1
    assert "Hypothesis profile 'fast' is unknown" in out.stderr
