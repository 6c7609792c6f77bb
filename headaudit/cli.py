"""Command line: ``headaudit report``, ``check``, ``mutate``, ``bench``, ``cache``, ``list``. It only wires the parts.

Exit codes: 0 when the report was written and no check errored; 1 when some check could
not run (``error`` verdicts; the report is still written), when ``check`` found a
regression (or ``check --update`` changed the file), or when ``mutate`` saw a survivor
or a false alarm; 2 for bad input (missing file,
missing class, raising constructor, bad option or configuration), with one line on
stderr and no traceback unless ``--debug``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from headaudit import __version__
from headaudit.errors import ConfigError, HeadAuditError
from headaudit.train.command import add_options as add_train_options

if TYPE_CHECKING:
    from headaudit.bench.results import BenchResult
    from headaudit.cache import ResultCache
    from headaudit.config import ProjectConfig
    from headaudit.hosts import HostSet
    from headaudit.model import Report
    from headaudit.mutation.catalogue import Mutant
    from headaudit.mutation.score import MutationScore
    from headaudit.names import NameMap
    from headaudit.profiles import Profile
    from headaudit.registry import Check
    from headaudit.subjects import Subject

__all__ = ["CheckPlan", "Prepared", "main", "plan_check", "prepare"]

_EPILOG = """\
subjects:
  PATH            a .py file; its head class is HeadOptimal if it defines one, else Head
  PATH:CLASS      a .py file and the head class in it (my/head.py:MyHead)
  MODULE[:CLASS]  an importable module (pkg.heads:Head)
  A file is loaded with its own folder importable (and as part of its package when the
  folder has __init__.py), so sibling and relative imports work.

host:
  --host PATH[:CLASS]  the code that calls the head (default: bundled models_mae.py as quoted
                  in the original report); CLASS defaults to the class that calls self.head(...).
                  Loaded like a head file. Its constructor is never run; a host whose imports
                  are missing here (timm, your packages) is still scanned statically.
  --wrapper PATH[:CLASS]  the training wrapper (default: bundled timm_imagenet_exp.py:Model);
                  CLASS defaults to the class that calls self.model(...). Loaded the same way
                  and built as CLASS(model); a wrapper whose imports are missing here has its
                  detection and its self.model(...) unpacks judged from the source, the rest n/a.

