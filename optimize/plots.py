"""Figures logged to MLflow (matplotlib, Agg backend, created on demand)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from optimize.config import CampaignConfig


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def pareto_figure(experiments: pd.DataFrame, pareto: pd.DataFrame, config: CampaignConfig, suggested: pd.DataFrame | None = None):
    """Pairwise objective plots: measured points, the measured Pareto set, suggestions (predicted mean +/- std)."""
    plt = _pyplot()
    names = list(config.target_names)
    pairs = list(itertools.combinations(names, 2))
    cols = min(3, len(pairs)) or 1
    rows = int(np.ceil(len(pairs) / cols)) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax, (a, b) in zip(axes.ravel(), pairs):
        both = experiments.dropna(subset=[a, b])
        ax.scatter(both[a], both[b], s=22, c="0.6", label="measured")
        if not pareto.empty:
            ax.scatter(pareto[a], pareto[b], s=60, facecolors="none", edgecolors="C3", linewidths=1.5, label="Pareto set")
        if suggested is not None and len(suggested):
            ax.errorbar(
                suggested[f"{a}_mean"], suggested[f"{b}_mean"], xerr=suggested[f"{a}_std"], yerr=suggested[f"{b}_std"],
                fmt="*", ms=10, color="C0", ecolor="C0", alpha=0.8, label="suggested (pred.)",
            )
        ta, tb = config.targets[names.index(a)], config.targets[names.index(b)]
        ax.set_xlabel(f"{a} ({ta.direction[:3]})")
        ax.set_ylabel(f"{b} ({tb.direction[:3]})")
        ax.axvline(ta.reference, color="0.85", lw=1, zorder=0)
        ax.axhline(tb.reference, color="0.85", lw=1, zorder=0)
    for ax in axes.ravel()[len(pairs) :]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7, loc="best")
    fig.suptitle(f"{config.name}: objectives (grey lines: reference point)")
    fig.tight_layout()
    return fig


def parity_figure(loo: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]):
    """Leave-one-out predicted vs measured per target, with +/- 1.645 std (90 %) bars."""
    plt = _pyplot()
    n = max(len(loo), 1)
    fig, axes = plt.subplots(1, n, figsize=(3.8 * n, 3.6), squeeze=False)
    for ax, (name, (y, mu, sd)) in zip(axes.ravel(), loo.items()):
        ax.errorbar(y, mu, yerr=1.645 * sd, fmt="o", ms=4, alpha=0.8)
        lo, hi = float(np.nanmin([y.min(), mu.min()])), float(np.nanmax([y.max(), mu.max()]))
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_title(name)
        ax.set_xlabel("measured")
        ax.set_ylabel("LOO predicted")
    fig.tight_layout()
    return fig
