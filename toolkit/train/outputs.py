"""What a run writes besides checkpoints: results.csv, lr.csv and curves.png."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from toolkit.io import write_text_atomic
from toolkit.plots import _pyplot, save_figure


RESULTS_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s"]


def write_results_csv(path: Path, history: list[dict[str, float]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=RESULTS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{row[k]:.6g}" if isinstance(row[k], float) else row[k]) for k in RESULTS_COLUMNS})
    write_text_atomic(path, buf.getvalue())


def write_lr_csv(path: Path, rows: list[dict[str, float]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["step", "epoch", "lr", "loss"], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
    write_text_atomic(path, buf.getvalue())


def plot_curves(path: Path, history: list[dict[str, float]], lr_rows: list[dict[str, float]]) -> None:
    """Loss, accuracy and learning rate per epoch, side by side in one PNG."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(epochs, [h["train_loss"] for h in history], "o-", ms=3, label="train")
    axes[0].plot(epochs, [h["val_loss"] for h in history], "o-", ms=3, label="val")
    axes[0].set(title="loss", xlabel="epoch")
    axes[1].plot(epochs, [h["train_acc"] for h in history], "o-", ms=3, label="train (augmented)")
    axes[1].plot(epochs, [h["val_acc"] for h in history], "o-", ms=3, label="val")
    axes[1].set(title="classification accuracy", xlabel="epoch", ylim=(0, 1))
    axes[2].plot([r["epoch"] for r in lr_rows], [r["lr"] for r in lr_rows])
    axes[2].set(title="learning rate", xlabel="epoch")
    for ax in axes[:2]:
        ax.legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)
