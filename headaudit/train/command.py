"""``headaudit train`` and the report's ``--train`` section: options, the session, the output.

Kept apart from :mod:`headaudit.cli` so the command's wiring lives with the package.
Quick mode (the default): 5 seeds of :data:`QUICK_STEPS` steps; ``--full``: 10 seeds of
:data:`FULL_STEPS`. ``--seeds`` and ``--steps`` set either. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headaudit.errors import ConfigError

if TYPE_CHECKING:
    from headaudit.cache import ResultCache
    from headaudit.model import Report
    from headaudit.profiles import Profile
    from headaudit.subjects import Subject
    from headaudit.train.data import TrainData
    from headaudit.train.loop import TrainConfig
    from headaudit.train.session import TrainSession

__all__ = [
    "FULL_SEEDS",
    "FULL_STEPS",
    "QUICK_SEEDS",
    "QUICK_STEPS",
    "add_options",
    "cmd_train",
    "reproduce_options",
    "with_training",
]

QUICK_SEEDS = 5
QUICK_STEPS = 300
FULL_SEEDS = 10
FULL_STEPS = 1000


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid ratio: {text!r}") from None
    if not value >= 1 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"imbalance {text} must be a finite ratio >= 1 (1: balanced)")
    return value


def add_options(parser: argparse.ArgumentParser) -> None:
    """The options that set a training session (``train`` and ``report --train``)."""
    parser.add_argument("--seeds", type=_positive, default=None, help=f"seeds to train (default {QUICK_SEEDS})")
    parser.add_argument("--steps", type=_positive, default=None, help=f"training steps per run (default {QUICK_STEPS})")
    parser.add_argument("--full", action="store_true", help=f"{FULL_SEEDS} seeds of {FULL_STEPS} steps (minutes)")
    parser.add_argument("--data", metavar="FILE.npz", help="your features: patches (N,L,D), labels (N,), global (N,D)")
    parser.add_argument(
        "--imbalance", type=_ratio, default=None, metavar="R", help="largest/smallest digit class (default ISIC)"
    )


def config_from(args: argparse.Namespace) -> TrainConfig:
    from headaudit.train.loop import TrainConfig

    seeds = args.seeds or (FULL_SEEDS if args.full else QUICK_SEEDS)
    steps = args.steps or (FULL_STEPS if args.full else QUICK_STEPS)
    return TrainConfig(seeds=seeds, steps=steps, seed=args.seed)


def data_from(args: argparse.Namespace) -> TrainData:
    from headaudit.train.data import digits_data, load_npz

    if args.data:
        if args.imbalance is not None:
            raise ConfigError("--imbalance shapes the bundled digits; your --data keeps its own class counts")
        return load_npz(Path(args.data), args.seed)
    return digits_data(args.seed, args.imbalance)


def _progress() -> Callable[[str], None]:
    return lambda line: print(f"headaudit: {line}", file=sys.stderr, flush=True)


def train_session(
    args: argparse.Namespace, subjects: Mapping[str, Subject], profile: Profile, cache: ResultCache | None = None
) -> TrainSession:
    """The session ``args`` ask for, its tasks over ``--jobs`` workers (default: every usable core)."""
    from headaudit.parallel import usable_cores
    from headaudit.train.session import run_session

    data = data_from(args)
    config = config_from(args)
    workers = getattr(args, "jobs", None) or usable_cores()
    return run_session(subjects, data, config, profile, workers=workers, progress=_progress(), cache=cache)


def _plots(session: TrainSession, folder: Path | None) -> list[str]:
    if folder is None:
        return []
    from headaudit.train.plots import plots_available, write_loss_plot

    if not plots_available():
        print("headaudit: matplotlib is missing (the 'plots' extra); no loss-curve PNG", file=sys.stderr)
        return []
    return [str(write_loss_plot(session, folder))]


def with_training(
    report: Report,
    args: argparse.Namespace,
    subjects: Mapping[str, Subject],
    profile: Profile,
    cache: ResultCache | None = None,
) -> Report:
    """``report`` with the training section and the ``train.*`` results (``report --train``)."""
    session = train_session(args, subjects, profile, cache)
    section = session.section()
    plots = _plots(session, Path(args.plots) if getattr(args, "plots", None) else None)
    if plots:
        section = {**section, "plots": plots}
    environment = dataclasses.replace(report.environment, args=(*report.environment.args, *reproduce_options(args)))
    return dataclasses.replace(
        report,
        environment=environment,
        checks=(*report.checks, *session.check_infos()),
        results=(*report.results, *session.results(list(subjects))),
        extra={**report.extra, "training": section},
    )


def reproduce_options(args: argparse.Namespace) -> list[str]:
    """The options that set this training session, for the report's reproduce command."""
    options = ["--train"]
    if args.full:
        options.append("--full")
    for flag, value in (("--seeds", args.seeds), ("--steps", args.steps), ("--data", args.data)):
        if value is not None:
            options += [flag, str(value)]
    if args.imbalance is not None:
        options += ["--imbalance", f"{args.imbalance:g}"]
    return options


def cmd_train(
    args: argparse.Namespace, subjects: Mapping[str, Subject], profile: Profile, cache: ResultCache | None = None
) -> int:
    """Train, print the section (Markdown, ``--lang``) with seconds per step; ``--json FILE`` too.

    Runs the cache served were not timed now: the timing line says which heads, and
    ``--no-cache`` trains and times every run."""
    from headaudit.messages import Msg, render
    from headaudit.render.training import render_training

    target = None if args.json is None else Path(args.json)
    if target is not None and (target.is_dir() or not target.parent.is_dir()):
        raise ConfigError(f"--json {args.json!r} is not a file in an existing folder; name a file such as train.json")
    session = train_session(args, subjects, profile, cache)
    section = session.section(timings=True, curves=True)
    results = session.results(list(subjects))
    plots = _plots(session, Path(args.plots) if args.plots else None)
    lines = render_training(section, results, args.lang, plots=plots)
    timing = ", ".join(
        render(Msg("train.section.step_time", {"role": role, "wall": e["seconds_per_step"]["mean"] * 1000,
                                               "cpu": e["cpu_seconds_per_step"]["mean"] * 1000}), args.lang)
        for role, e in section["heads"].items()
        if e.get("seconds_per_step")
    )  # fmt: skip
    untimed = ", ".join(role for role, e in section["heads"].items() if e["summary"] and not e.get("seconds_per_step"))
    if timing:
        lines.append(render(Msg("train.section.timing", {"timing": timing}), args.lang))
    if untimed:
        lines.append(render(Msg("train.section.untimed", {"roles": untimed}), args.lang))
    lines.append("")
    sys.stdout.write("\n".join(lines))
    sys.stdout.flush()
    if target is not None:
        payload: dict[str, Any] = {"training": section, "results": [r.to_dict() for r in results]}
        text = json.dumps(payload, ensure_ascii=False, indent=2, sort_keys=True, allow_nan=False) + "\n"
        try:
            target.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write --json {args.json!r}: {exc.strerror or exc}") from None
    return 1 if any(r.verdict == "error" for r in results) else 0
