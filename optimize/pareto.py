"""Best-so-far and Pareto set of measured experiments."""

from __future__ import annotations

import numpy as np
import pandas as pd

from optimize.config import CampaignConfig


def complete_rows(experiments: pd.DataFrame, config: CampaignConfig) -> pd.DataFrame:
    """Experiments with every objective measured (the only ones a Pareto comparison is fair for)."""
    return experiments.dropna(subset=list(config.target_names))


def objectives(values: np.ndarray, config: CampaignConfig) -> np.ndarray:
    """``n x m`` target values (config order) -> ``n x m`` quantities to maximize (see ``Target.objective``)."""
    return np.stack([t.objective(values[:, j]) for j, t in enumerate(config.targets)], axis=-1)


def pareto_mask(values: np.ndarray, config: CampaignConfig) -> np.ndarray:
    """Non-dominated rows of ``values`` (``n x m`` target values, config order): ``n`` booleans. A row is dominated
    when another is at least as good in every objective and better in one; equal rows are all kept (BoTorch's
    ``is_non_dominated(..., deduplicate=False)``, in NumPy: no torch import for a report or a figure)."""
    Y = objectives(values, config)  # n x m, larger is better
    dominated = np.zeros(len(Y), dtype=bool)
    for i in range(0, len(Y), 256):  # 256 x n x m comparisons at a time
        block = Y[i : i + 256, None, :]
        by = (Y[None, :, :] >= block).all(-1) & (Y[None, :, :] > block).any(-1)  # block x n: j dominates i
        dominated[i : i + 256] = by.any(-1)
    return ~dominated


def pareto_set(experiments: pd.DataFrame, config: CampaignConfig) -> pd.DataFrame:
    """Measured experiments on the Pareto front of all objectives."""
    rows = complete_rows(experiments, config)
    if rows.empty:
        return rows
    return rows[pareto_mask(rows[list(config.target_names)].to_numpy(float), config)]


def best_so_far(experiments: pd.DataFrame, config: CampaignConfig) -> dict[str, dict[str, object]]:
    """Per target: best measured value and its experiment id (censored values excluded)."""
    out: dict[str, dict[str, object]] = {}
    for t in config.targets:
        q = experiments[f"{t.name}_qualifier"]
        rows = experiments[experiments[t.name].notna() & ~q.isin(["<", ">"])]
        if rows.empty:
            out[t.name] = {"value": None, "experiment_id": None}
            continue
        i = rows.index[t.better(rows[t.name].to_numpy(float))]
        out[t.name] = {"value": float(rows.at[i, t.name]), "experiment_id": str(rows.at[i, "experiment_id"])}
    return out
