"""Loss curves of a training session as a PNG (the ``plots`` extra, matplotlib).

One panel per head, one line per seed: the training total per step. Written with the Agg
backend and fixed metadata, so the same session gives the same file.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from headaudit.train.session import TrainSession

__all__ = ["plots_available", "write_loss_plot"]

FILE = "train_loss.png"


def plots_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def write_loss_plot(session: TrainSession, folder: Path) -> Path:
    """Write ``folder/train_loss.png`` (the folder is created) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    roles = [h.role for h in session.heads]
    fig, axes = plt.subplots(1, len(roles), figsize=(4 * len(roles), 3), sharey=True, squeeze=False)
    for ax, role in zip(axes[0], roles, strict=True):
        for run in session.of(role):
            if run.status == "ok":
                ax.plot(range(1, len(run.losses) + 1), run.losses, linewidth=0.8, label=f"seed {run.seed}")
        ax.set_title(role)
        ax.set_xlabel("step")
    axes[0][0].set_ylabel("training loss")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    path = folder / FILE
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path
