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


def pareto_figure(
    experiments: pd.DataFrame, pareto: pd.DataFrame, config: CampaignConfig, suggested: pd.DataFrame | None = None
):
    """Pairwise objective plots: measured points, the measured Pareto set, suggestions (predicted mean +/- std).

    Drawn without pyplot (a bare ``Figure``), so a service may draw it in a background thread."""
    from matplotlib.figure import Figure

    names = list(config.target_names)
    pairs = list(itertools.combinations(names, 2))
    cols = min(3, len(pairs)) or 1
    rows = int(np.ceil(len(pairs) / cols)) or 1
    fig = Figure(figsize=(4.2 * cols, 3.6 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (a, b) in zip(axes.ravel(), pairs):
        both = experiments.dropna(subset=[a, b])
        ax.scatter(both[a], both[b], s=22, c="0.6", label="measured")
        if not pareto.empty:
            ax.scatter(
                pareto[a], pareto[b], s=60, facecolors="none", edgecolors="C3", linewidths=1.5, label="Pareto set"
            )
        if suggested is not None and len(suggested):
            ax.errorbar(
                suggested[f"{a}_mean"],
                suggested[f"{b}_mean"],
                xerr=suggested[f"{a}_std"],
                yerr=suggested[f"{b}_std"],
                fmt="*",
                ms=10,
                color="C0",
                ecolor="C0",
                alpha=0.8,
                label="suggested (pred.)",
            )
        ta, tb = config.targets[names.index(a)], config.targets[names.index(b)]
        ax.set_xlabel(f"{a} ({ta.short})")
        ax.set_ylabel(f"{b} ({tb.short})")
        ax.axvline(ta.reference, color="0.85", lw=1, zorder=0)
        ax.axhline(tb.reference, color="0.85", lw=1, zorder=0)
    for ax in axes.ravel()[len(pairs) :]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7, loc="best")
    fig.suptitle(f"{config.name}: objectives (grey lines: reference point)")
    fig.tight_layout()
    return fig


def parity_figure(cv: dict[str, tuple[str, np.ndarray, np.ndarray, np.ndarray]]):
    """Held-out predicted vs measured per target (``target -> (model label, y, mean, std)``), 90 % bars."""
    plt = _pyplot()
    n = max(len(cv), 1)
    fig, axes = plt.subplots(1, n, figsize=(3.8 * n, 3.6), squeeze=False)
    for ax, (name, (label, y, mu, sd)) in zip(axes.ravel(), cv.items()):
        ax.errorbar(y, mu, yerr=1.645 * sd, fmt="o", ms=4, alpha=0.8)
        lo, hi = float(np.nanmin([y.min(), mu.min()])), float(np.nanmax([y.max(), mu.max()]))
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_title(f"{name} ({label})")
        ax.set_xlabel("measured")
        ax.set_ylabel("cross-validated prediction")
    fig.tight_layout()
    return fig


def calibration_figure(cv: dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]):
    """Observed vs nominal coverage of central intervals, per target and candidate model.

    A calibrated model lies on the diagonal; below it, its intervals are too narrow (overconfident).
    """
    from scipy.stats import norm

    plt = _pyplot()
    n = max(len(cv), 1)
    levels = np.linspace(0.05, 0.95, 19)
    fig, axes = plt.subplots(1, n, figsize=(3.8 * n, 3.6), squeeze=False)
    for ax, (name, models) in zip(axes.ravel(), cv.items()):
        for label, y, mu, sd in models:
            z = np.abs(y - mu) / np.maximum(sd, 1e-12)
            observed = [np.mean(z <= norm.ppf(0.5 + lv / 2)) for lv in levels]
            ax.plot(levels, observed, marker=".", label=label)
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ax.set_title(name)
        ax.set_xlabel("nominal coverage")
        ax.set_ylabel("observed coverage (CV)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def importance_figure(importance: dict[str, dict[str, dict[str, float]]]):
    """Permutation importance (rise in RMSE when shuffled) of each input, per target."""
    plt = _pyplot()
    n = max(len(importance), 1)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.2), squeeze=False)
    for ax, (name, imp) in zip(axes.ravel(), importance.items()):
        inputs = list(imp)
        ax.barh(inputs, [imp[k]["mean"] for k in inputs], xerr=[imp[k]["std"] for k in inputs], color="C2")
        ax.set_title(name)
        ax.set_xlabel("RMSE rise when shuffled")
    fig.tight_layout()
    return fig


def benchmark_figure(summary: list[dict], title: str):
    """Median hypervolume (fraction of the best attainable) vs experiments, interquartile band, per strategy."""
    plt = _pyplot()
    frame = pd.DataFrame(summary)
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for i, (name, g) in enumerate(frame.groupby("strategy", sort=False)):
        ax.plot(g.n_experiments, g.hv_median, marker="o", color=f"C{i}", label=name)
        ax.fill_between(g.n_experiments, g.hv_q25, g.hv_q75, color=f"C{i}", alpha=0.2)
    ax.axhline(0.9, color="0.6", ls="--", lw=1)
    ax.set_xlabel("experiments")
    ax.set_ylabel("hypervolume / best attainable")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def progress_figure(experiments: pd.DataFrame, config: CampaignConfig):
    """Each target per experiment in the order they were run (batches shaded), with the best so far."""
    plt = _pyplot()
    n = len(config.targets)
    fig, axes = plt.subplots(1, n, figsize=(3.8 * n, 3.4), squeeze=False)
    order = np.arange(len(experiments))
    batches = experiments["batch"].fillna("").tolist()
    for ax, t in zip(axes.ravel(), config.targets):
        y = experiments[t.name].to_numpy(float)
        ok = ~np.isnan(y)
        ax.scatter(order[ok], y[ok], s=14, c="C0", label="measured")
        ax.step(order, _best_so_far(t, y), where="post", color="C3", label="best so far")
        if t.goal is not None:
            ax.axhline(t.goal, color="C2", lw=1, ls="--", label="goal")
        for k, b in enumerate(batches):
            if k and b != batches[k - 1]:
                ax.axvline(k - 0.5, color="0.9", lw=0.8, zorder=0)
        ax.set_xlabel("experiment (in order run; lines separate batches)")
        ax.set_title(f"{t.name} ({t.direction})", fontsize=9)
    axes.ravel()[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _best_so_far(target, y: np.ndarray) -> np.ndarray:
    """Per position: the measured value (``n``, NaN = not measured) that is best under the target's objective so far."""
    out, best = np.full(len(y), np.nan), np.nan
    for k, v in enumerate(y):
        if not np.isnan(v) and (np.isnan(best) or target.objective(v) > target.objective(best)):
            best = v
        out[k] = best
    return out


def partial_dependence_figure(
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]], target: str, by: str
):
    """``curves[input][category] = (grid, mean, std)``: the model's average prediction of ``target``
    as one input varies, the other inputs as in the experiments, one line per category of ``by``."""
    plt = _pyplot()
    n = max(len(curves), 1)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False)
    colors = {c: f"C{k}" for k, c in enumerate(dict.fromkeys(c for per_cat in curves.values() for c in per_cat))}
    for ax, (name, per_cat) in zip(axes.ravel(), curves.items()):
        for cat, (grid, mean, std) in per_cat.items():  # one colour per category in every panel
            ax.plot(grid, mean, color=colors[cat], label=f"{by} = {cat}")
            ax.fill_between(grid, mean - std, mean + std, color=colors[cat], alpha=0.12)
        ax.set_xlabel(name)
        ax.set_ylabel(f"{target} (partial dependence, +-1 std)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
