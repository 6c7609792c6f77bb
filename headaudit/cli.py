"""Command line: ``headaudit report`` and ``headaudit list``. It only wires the parts.

Exit codes: 0 when the report was written and no check errored; 1 when some check
could not run (``error`` verdicts; the report is still written); 2 for bad input
(missing file, missing class, raising constructor, bad option), with one line on
stderr and no traceback unless ``--debug``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from headaudit import __version__
from headaudit.errors import ConfigError, HeadAuditError

if TYPE_CHECKING:
    from headaudit.registry import Check

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse that raises ConfigError instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{message} (see `headaudit {self.prog.split()[-1]} --help`)")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"seed {value} is outside 0..2**32-1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="headaudit", description="Evidence-based audit of multi-prototype heads.")
    parser.add_argument("--version", action="version", version=f"headaudit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    report = sub.add_parser("report", help="run the checks and print the report to stdout")
    report.add_argument("--baseline", metavar="PATH[:CLASS]", help="the original head (default: bundled head.py)")
    report.add_argument(
        "--candidate", metavar="PATH[:CLASS]", help="the revised head (default: bundled head_optimal.py)"
    )
    report.add_argument("--lang", choices=("en", "zh"), default="en")
    report.add_argument("--format", choices=("md", "json"), default="md")
    report.add_argument("--seed", type=_seed, default=0, help="seed for torch and Hypothesis (default 0)")
    report.add_argument("--only", metavar="ID[,ID]", help="run only these check ids (see `headaudit list`)")
    report.add_argument("--no-bench", action="store_true", help="skip the performance section")
    report.add_argument("--debug", action="store_true", help="show tracebacks")

    listing = sub.add_parser("list", help="print the check catalogue")
    listing.add_argument("--lang", choices=("en", "zh"), default="en")
    listing.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    return parser


def _select(only: str | None) -> list[Check]:
    from headaudit.checks import REGISTRY, by_id

    if not only:
        return list(REGISTRY)
    chosen = []
    for raw in only.split(","):
        check_id = raw.strip()
        check = by_id(check_id)
        if check is None:
            raise ConfigError(f"unknown check id {check_id!r} in --only; `headaudit list` shows the ids")
        if check not in chosen:
            chosen.append(check)
    return chosen


def _cmd_list(args: argparse.Namespace) -> int:
    from headaudit.checks import REGISTRY

    for check in REGISTRY:
        print(f"{check.id:22} [{check.catalogue}] {check.severity:6} {check.title.get(args.lang)}")
    return 0


def _keep_hypothesis_files_out_of_cwd() -> None:
    """Hypothesis caches files under ``./.hypothesis``; a report must not litter the user's folder."""
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "headaudit-hypothesis")


def _cmd_report(args: argparse.Namespace) -> int:
    from headaudit.profiles import active_profile
    from headaudit.render.json import render_json
    from headaudit.render.markdown import render_markdown
    from headaudit.runner import run_audit
    from headaudit.subjects import default_specs, load_subject

    checks = _select(args.only)
    profile = active_profile()
    _keep_hypothesis_files_out_of_cwd()
    specs = default_specs()
    subject_args = ""
    for role in ("baseline", "candidate"):
        given = getattr(args, role)
        if given:
            specs[role] = given
            subject_args += f" --{role} {shlex.quote(given)}"
    subjects = [load_subject(specs[role], role) for role in ("baseline", "candidate")]
    progress = (lambda msg: print(f"headaudit: {msg}", file=sys.stderr)) if sys.stderr.isatty() else None
    report = run_audit(
        subjects,
        checks,
        seed=args.seed,
        profile=profile,
        subject_args=subject_args,
        progress=progress,
    )
    text = render_json(report) if args.format == "json" else render_markdown(report, args.lang)
    sys.stdout.write(text)
    return 1 if any(r.verdict == "error" for r in report.results) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``headaudit`` console script and ``python -m headaudit``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = _parser().parse_args(argv)
        if args.command == "list":
            return _cmd_list(args)
        return _cmd_report(args)
    except HeadAuditError as exc:
        if debug:
            raise
        print(f"headaudit: error: {exc}", file=sys.stderr)
        return 2
