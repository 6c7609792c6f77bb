#!/usr/bin/env python3
"""Run the bench once on a CUDA GPU and save the result as JSON.

Usage, from the repository root with the project installed::

    python benchmarks/run_cuda.py            # quick mode (the default of `headaudit bench`)
    python benchmarks/run_cuda.py --full     # the whole grid (many minutes)
    python benchmarks/run_cuda.py --out DIR  # somewhere else than benchmarks/results/

It runs :func:`headaudit.bench.run_bench` on the two reference heads with
``device="cuda"`` (CUDA-event timing, host syncs counted with the sync debug mode) and
writes ``benchmarks/results/cuda-<gpu-name>-<YYYY-MM-DD>.json`` (for example
``cuda-nvidia-h200-2025-01-02.json``); the file holds the device name, CUDA and torch
versions beside the numbers. It prints the path and a short summary.

Without a usable CUDA device it writes nothing, says why on stderr and exits with 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REFERENCE = "head.py"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run_cuda.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="the whole grid instead of the quick mode")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"output directory (default: {RESULTS_DIR})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the inputs and of the heads' parameters")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def summary(result: object) -> list[str]:
    """A few lines a person can read on the terminal: ratios, syncs, op-count exponents."""
    from headaudit.bench.results import BenchResult

    assert isinstance(result, BenchResult)
    env = result.environment
    lines = [
        f"{env.device_name} ({env.device}, CUDA {env.cuda_version}, torch {env.torch_version}), {result.mode} mode"
    ]
    for row in result.times:
        cells = []
        for name in result.subjects:
            stats, r = row.stats.get(name), row.ratios.get(name)
            if stats is None or stats.p10 is None:
                cells.append(f"{name}: -")
                continue
            ratio = "-" if r is None else f"{r:.2f}x"
            cells.append(f"{name}: p10 {stats.p10 * 1e3:.2f} ms ({ratio})")
        lines.append(f"  {row.kind:7} {row.point.label:14} " + "; ".join(cells))
    for name, syncs in result.host_syncs.items():
        lines.append(f"  host syncs per step, {name}: {syncs.count if syncs.count is not None else 'n/a'}")
    for name, scaling in result.scaling.items():
        exponent = "-" if scaling.fit is None else f"{scaling.fit.exponent:.2f}"
        lines.append(
            f"  ops per step vs classes {list(scaling.num_classes)}, {name}: {list(scaling.ops)} (k={exponent})"
        )
    for name, error in result.errors.items():
        lines.append(f"  error, {name}: {error}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, but no usable GPU"
        print(f"run_cuda.py: no CUDA device (torch {torch.__version__}: {build}); nothing written.", file=sys.stderr)
        return 2

    from headaudit.bench import reference_factories, result_filename, run_bench

    def progress(line: str) -> None:
        if not args.quiet:
            print(f"run_cuda.py: {line}", file=sys.stderr, flush=True)

    result = run_bench(
        reference_factories(),
        reference=REFERENCE,
        quick=not args.full,
        device="cuda",
        seed=args.seed,
        progress=progress,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / result_filename(result.environment.device, result.environment.device_name, date.today())
    path.write_text(result.to_json() + "\n", encoding="utf-8")
    print(path)
    for line in summary(result):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