name maps:
  --map CANONICAL=THEIRS tells the audit what your copy calls a part, e.g.
  --map proto_manager.momentum_update=proto_manager.momentum_update_fixed
  --map 'proto_loss_fn[contrastive_loss]=proto_loss_fn[con_loss]'
  --map forward.labels=targets   (forward's labels parameter under another name)
  The same pairs may sit in pyproject.toml (nearest one up from the working directory):
  [tool.headaudit.map]
  "proto_manager.momentum_update" = "proto_manager.momentum_update_fixed"

exit codes:
  0  report written, every check ran
  1  report written, some check could not run (verdict `error`); `check`: a regression
     (or `--update` changed the file); `mutate`: a surviving mutant or a false alarm
  2  bad input: missing file or class, a head whose constructor raises, a bad option;
     `check`: a seed or profile other than the recording's (without --accept-mismatch)

environment:
  HYPOTHESIS_PROFILE  ci (default: seeded, the budgets the detection rates were
                      validated at), dev (half the examples), thorough (eight times)
  HEADAUDIT_CACHE_DIR the result cache folder (default: .headaudit_cache beside the
                      nearest pyproject.toml); HEADAUDIT_NO_CACHE=1 acts as --no-cache
  HEADAUDIT_JOBS      worker processes when neither --jobs nor [tool.headaudit] says
                      (default: one per core); 1 under pytest-xdist, which spreads already

cache:
  report, check and mutate keep results in .headaudit_cache and reuse one while nothing
  in its key changed (headaudit's sources, torch, seed, profile, maps, timeout, and every
  file of yours the subject, host or wrapper loaded); `headaudit cache clear` removes it.
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


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of worker processes: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--jobs {value} must be 1 (serial) or more")
    return value


_JOBS_HELP = (
    "worker processes running the checks (default: one per usable core, or `jobs` in [tool.headaudit]; "
    "1: serial); the report does not depend on it"
)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="headaudit",
        description="Evidence-based audit of multi-prototype classification heads.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"headaudit {__version__}")
    commands = "{report,check,mutate,bench,train,cache,list}"
    sub = parser.add_subparsers(dest="command", metavar=commands, parser_class=_Parser)

    report = sub.add_parser(
        "report",
        help="run the checks and print the report to stdout",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("--baseline", metavar="SUBJECT", help="the original head (default: bundled head.py)")
    report.add_argument("--candidate", metavar="SUBJECT", help="the revised head (default: bundled head_optimal.py)")
    report.add_argument("--control", metavar="SUBJECT", help=_CONTROL_HELP)
    report.add_argument(
        "--host", metavar="PATH[:CLASS]", help="the host that calls the head (default: bundled models_mae.py)"
    )
    report.add_argument(
        "--wrapper",
        metavar="PATH[:CLASS]",
        help="the training wrapper around the host (default: bundled timm_imagenet_exp.py:Model)",
    )
    report.add_argument("--lang", choices=("en", "zh"), default=None, help="report language (default en)")
    report.add_argument("--format", choices=("md", "json"), default="md")
    report.add_argument("--seed", type=_seed, default=None, help="seed for torch and Hypothesis (default 0)")
    report.add_argument("--profile", choices=_PROFILES, default=None, help=_PROFILE_HELP)
    report.add_argument("--only", metavar="ID[,ID]", help="run only these check ids (see `headaudit list`)")
    report.add_argument("--map", action="append", default=[], metavar="CANONICAL=THEIRS", help=_MAP_HELP)
    report.add_argument(
        "--timeout", type=_timeout, default=None, metavar="SECONDS", help="time budget per check and subject (120)"
    )
    report.add_argument("--jobs", type=_jobs, default=None, metavar="N", help=_JOBS_HELP)
    report.add_argument("--no-bench", action="store_true", help="skip the performance section")
    report.add_argument("--train", action="store_true", help=_TRAIN_HELP)
    add_train_options(report)
    report.add_argument(
        "--mutation",
        action="store_true",
        help="also measure the mutation score of the checks (several minutes; `headaudit mutate` measures it alone)",
    )
    # The score used to be measured by every full report; it is opt-in now, and the old flag stays accepted.
    report.add_argument("--no-mutation", action="store_true", help=argparse.SUPPRESS)
    report.add_argument("--no-cache", action="store_true", help=_NO_CACHE_HELP)
    report.add_argument("--plots", metavar="DIR", help=_PLOTS_HELP)
    report.add_argument(
        "--sarif", metavar="FILE", help="also write the located findings as SARIF 2.1.0 to FILE (code scanning)"
    )
    report.add_argument("--debug", action="store_true", help="show tracebacks")

    bench = sub.add_parser(
        "bench",
        help="run only the performance part and print its section to stdout",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument("--baseline", metavar="SUBJECT", help="the original head (default: bundled head.py)")
    bench.add_argument("--candidate", metavar="SUBJECT", help="the revised head (default: bundled head_optimal.py)")
    bench.add_argument("--control", metavar="SUBJECT", help=_CONTROL_HELP)
    bench.add_argument("--lang", choices=("en", "zh"), default=None, help="section language (default en)")
    bench.add_argument("--seed", type=_seed, default=None, help="seed of the inputs and the heads (default 0)")
    bench.add_argument("--profile", choices=_PROFILES, default=None, help=_PROFILE_HELP)
    bench.add_argument("--map", action="append", default=[], metavar="CANONICAL=THEIRS", help=_MAP_HELP)
    bench.add_argument(
        "--timeout",
        type=_timeout,
        default=None,
        metavar="SECONDS",
        help="time budget per check and subject (120); the one bench run gets it for every check and subject",
    )
    bench.add_argument("--full", action="store_true", help="the whole grid (minutes) instead of the quick one")
    bench.add_argument(
        "--compiled",
        action="store_true",
        help="also time the training step under torch.compile at batch 1 for heads without graph breaks "
        "(compiling takes from tens of seconds to minutes per head)",
    )
    bench.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to time (default cpu)")
    bench.add_argument("--json", metavar="FILE", help="also write the run as bench JSON (headaudit.bench.results)")
    bench.add_argument("--plots", metavar="DIR", help=_PLOTS_HELP)
    bench.add_argument("--debug", action="store_true", help="show tracebacks")

    _add_check_parser(sub)

    mutate = sub.add_parser(
        "mutate",
        help="measure the mutation score: which check detects each single-change mutant of head_fixed.py",
    )
    mutate.add_argument("--seed", type=_seed, default=None, help="seed for torch and Hypothesis (default 0)")
    mutate.add_argument("--profile", choices=_PROFILES, default=None, help=_PROFILE_HELP)
    mutate.add_argument("--timeout", type=_timeout, default=None, metavar="SECONDS", help="time budget per check")
    mutate.add_argument("--jobs", type=_jobs, default=None, metavar="N", help=_JOBS_HELP)
    mutate.add_argument("--json", metavar="FILE", help="also write the score as JSON to FILE")
    mutate.add_argument("--only", metavar="ID[,ID]", help="only these mutant and rewrite ids (default: all)")
    mutate.add_argument("--no-cache", action="store_true", help="do not keep the score in the cache")
    mutate.add_argument("--debug", action="store_true", help="show tracebacks")

    cache = sub.add_parser("cache", help="show or remove the result cache (.headaudit_cache)")
    cache.add_argument("action", choices=("info", "clear"), help="info: folder, entries, size; clear: remove it")
    cache.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)

    listing = sub.add_parser("list", help="print the check catalogue")
    _add_train_parser(sub)
    listing.add_argument("--lang", choices=("en", "zh"), default=None)
    listing.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    return parser


_TRAIN_HELP = (
    "also train the three heads on a seeded long-tailed task and add the section 'What the defects cost in "
    "training' (minutes; or train = true in [tool.headaudit]); needs scikit-learn (the 'train' extra) unless --data"
)


def _add_train_parser(sub: Any) -> None:
    train = sub.add_parser(
        "train",
        help="train baseline, candidate and control the same way and print what the defects cost",
        description="Train the heads on a seeded long-tailed task (default: scikit-learn's digits, classes 0-6, "
        "ISIC 2018 ratios) and print their measures with 95 % intervals over seeds and the train.* verdicts.",
    )
    train.add_argument("--baseline", metavar="SUBJECT", help="the original head (default: bundled head.py)")
    train.add_argument("--candidate", metavar="SUBJECT", help="the revised head (default: bundled head_optimal.py)")
    train.add_argument("--control", metavar="SUBJECT", help="a third head trained alike (default: head_fixed.py)")
    train.add_argument("--lang", choices=("en", "zh"), default=None, help="table language (default en)")
    train.add_argument("--seed", type=_seed, default=None, help="first seed; also seeds the data split (default 0)")
    train.add_argument("--map", action="append", default=[], metavar="CANONICAL=THEIRS", help=_MAP_HELP)
    train.add_argument("--json", metavar="FILE", help="also write the section, the verdicts and the timings as JSON")
    train.add_argument("--plots", metavar="DIR", help="write the loss curves as DIR/train_loss.png (the 'plots' extra)")
    train.add_argument("--jobs", type=_jobs, default=None, metavar="N", help=_JOBS_HELP)
    train.add_argument(
        "--no-cache",
        action="store_true",
        help="train every run now, and time it: neither read nor write .headaudit_cache (HEADAUDIT_NO_CACHE=1 too)",
    )
    train.add_argument("--debug", action="store_true", help="show tracebacks")
    add_train_options(train)
    train.set_defaults(timeout=None, profile=None)


def _add_check_parser(sub: Any) -> None:
    check = sub.add_parser(
        "check",
        help="run the audit again and exit 1 when anything got worse than a recorded JSON report",
        description=(
            "Compare this run with a report recorded by `headaudit report --format json > audit.json`: "
            "a worse verdict, a finding whose fingerprint is not recorded, a recorded finding whose headline "
            "figure moved 10x or more the worse way, or a changed interface of forward.contract is a "
            "regression, printed on one line each (exit 1). The subjects, host, maps, seed, profile and "
            "timeout are the recorded run's unless given here or in [tool.headaudit]; another seed or "
            "profile than the recording's exits 2 unless --accept-mismatch says why."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("--expect", metavar="FILE", help="the recorded JSON report (or `expect` in [tool.headaudit])")
    check.add_argument("--update", action="store_true", help="write this run into FILE instead of comparing")
    check.add_argument("--baseline", metavar="SUBJECT", help="the original head (default: as recorded)")
    check.add_argument("--candidate", metavar="SUBJECT", help="the revised head (default: as recorded)")
    check.add_argument("--host", metavar="PATH[:CLASS]", help="the host that calls the head (default: as recorded)")
    check.add_argument("--wrapper", metavar="PATH[:CLASS]", help="the training wrapper (default: as recorded)")
    check.add_argument("--seed", type=_seed, default=None, help="seed (default: the recorded run's)")
    check.add_argument("--profile", choices=_PROFILES, default=None, help=_PROFILE_HELP)
    check.add_argument("--map", action="append", default=[], metavar="CANONICAL=THEIRS", help=_MAP_HELP)
    check.add_argument("--timeout", type=_timeout, default=None, metavar="SECONDS", help="time budget per check")
    check.add_argument(
        "--only",
        metavar="ID[,ID]",
        help="compare (with --update: record) only these check ids (default: as recorded)",
    )
    check.add_argument(
        "--bench", action="store_true", help="also compare the timed performance checks (noisy; off by default)"
    )
    check.add_argument("--jobs", type=_jobs, default=None, metavar="N", help=_JOBS_HELP)
    check.add_argument("--accept-mismatch", metavar="WHY", help=_ACCEPT_HELP)
    check.add_argument("--no-cache", action="store_true", help=_NO_CACHE_HELP)
    check.add_argument(
        "--train", action="store_true", help="also train and compare the train.* checks (default: as recorded)"
    )
    add_train_options(check)
    check.add_argument("--debug", action="store_true", help="show tracebacks")


_ACCEPT_HELP = (
    "compare even though this run's seed or Hypothesis profile differs from the recording's (it exits 2 "
    "otherwise); WHY is printed with the comparison, e.g. --accept-mismatch 'nightly: seed sweep'"
)

_NO_CACHE_HELP = (
    "measure every result now: neither read nor write .headaudit_cache (HEADAUDIT_NO_CACHE=1 does the same)"
)

_PROFILES = ("ci", "dev", "thorough")
_MAP_HELP = "name a renamed part or forward parameter (repeatable), e.g. forward.labels=targets"
_PROFILE_HELP = "Hypothesis profile (default: HYPOTHESIS_PROFILE, then `profile` in [tool.headaudit], then ci)"

_CONTROL_HELP = (
    "a third head measured in the performance section only, the known-good design to read the bars against "
    "(default: bundled head_fixed.py; 'none' leaves it out)"
)

_PLOTS_HELP = (
    "write PNG charts of the performance section into DIR and link them from the Markdown (relative to the "
    "working directory); needs matplotlib (the 'plots' extra), without it the tables alone"
)


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
        if check is None and check_id.startswith("train."):
            raise ConfigError(
                f"{check_id!r} is measured on a training session: run `headaudit train` or add --train to the report"
            )
        if check is None:
            raise ConfigError(f"unknown check id {check_id!r} in --only; `headaudit list` shows the ids")
        if check not in chosen:
            chosen.append(check)
    return chosen


def _configure(args: argparse.Namespace) -> ProjectConfig:
    """Fill what no flag gave from ``[tool.headaudit]`` (flags win), then the built-in defaults."""
    from headaudit.config import find_config

    config = find_config(Path.cwd())
    for key in ("baseline", "candidate", "control", "host", "wrapper", "lang", "seed", "timeout", "expect", "jobs"):
        if getattr(args, key, False) is None and config.get(key) is not None:
            setattr(args, key, config.get(key))
    if getattr(args, "jobs", False) is None:
        from headaudit.parallel import usable_cores

        given = os.environ.get("HEADAUDIT_JOBS")
        try:
            args.jobs = usable_cores() if not given else _jobs(given)
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"HEADAUDIT_JOBS={given!r}: {exc}; give a whole number of 1 or more") from None
    if getattr(args, "jobs", 1) > 1:
        from headaudit.parallel import can_fork

        if not can_fork():
            print("headaudit: note: no `fork` start method here; the checks run serially (--jobs 1)", file=sys.stderr)
            args.jobs = 1
    if getattr(args, "lang", False) is None:
        args.lang = "en"
    if hasattr(args, "profile"):
        args.profile = args.profile or os.environ.get("HYPOTHESIS_PROFILE") or config.get("profile")
    return config


def _cmd_list(args: argparse.Namespace) -> int:
    from headaudit.checks import REGISTRY
    from headaudit.messages import Msg, render
    from headaudit.train.checks import TRAIN_CHECKS

    checks: list[Any] = [*REGISTRY, *TRAIN_CHECKS]  # train.*: run by `headaudit train` or `report --train`
    for check in checks:
        print(f"{check.id:24} [{check.catalogue}] {check.severity:6} {render(Msg(check.id + '.title'), args.lang)}")
    return 0


def _cmd_cache(args: argparse.Namespace) -> int:
    """``headaudit cache info`` (folder, entries, size) and ``headaudit cache clear``."""
    from headaudit.cache import cache_root, clear, entries

    root = cache_root()
    count, size = entries(root)
    if args.action == "info":
        state = f"{count} entries, {size / 1024:.1f} KiB" if root.is_dir() else "not created yet"
        print(f"{root}: {state}")
        return 0
    if clear(root):
        print(f"removed {root} ({count} entries, {size / 1024:.1f} KiB)")
    else:
        print(f"no cache at {root}; nothing to remove")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from headaudit.profiles import active_profile
    from headaudit.train.command import cmd_train

    subjects = _load_subjects(args)[0]
    cache = _cache(args)
    try:
        return cmd_train(args, subjects, active_profile(args.profile), cache)
    finally:
        _cache_line(cache)


def _keep_hypothesis_files_out_of_cwd() -> None:
    """Hypothesis caches files under ``./.hypothesis``; a report must not litter the user's folder."""
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "headaudit-hypothesis")


def _sarif_target(given: str | None) -> Path | None:
    """The ``--sarif`` file, checked before the audit runs (its folder must exist)."""
    if given is None:
        return None
    path = Path(given)
    if path.is_dir() or not path.parent.is_dir():
        raise ConfigError(f"--sarif {given!r} is not a file in an existing folder; name a file such as audit.sarif")
    return path


def _load_subjects(args: argparse.Namespace) -> tuple[dict[str, Subject], list[str], list[str], float]:
    """``--baseline``/``--candidate`` (default: the bundled references) loaded with the name
    maps and time budget, for ``report`` and ``bench`` alike.

    Returns the subjects by role, the role options and the map/timeout options (for the
    reproduce commands), and the time budget per check and subject.
    """
    from headaudit.names import NameMap, parse_map
    from headaudit.runner import DEFAULT_TIMEOUT
    from headaudit.subjects import default_specs, load_subject

    maps = NameMap((*args.config.maps, *parse_map(args.map)))
    timeout = args.timeout if args.timeout is not None else DEFAULT_TIMEOUT
    _keep_hypothesis_files_out_of_cwd()
    specs = default_specs()
    chosen: list[str] = []
    for role in ("baseline", "candidate"):
        given = getattr(args, role)
        if given:
            specs[role] = given
            chosen += [f"--{role}", given]
    options: list[str] = []
    for item in maps.as_args():
        options += ["--map", item]
    if args.timeout is not None:
        options += ["--timeout", f"{args.timeout:g}"]
    subjects = {
        role: load_subject(specs[role], role, names=maps, timeout=timeout) for role in ("baseline", "candidate")
    }
    given = getattr(args, "control", None)
    if given:
        chosen += ["--control", given]
    control = _load_control(given, subjects, maps, timeout)
    if control is not None:
        subjects["control"] = control
    return subjects, chosen, options, timeout


def _load_control(given: str | None, subjects: dict[str, Subject], maps: NameMap, timeout: float) -> Subject | None:
    """The ``--control`` subject: the bundled ``head_fixed.py`` unless named, or None for
    ``none`` and for a control that is already one of the two subjects (same bytes, same class).

    The name maps are for the user's heads; the bundled control uses the canonical names."""
    from headaudit.names import NameMap
    from headaudit.subjects import bundled_reference, load_subject

    if given is not None and given.lower() == "none":
        return None
    spec = given or str(bundled_reference("head_fixed.py"))
    control = load_subject(spec, "control", names=maps if given else NameMap(), timeout=timeout)
    for subject in subjects.values():
        if (subject.sha256, subject.head_cls.__name__) == (control.sha256, control.head_cls.__name__):
            return None
    return control


def _plots_dir(given: str | None) -> Path | None:
    """The ``--plots`` folder, checked before anything runs (it may not exist yet)."""
    if given is None:
        return None
    path = Path(given)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--plots {given!r} is a file; name a folder for the PNG charts (it is created if needed)")
    return path


def _with_performance(
    report: Report, subjects: dict[str, Subject], plots: Path | None, measured: BenchResult | None = None
) -> Report:
    """``report`` with ``extra["performance"]``: charts written into ``plots`` (from the one
    run ``measured``, or assembled from the report's perf evidence), or the note that
    matplotlib is missing, and the recorded results found now."""
    from headaudit.bench import plots as charts
    from headaudit.perfrun import chart_result, section_extra

    written: list[Path] = []
    unavailable = False
    if plots is not None:
        if charts.plots_available():
            data = measured if measured is not None else chart_result(report, subjects)
            written = charts.write_plots(data, plots) if data is not None else []
        else:
            unavailable = True
    extra = section_extra(written, charts_unavailable=unavailable, one_run=measured is not None)
    return dataclasses.replace(report, extra={**report.extra, "performance": extra})


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Subjects, hosts and budgets loaded for a run (report, check, the pytest plugin)."""

    subjects: dict[str, Subject]
    hosts: HostSet
    profile: Profile
    timeout: float
    reproduce: list[str]
    seed: int


def prepare(args: argparse.Namespace, checks: Sequence[Check[Any]]) -> Prepared:
    """Load the subjects and hosts ``args`` name (the control only when a performance check runs)."""
    from headaudit.hosts import load_hosts
    from headaudit.profiles import active_profile

    profile = active_profile(args.profile)
    subjects, chosen, options, timeout = _load_subjects(args)
    hosted = [*(["--host", args.host] if args.host else []), *(["--wrapper", args.wrapper] if args.wrapper else [])]
    hosts = load_hosts(args.host, wrapper=args.wrapper, timeout=timeout)
    if not any(c.group == "performance" for c in checks):
        subjects.pop("control", None)  # measured in the performance section only
    return Prepared(subjects, hosts, profile, timeout, [*chosen, *hosted, *options], args.seed)


def _cache(args: argparse.Namespace) -> ResultCache | None:
    """The result cache of this run, or None with ``--no-cache`` or ``HEADAUDIT_NO_CACHE=1``."""
    from headaudit.cache import NO_CACHE_ENV, ResultCache, cache_root, usable

    if getattr(args, "no_cache", False) or os.environ.get(NO_CACHE_ENV, "") not in ("", "0"):
        return None
    root = cache_root()
    usable(root)
    return ResultCache(root)


def _cache_line(cache: ResultCache | None) -> None:
    """The one stderr line saying how many results the cache served (the report never does)."""
    line = None if cache is None else cache.summary()
    if line is not None:
        print(f"headaudit: {line}", file=sys.stderr)


def _audit(
    args: argparse.Namespace, checks: list[Check[Any]], plots: Path | None = None, cache: ResultCache | None = None
) -> Report:
    """Run ``checks`` on what ``args`` name (report and check), serving what ``cache`` holds."""
    from headaudit.runner import run_audit

    ready = prepare(args, checks)
    progress = (lambda msg: print(f"headaudit: {msg}", file=sys.stderr)) if sys.stderr.isatty() else None
    report = run_audit(
        ready.subjects,
        checks,
        seed=ready.seed,
        profile=ready.profile,
        timeout=ready.timeout,
        args=ready.reproduce,
        progress=progress,
        hosts=ready.hosts,
        only={"control": "performance"},
        jobs=getattr(args, "jobs", 1),
        cache=cache,
    )
    if any(c.group == "performance" for c in checks):
        report = _with_performance(report, ready.subjects, plots)
    if args.train or args.config.get("train"):
        from headaudit.train.command import with_training

        report = with_training(report, args, _load_subjects(args)[0], ready.profile, cache)
    _cache_line(cache)
    return report


def _cmd_report(args: argparse.Namespace) -> int:
    from headaudit.render.json import render_json
    from headaudit.render.markdown import render_markdown

    checks = _select(args.only)
    if args.no_bench:  # timings are never byte-identical; everything else is, per seed
        checks = [c for c in checks if c.group != "performance"]
        if not checks:
            raise ConfigError("--no-bench leaves none of the checks named by --only; drop one of the two")
    sarif = _sarif_target(args.sarif)
    plots = _plots_dir(args.plots)
    cache = _cache(args)
    report = _audit(args, checks, plots, cache)
    score: dict[str, Any] | None = None
    if args.mutation and not args.no_mutation:
        score = _keep_mutation(args, _mutation(args), cache).to_dict()
    elif cache is not None:  # measured earlier on this same code, or the section says how to measure it
        score = _cached_mutation(args, cache)
    if score is not None:
        report = dataclasses.replace(report, extra={**report.extra, "mutation": score})
    text = render_json(report) if args.format == "json" else render_markdown(report, args.lang)
    sys.stdout.write(text)
    sys.stdout.flush()
    if sarif is not None:
        from headaudit.render.sarif import render_sarif

        try:
            sarif.write_text(render_sarif(report, args.lang), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write --sarif {str(sarif)!r}: {exc.strerror or exc}") from None
    return 1 if any(r.verdict == "error" for r in report.results) else 0


def _mutation_key(args: argparse.Namespace, selection: tuple[list[Mutant], list[Mutant]]) -> str:
    from headaudit.cache import mutation_key
    from headaudit.profiles import active_profile
    from headaudit.runner import DEFAULT_TIMEOUT

    timeout = args.timeout if args.timeout is not None else DEFAULT_TIMEOUT
    ids = [m.id for m in (*selection[0], *selection[1])]
    return mutation_key(args.seed, active_profile(args.profile), timeout, ids)


def _cached_mutation(args: argparse.Namespace, cache: ResultCache) -> dict[str, Any] | None:
    """The whole catalogue's score measured on this code, seed, profile and timeout, if the
    cache holds one (a score measured on other code has another key and is not shown)."""
    return cache.mutation(_mutation_key(args, _mutants(None)))


def _mutation(args: argparse.Namespace) -> MutationScore:
    """The mutation score of every check on the bundled ``head_fixed.py``, measured now."""
    from headaudit.checks import REGISTRY
    from headaudit.mutation.score import measure_score
    from headaudit.profiles import active_profile
    from headaudit.runner import DEFAULT_TIMEOUT

    progress = (lambda msg: print(f"headaudit: {msg}", file=sys.stderr)) if sys.stderr.isatty() else None
    timeout = args.timeout if args.timeout is not None else DEFAULT_TIMEOUT
    _keep_hypothesis_files_out_of_cwd()
    profile = active_profile(args.profile)
    mutants, rewrites = _mutants(getattr(args, "only", None) if args.command == "mutate" else None)
    return measure_score(
        REGISTRY, seed=args.seed, profile=profile, timeout=timeout, mutants=mutants, equivalents=rewrites,
        progress=progress, jobs=getattr(args, "jobs", 1),
    )  # fmt: skip


def _keep_mutation(args: argparse.Namespace, score: MutationScore, cache: ResultCache | None) -> MutationScore:
    """Keep a score just measured in ``cache``, with the headaudit version and sources it was
    measured with (what a default report shows beside it)."""
    if cache is not None:
        from headaudit.cache import source_hash

        measured_with = {"version": __version__, "sources": source_hash()}
        selection = _mutants(getattr(args, "only", None) if args.command == "mutate" else None)
        cache.store_mutation(_mutation_key(args, selection), {**score.to_dict(), "measured_with": measured_with})
    return score


def _mutants(only: str | None) -> tuple[list[Mutant], list[Mutant]]:
    """The catalogue, or the entries ``--only`` names (an unknown id is exit 2)."""
    from headaudit.mutation.catalogue import EQUIVALENTS, MUTANTS

    if only is None:
        return list(MUTANTS), list(EQUIVALENTS)
    wanted = [p.strip() for p in only.split(",") if p.strip()]
    known = {m.id for m in (*MUTANTS, *EQUIVALENTS)}
    unknown = [w for w in wanted if w not in known]
    if unknown or not wanted:
        raise ConfigError(f"--only names no mutant or rewrite {unknown or only!r}; `headaudit mutate` lists them")
    return [m for m in MUTANTS if m.id in wanted], [m for m in EQUIVALENTS if m.id in wanted]


def _cmd_mutate(args: argparse.Namespace) -> int:
    """Print what happened to each mutant, and the rewrites' false alarms; exit 1 unless every
    mutant is detected (a crash is not a detection) and no rewrite changed anything."""
    import json

    score = _keep_mutation(args, _mutation(args), _cache(args))
    for m in score.mutants:
        if m.outcome == "detected":
            outcome = f"detected by {m.detected_by} ({m.before} -> {m.after})"
        else:
            outcome = m.outcome.upper()
        lines = [f"{m.id:34} {outcome}: {m.description}"]
        lines += [f"{'':34} {m.detail}"] if m.detail else []
        lines += [f"{'':34} crashed {c.check}: {c.detail}" for c in m.crashes]
        print("\n".join(lines))
    for r in score.equivalents:
        verdict = "false alarm in " + ", ".join(r.changed) if r.changed else "no verdict or finding changed"
        print(f"{r.id:34} rewrite of {r.file}, {verdict}: {r.description}")
    total = len(score.mutants)
    rate = f"{100 * score.detected / total:.0f} %" if total else "-"
    print(f"mutation score {score.detected}/{total} detected ({rate}) on {score.file}; {score.crashed} crashed, "
          f"{score.survived} survived; {score.false_alarms} false alarms in {len(score.equivalents)} rewrites "
          f"(seed {score.seed})")  # fmt: skip
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(score.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write --json {args.json!r}: {exc.strerror or exc}") from None
    return 0 if score.detected == total and not score.false_alarms else 1


def _read_expect(path: Path) -> tuple[Report, dict[str, Any]]:
    """The recorded report of ``headaudit check``, or one line saying what is wrong with it."""
    import json

    from headaudit.model import Report

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"--expect {str(path)!r} does not exist; record it with `headaudit check --update --expect {path}`"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--expect {str(path)!r} is not a JSON report ({exc}); record it with --update") from None
    try:
        return Report.from_dict(raw), raw
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        problem = f"is not a headaudit JSON report ({exc})"
        raise ConfigError(f"--expect {str(path)!r} {problem}; record it with --update") from None


def _recorded(args: argparse.Namespace, expected: Report) -> None:
    """What the recorded run was given, for what neither a flag nor the config gives now."""
    try:
        was = _parser().parse_args(["report", *expected.environment.args])
    except HeadAuditError as exc:
        raise ConfigError(f"the expect file records arguments this version cannot read ({exc}); use --update") from None
    for key in ("baseline", "candidate", "control", "host", "wrapper", "timeout"):
        if getattr(args, key, None) is None:
            setattr(args, key, getattr(was, key))
    if not args.map:
        args.map = was.map
    if args.seed is None:
        args.seed = expected.environment.seed
    if args.profile is None and expected.environment.profile:
        args.profile = expected.environment.profile
    if was.train:  # the recording trained: the comparison trains too, as the recording did
        from headaudit.train.command import reproduce_options

        args.train = True
        for key in ("seeds", "steps", "data", "imbalance"):
            if getattr(args, key, None) is None:
                setattr(args, key, getattr(was, key))
        args.full = args.full or was.full
        args.recorded_training = reproduce_options(was)


@dataclasses.dataclass(frozen=True)
class CheckPlan:
    """What a guarded run compares with: the expect file (None: nothing recorded yet) and
    the checks to run (the recorded ones; the performance group only with ``--bench``)."""

    args: argparse.Namespace
    path: Path | None
    checks: list[Check[Any]]
    expected: Report | None
    raw: dict[str, Any] | None
    #: How this run differs from the recording (seed, profile), accepted by --accept-mismatch.
    mismatch: str | None = None


def plan_check(argv: Sequence[str]) -> CheckPlan:
    """``headaudit check ARGV``'s plan with ``[tool.headaudit]`` applied, without running it
    (the pytest plugin's entry; an expect file is optional there)."""
    args = _parser().parse_args(["check", *argv])
    args.config = _configure(args)
    return _plan(args)


def _plan(args: argparse.Namespace) -> CheckPlan:
    from headaudit.checks import REGISTRY

    path = None if args.expect is None else Path(args.expect)
    expected, raw = (None, None) if path is None or (args.update and not path.exists()) else _read_expect(path)
    if expected is not None:
        _recorded(args, expected)
        recorded_ids = {c.id for c in expected.checks}
        checks = [c for c in REGISTRY if c.id in recorded_ids]
    else:
        checks = list(REGISTRY)
    if getattr(args, "only", None) is not None:
        chosen = _select(args.only)
        checks = [c for c in checks if c in chosen] if expected is not None and not args.update else chosen
    args.seed = 0 if args.seed is None else args.seed
    args.control = "none" if not args.bench else args.control
    if not args.bench:  # timings are never byte-identical; exact counts (perf.op-count) are compared always
        checks = [c for c in checks if not c.timing]
    if not checks:
        raise ConfigError("no check left to run: the timed checks need --bench, and --only must name recorded ids")
    if getattr(args, "accept_mismatch", None) is not None and not args.accept_mismatch.strip():
        raise ConfigError("--accept-mismatch needs the reason the runs may differ, e.g. 'nightly: seed sweep'")
    mismatch = None if expected is None or args.update else _mismatch(args, expected, path)
    return CheckPlan(args, path, checks, expected, raw, mismatch)


def _mismatch(args: argparse.Namespace, expected: Report, path: Path | None) -> str | None:
    """How this run's seed and profile differ from the recording's (None: they do not).

    Other inputs give other counterexamples and other figures, so a comparison across them
    is refused in one line (exit 2) unless ``--accept-mismatch WHY`` says why it is wanted.
    """
    env = expected.environment
    differs = []
    if args.seed != env.seed:
        differs.append(f"seed {args.seed} (recorded {env.seed})")
    if args.profile != (env.profile or None):
        differs.append(f"profile {args.profile!r} (recorded {env.profile!r})")
    recorded_training = getattr(args, "recorded_training", None)
    if recorded_training is not None:
        from headaudit.train.command import reproduce_options

        now = reproduce_options(args)
        if now != recorded_training:
            differs.append(f"training {' '.join(now)!r} (recorded {' '.join(recorded_training)!r})")
    if not differs:
        return None
    what = " and ".join(differs)
    if getattr(args, "accept_mismatch", None) is None:
        raise ConfigError(
            f"this run differs from {path}: {what}; use the recorded seed and profile, record again with "
            "--update, or compare anyway with --accept-mismatch WHY"
        )
    return f"{what}, accepted: {args.accept_mismatch}"


def _fixed_findings(expected: Report, current: Report) -> list[str]:
    """Recorded findings this run no longer has (an update drops them from the file)."""
    from headaudit.guard import compare

    flipped = compare(current, expected)  # what the recorded run has that this one lacks
    return [f"gone: {r.line()}" for r in flipped.regressions if r.kind == "new finding"]


def _cmd_check(args: argparse.Namespace) -> int:
    """Compare this run with ``--expect`` (exit 1 on a regression), or record it (``--update``)."""
    from headaudit.guard import compare
    from headaudit.render.json import render_json

    if args.expect is None:
        raise ConfigError('headaudit check needs --expect FILE (or `expect = "audit.json"` in [tool.headaudit])')
    plan = _plan(args)
    path = Path(args.expect)
    report = _audit(args, plan.checks, cache=_cache(args))
    if args.update:
        # as pytest-regressions' --force-regen: the file is rewritten, and a rewrite that
        # changed what `check` compares (or created the file) exits 1, so it is noticed
        changes: list[str] = ["created"] if plan.expected is None else []
        if plan.expected is not None:
            outcome = compare(plan.expected, report, plan.raw)
            changes = [r.line() for r in outcome.regressions] + [n for n in outcome.notes if "better" in n]
            changes += _fixed_findings(plan.expected, report)
        try:
            path.write_text(render_json(report), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write --expect {str(path)!r}: {exc.strerror or exc}") from None
        for change in changes:
            print(f"headaudit: updated: {change}", file=sys.stderr)
        count = f"{len(report.results)} results of {len(plan.checks)} checks"
        state = f"{len(changes)} changes, exit 1 as --force-regen does" if changes else "nothing changed"
        print(f"headaudit: recorded {count} in {path} ({state})", file=sys.stderr)
        return 1 if changes else 0
    assert plan.expected is not None
    outcome = compare(plan.expected, report, plan.raw)
    if plan.mismatch is not None:
        print(f"headaudit: note: compared across runs: {plan.mismatch}", file=sys.stderr)
    for note in outcome.notes:
        print(f"headaudit: note: {note}", file=sys.stderr)
    for regression in outcome.regressions:
        print(f"regression: {regression.line()}")
    if outcome.regressions:
        print(f"headaudit: {len(outcome.regressions)} regressions against {path}", file=sys.stderr)
        return 1
    print(f"headaudit: no regressions against {path} ({outcome.compared} results compared)", file=sys.stderr)
    return 0


def _bench_progress() -> Callable[[str], None] | None:
    """Progress lines for a terminal, written to a copy of stderr (the run itself is captured)."""
    if not sys.stderr.isatty():
        return None
    stream = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
    return lambda line: print(f"headaudit: {line}", file=stream, flush=True)


def _cmd_bench(args: argparse.Namespace) -> int:
    """Only the Performance part: one bench run of head.py and both subjects, the section
    rendered from the perf checks' results on it, and the run as bench JSON."""
    from headaudit.bench.grid import BenchConfig
    from headaudit.bench.run import resolve_device
    from headaudit.perfrun import perf_checks, run_shared, shared_checks
    from headaudit.profiles import active_profile
    from headaudit.render.performance import render_bench_markdown
    from headaudit.runner import run_audit
    from headaudit.sandbox import CheckTimeout, captured, time_limit

    target = None if args.json is None else Path(args.json)
    if target is not None and (target.is_dir() or not target.parent.is_dir()):
        raise ConfigError(f"--json {args.json!r} is not a file in an existing folder; name a file such as bench.json")
    plots = _plots_dir(args.plots)
    resolve_device(args.device)
    profile = active_profile(args.profile)
    subjects, chosen, options, timeout = _load_subjects(args)
    config = BenchConfig.full() if args.full else BenchConfig.quick()
    config = config.with_compiled() if args.compiled else config
    checks = perf_checks()
    budget = timeout * len(checks) * len(subjects)
    progress = _bench_progress()
    try:
        with captured() as output, time_limit(budget):
            shared = run_shared(
                subjects, seed=args.seed, profile=profile, config=config, device=args.device, progress=progress
            )
    except CheckTimeout:
        print(f"headaudit: error: the bench exceeded {budget:g} s; raise --timeout if the heads are just slow",
              file=sys.stderr)  # fmt: skip
        return 1
    if output.combined():
        print(f"headaudit: the subjects wrote while being measured:\n{output.combined()}", file=sys.stderr)
    reproduce = [*chosen, *options]
    report = run_audit(
        subjects,
        shared_checks(shared, checks),
        seed=args.seed,
        profile=profile,
        timeout=timeout,
        args=reproduce,
        only={"control": "performance"},
    )
    report = _with_performance(report, subjects, plots, shared.result)
    sys.stdout.write(render_bench_markdown(report, args.lang))
    sys.stdout.flush()
    if target is not None:
        try:
            target.write_text(shared.result.to_json() + "\n", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write --json {args.json!r}: {exc.strerror or exc}") from None
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
            raise ConfigError(
                "no command given; use `headaudit report`, `check`, `mutate`, `bench`, `train`, `cache` or `list` "
                "(see `headaudit --help`)"
            )
        args.config = _configure(args)
        if args.command == "list":
            return _cmd_list(args)
        if args.command == "cache":
            return _cmd_cache(args)
        if args.command == "check":
            return _cmd_check(args)
        args.seed = 0 if args.seed is None else args.seed
        if args.command == "mutate":
            return _cmd_mutate(args)
        if args.command == "bench":
            return _cmd_bench(args)
        if args.command == "train":
            return _cmd_train(args)
        return _cmd_report(args)
    except BrokenPipeError:
        return _silence_broken_pipe()
    except HeadAuditError as exc:
        if debug:
            raise
        print(f"headaudit: error: {exc}", file=sys.stderr)
        return 2
