"""PNG plots shared by the commands: ROC curves, score histograms, training curves.

matplotlib is imported inside each function with the Agg backend (no display, and ``ftk --help`` stays instant).
Every plot is written atomically (temp file + rename), so an interrupted run never leaves a half-written PNG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from toolkit.constants import pyplot
from toolkit.io import atomic_path


def _pyplot():
    return pyplot()


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    plt = _pyplot()
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def plot_roc(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str | Path,
             title: str = "ROC", marks: Mapping[str, tuple[float, float]] | None = None) -> Path:
    """ROC curves (label -> (fpr, tpr)) with a log-scale FAR axis, where face matching operates.

    ``marks``: labelled operating points (label -> (far, tar)), e.g. the threshold recommended at FAR 1e-3.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for label, (fpr, tpr) in curves.items():
        fpr, tpr = np.asarray(fpr, float), np.asarray(tpr, float)
        axes[0].plot(fpr, tpr, label=label)
        positive = fpr > 0
        axes[1].step(fpr[positive], tpr[positive], where="post", label=label)
    for label, (far, tar) in (marks or {}).items():
        for ax in axes if far > 0 else axes[:1]:  # FAR 0 has no place on the log axis
            ax.plot([far], [tar], "o", ms=5)
            ax.annotate(label, (far, tar), textcoords="offset points", xytext=(6, -10), fontsize=8)
    axes[0].plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
    axes[0].set(xlabel="false accept rate (FAR)", ylabel="true accept rate (TAR)", title=title, xlim=(0, 1),
                ylim=(0, 1.01))
    axes[1].set_xscale("log")
    axes[1].set(xlabel="FAR (log scale)", ylabel="TAR", title=f"{title}, low-FAR region", ylim=(0, 1.01))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def plot_score_histogram(scores: Sequence[float], same: Sequence[bool], path: str | Path,
                         thresholds: Mapping[str, float] | None = None, title: str = "pair scores",
                         xlabel: str = "cosine similarity") -> Path:
    """Overlaid histograms of same-person and different-person scores, with vertical threshold lines."""
    plt = _pyplot()
    s = np.asarray(scores, float)
    y = np.asarray(same, bool)
    fig, ax = plt.subplots(figsize=(7, 4))
    lo, hi = float(s.min()), float(s.max())
    bins = np.linspace(lo, hi if hi > lo else lo + 1e-3, 50)
    ax.hist(s[y], bins=bins, alpha=0.6, label=f"same person (n={int(y.sum())})", color="tab:green")
    ax.hist(s[~y], bins=bins, alpha=0.6, label=f"different people (n={int((~y).sum())})", color="tab:red")
    for i, (label, value) in enumerate((thresholds or {}).items()):
        ax.axvline(value, ls="--", lw=1, color=f"C{i + 2}", label=f"{label}: {value:.3f}")
    ax.set(xlabel=xlabel, ylabel="pairs", title=title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_curves(x: Sequence[float], series: Mapping[str, Sequence[float]], path: str | Path,
                xlabel: str = "epoch", ylabel: str = "", title: str = "", logy: bool = False) -> Path:
    """Line plot of named series over a shared x axis (loss/accuracy/learning-rate curves)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, values in series.items():
        ax.plot(list(x)[: len(values)], list(values), marker="o" if len(values) < 30 else None, ms=3, label=label)
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    return save_figure(fig, path)
