"""Bench results recorded by earlier runs, read at run time so a report can cite them.

``benchmarks/run_cuda.py`` (and ``headaudit bench --json``) write a
:class:`~headaudit.bench.results.BenchResult` per run; saved under
``benchmarks/results/`` as :func:`~headaudit.bench.results.result_filename` names them
(``cuda-nvidia-h200-2025-01-02.json``), they are recorded results. The report's
Performance section cites what that folder holds when it runs: the GPU, CUDA and torch
versions come from the file's own environment record and the date from its name, so
nothing about a GPU is ever written by hand. The folder is looked for beside the
package (a source checkout or an editable install); an installed wheel has none, and
the report then says that no recorded result exists with this installation.

Nothing here imports torch.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headaudit.bench.results import BenchResult

__all__ = ["RESULTS_DIR", "Recorded", "read_recorded", "recorded_summaries"]

#: ``benchmarks/results/`` of the source tree this package was loaded from.
RESULTS_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "results"

_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})\.json$")


@dataclass(frozen=True)
class Recorded:
    """One file of the results folder: its result, or why it could not be read."""

    file: str
    date: str | None  # YYYY-MM-DD from the file name, as result_filename writes it
    result: BenchResult | None
    problem: str | None = None


def read_recorded(directory: str | Path | None = None) -> tuple[Recorded, ...]:
    """Every ``*.json`` of ``directory`` (default :data:`RESULTS_DIR`), sorted by name.

    A missing folder gives ``()``; a file that is not a bench result of this schema is
    kept with its ``problem`` (the report names it rather than hiding it).
    """
    folder = Path(directory) if directory is not None else RESULTS_DIR
    if not folder.is_dir():
        return ()
    found = []
    for path in sorted(folder.glob("*.json")):
        match = _DATE.search(path.name)
        date = match.group(1) if match else None
        try:
            result = BenchResult.from_json(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            found.append(Recorded(path.name, date, None, f"{type(exc).__name__}: {first}"))
            continue
        found.append(Recorded(path.name, date, result))
    return tuple(found)


def _summary(entry: Recorded) -> dict[str, Any]:
    out: dict[str, Any] = {"file": entry.file, "date": entry.date, "problem": entry.problem}
    result = entry.result
    if result is None:
        return out
    env = result.environment
    out.update(
        device=env.device,
        device_name=env.device_name,
        cuda_version=env.cuda_version,
        torch_version=env.torch_version,
        mode=result.mode,
        reference=result.reference,
        subjects=list(result.subjects),
        rows=[
            {
                "kind": row.kind,
                "point": row.point.label,
                "median_s": {name: s.median for name, s in row.stats.items()},
                "ratio": dict(row.ratios),
            }
            for row in result.times
        ],
        host_syncs={name: syncs.count for name, syncs in result.host_syncs.items()},
        exponent={name: s.fit.exponent if s.fit else None for name, s in result.scaling.items()},
    )
    return out


def recorded_summaries(directory: str | Path | None = None) -> list[dict[str, Any]]:
    """JSON-safe summaries of :func:`read_recorded` for ``Report.extra`` (medians, p10
    ratios, host syncs and op-count exponents per subject; the file, date and device)."""
    return json.loads(json.dumps([_summary(e) for e in read_recorded(directory)], allow_nan=False))
