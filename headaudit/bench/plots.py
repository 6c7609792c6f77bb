"""PNG charts of a :class:`BenchResult` (matplotlib, an optional extra).

Two charts, each written only when the result holds the data for it:

- ``ops-per-step.png``: operators per training step against ``num_classes`` (log-log),
  one line per subject, the fitted growth exponent in the legend;
- ``step-time-vs-batch.png``: median time of the training step against batch size,
  error bars from the first to the third quartile, one line per subject, at the
  (``num_classes``, ``emb_dim``) with the most batch sizes timed.

Without matplotlib, :func:`write_plots` writes nothing and returns ``[]``: the report
shows the tables alone. The backend is Agg (no display needed) and PNG metadata is
stripped of the software version, so the same result gives the same bytes.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections import Counter
from pathlib import Path
from typing import Any

from headaudit.bench.results import BenchResult

__all__ = ["PLOT_FILES", "plots_available", "write_plots"]

PLOT_FILES = ("ops-per-step.png", "step-time-vs-batch.png")


def plots_available() -> bool:
    """True when matplotlib can be imported (install the ``plots`` extra)."""
    return importlib.util.find_spec("matplotlib") is not None


def _pyplot() -> Any:
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg", force=True)
    return importlib.import_module("matplotlib.pyplot")


def write_plots(result: BenchResult, directory: str | Path) -> list[Path]:
    """Write the charts into ``directory`` (created if needed); return the paths written.

    Returns ``[]`` without matplotlib, and skips a chart whose data is missing (no
    op-count series, fewer than two batch sizes timed).
    """
    if not plots_available():
        return []
    plt = _pyplot()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, draw in ((PLOT_FILES[0], _ops_chart), (PLOT_FILES[1], _batch_chart)):
        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
        try:
            if not draw(result, ax):
                continue
            fig.tight_layout()
            path = out / name
            fig.savefig(path, format="png", metadata={"Software": None})
            written.append(path)
        finally:
            plt.close(fig)
    return written


def _ops_chart(result: BenchResult, ax: Any) -> bool:
    drawn = False
    ticks: set[int] = set()
    for name in result.subjects:
        series = result.scaling.get(name)
        if series is None or len(series.num_classes) < 2:
            continue
        label = name if series.fit is None else f"{name} (exponent {series.fit.exponent:.2f})"
        ax.plot(series.num_classes, series.ops, marker="o", label=label)
        ticks.update(series.num_classes)
        drawn = True
    if not drawn:
        return False
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sorted(ticks), [str(t) for t in sorted(ticks)])
    ax.tick_params(axis="x", which="minor", bottom=False, labelbottom=False)
    ax.set_xlabel("num_classes")
    ax.set_ylabel("operators per training step")
    ax.set_title("Operators per training step")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return True


def _batch_chart(result: BenchResult, ax: Any) -> bool:
    rows = [row for row in result.times if row.kind == "train"]
    sizes = Counter((row.point.num_classes, row.point.emb_dim) for row in rows)
    if not sizes:
        return False
    (classes, emb_dim), n_batches = max(sizes.items(), key=lambda item: (item[1], -item[0][0], -item[0][1]))
    if n_batches < 2:
        return False
    chosen = sorted(
        (r for r in rows if (r.point.num_classes, r.point.emb_dim) == (classes, emb_dim)),
        key=lambda r: r.point.batch,
    )
    for name in result.subjects:
        batches: list[int] = []
        median: list[float] = []
        below: list[float] = []
        above: list[float] = []
        for row in chosen:
            st = row.stats.get(name)
            if st is None or st.median is None or st.q25 is None or st.q75 is None:
                continue
            batches.append(row.point.batch)
            median.append(st.median * 1e3)
            below.append(max(st.median - st.q25, 0.0) * 1e3)
            above.append(max(st.q75 - st.median, 0.0) * 1e3)
        if batches:
            ax.errorbar(batches, median, yerr=[below, above], marker="o", capsize=3, label=name)
    ax.set_xlabel("batch size")
    ax.set_ylabel("training step, ms (median; bars: quartiles)")
    ax.set_title(f"Training step time, num_classes={classes}, emb_dim={emb_dim}, {result.environment.device}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return True
