"""Command line: ``headaudit report`` and ``headaudit list``. It only wires the parts.

Exit codes: 0 when the report was written and no check errored; 1 when some check could
not run (``error`` verdicts; the report is still written); 2 for bad input (missing file,
missing class, raising constructor, bad option or configuration), with one line on
stderr and no traceback unless ``--debug``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from headaudit import __version__
from headaudit.errors import ConfigError, HeadAuditError

if TYPE_CHECKING:
    from headaudit.registry import Check

__all__ = ["main"]

_EPILOG = """\
subjects:
  PATH            a .py file; its head class is HeadOptimal if it defines one, else Head
  PATH:CLASS      a .py file and the head class in it (my/head.py:MyHead)
  MODULE[:CLASS]  an importable module (pkg.heads:Head)
  A file is loaded with its own folder importable (and as part of its package when the
  folder has __init__.py), so sibling and relative imports work.

name maps:
  --map CANONICAL=THEIRS tells the audit what your copy calls a part, e.g.
  --map proto_manager.momentum_update=proto_manager.momentum_update_fixed
  --map 'proto_loss_fn[contrastive_loss]=proto_loss_fn[con_loss]'
  The same pairs may sit in pyproject.toml (nearest one up from the working directory):
  [tool.headaudit.map]
  "proto_manager.momentum_update" = "proto_manager.momentum_update_fixed"

exit codes:
  0  report written, every check ran
  1  report written, some check could not run (verdict `error`)
  2  bad input: missing file or class, a head whose constructor raises, a bad option

environment:
  HYPOTHESIS_PROFILE  ci (default: seeded, the budgets the detection rates were
                      validated at), dev (half the examples), thorough (eight times)
"""


class _Parser(argparse.ArgumentParser):
    """argparse that raises ConfigError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see `{self.prog} --help`)")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"seed {value} is outside 0..2**32-1")
    return value


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"timeout {text} must be more than 0 seconds")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="headaudit",
        description="Evidence-based audit of multi-prototype classification heads.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"headaudit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{report,list}", parser_class=_Parser)

    report = sub.add_parser(
        "report",
        help="run the checks and print the report to stdout",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("--baseline", metavar="SUBJECT", help="the original head (default: bundled head.py)")
    report.add_argument("--candidate", metavar="SUBJECT", help="the revised head (default: bundled head_optimal.py)")
    report.add_argument("--lang", choices=("en", "zh"), default="en")
    report.add_argument("--format", choices=("md", "json"), default="md")
    report.add_argument("--seed", type=_seed, default=0, help="seed for torch and Hypothesis (default 0)")
    report.add_argument("--only", metavar="ID[,ID]", help="run only these check ids (see `headaudit list`)")
    report.add_argument(
        "--map", action="append", default=[], metavar="CANONICAL=THEIRS", help="name a renamed part (repeatable)"
    )
    report.add_argument(
        "--timeout", type=_timeout, default=None, metavar="SECONDS", help="time budget per check and subject (120)"
    )
    report.add_argument("--no-bench", action="store_true", help="skip the performance section")
    report.add_argument("--debug", action="store_true", help="show tracebacks")

    listing = sub.add_parser("list", help="print the check catalogue")
    listing.add_argument("--lang", choices=("en", "zh"), default="en")
    listing.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    return parser


def _select(only: str | None) -> list[Check[Any]]:
    from headaudit.checks import REGISTRY, by_id

    if only is None:
        return list(REGISTRY)
    parts = [p.strip() for p in only.split(",")]
    if not any(parts):
        raise ConfigError("--only is empty; give check ids separated by commas (`headaudit list` shows them)")
    if not all(parts):
        raise ConfigError(f"--only {only!r} has an empty id (a stray comma?); `headaudit list` shows the ids")
    chosen: list[Check[Any]] = []
    for check_id in parts:
        check = by_id(check_id)
        if check is None:
            raise ConfigError(f"unknown check id {check_id!r} in --only; `headaudit list` shows the ids")
        if check not in chosen:
            chosen.append(check)
    return chosen


def _project_maps(start: Path) -> tuple[tuple[str, str], ...]:
    """``[tool.headaudit.map]`` of the nearest ``pyproject.toml`` up from ``start``."""
    from headaudit.names import parse_map

    for folder in (start, *start.parents):
        path = folder / "pyproject.toml"
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not valid TOML ({exc}); fix it or run from another folder") from None
        table = data.get("tool", {}).get("headaudit", {}).get("map", {})
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise ConfigError(f'[tool.headaudit.map] in {path} must map names to names ("a.b" = "a.c")')
        return parse_map((f"{k}={v}" for k, v in table.items()), origin=f"[tool.headaudit.map] in {path}")
    return ()


def _cmd_list(args: argparse.Namespace) -> int:
    from headaudit.checks import REGISTRY
    from headaudit.messages import Msg, render

    for check in REGISTRY:
        print(f"{check.id:24} [{check.catalogue}] {check.severity:6} {render(Msg(check.id + '.title'), args.lang)}")
    return 0


def _keep_hypothesis_files_out_of_cwd() -> None:
    """Hypothesis caches files under ``./.hypothesis``; a report must not litter the user's folder."""
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "headaudit-hypothesis")


def _cmd_report(args: argparse.Namespace) -> int:
    from headaudit.names import NameMap, parse_map
    from headaudit.profiles import active_profile
    from headaudit.render.json import render_json
    from headaudit.render.markdown import render_markdown
    from headaudit.runner import DEFAULT_TIMEOUT, run_audit
    from headaudit.subjects import default_specs, load_subject

    checks = _select(args.only)
    profile = active_profile()
    maps = NameMap((*_project_maps(Path.cwd()), *parse_map(args.map)))
    timeout = args.timeout if args.timeout is not None else DEFAULT_TIMEOUT
    _keep_hypothesis_files_out_of_cwd()
    specs = default_specs()
    reproduce: list[str] = []
    for role in ("baseline", "candidate"):
        given = getattr(args, role)
        if given:
            specs[role] = given
            reproduce += [f"--{role}", given]
    for item in maps.as_args():
        reproduce += ["--map", item]
    if args.timeout is not None:
        reproduce += ["--timeout", f"{args.timeout:g}"]
    subjects = {
        role: load_subject(specs[role], role, names=maps, timeout=timeout) for role in ("baseline", "candidate")
    }
    progress = (lambda msg: print(f"headaudit: {msg}", file=sys.stderr)) if sys.stderr.isatty() else None
    report = run_audit(
        subjects, checks, seed=args.seed, profile=profile, timeout=timeout, args=reproduce, progress=progress
    )
    text = render_json(report) if args.format == "json" else render_markdown(report, args.lang)
    sys.stdout.write(text)
    sys.stdout.flush()
    return 1 if any(r.verdict == "error" for r in report.results) else 0


def _silence_broken_pipe() -> int:
    """The reader went away (``headaudit report | head``): exit quietly, as a shell tool does."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141  # 128 + SIGPIPE, what a shell reports for a killed writer


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``headaudit`` console script and ``python -m headaudit``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = _parser()
        args = parser.parse_args(argv)
        if args.command is None:
            raise ConfigError("no command given; use `headaudit report` or `headaudit list` (see `headaudit --help`)")
        if args.command == "list":
            return _cmd_list(args)
        return _cmd_report(args)
    except BrokenPipeError:
        return _silence_broken_pipe()
    except HeadAuditError as exc:
        if debug:
            raise
        print(f"headaudit: error: {exc}", file=sys.stderr)
        return 2
