"""Best-so-far and Pareto set of measured experiments."""

from __future__ import annotations

import numpy as np
import pandas as pd

from optimize.config import CampaignConfig


def complete_rows(experiments: pd.DataFrame, config: CampaignConfig) -> pd.DataFrame:
    """Experiments with every objective measured (the only ones a Pareto comparison is fair for)."""
    return experiments.dropna(subset=list(config.target_names))


def pareto_mask(values: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """Non-dominated rows of ``values`` (``n x m``) after multiplying by ``signs`` (maximize all)."""
    import torch
    from botorch.utils.multi_objective.pareto import is_non_dominated

    return is_non_dominated(torch.as_tensor(values * signs, dtype=torch.double), deduplicate=False).numpy()


def pareto_set(experiments: pd.DataFrame, config: CampaignConfig) -> pd.DataFrame:
    """Measured experiments on the Pareto front of all objectives."""
    rows = complete_rows(experiments, config)
    if rows.empty:
        return rows
    signs = np.array([t.sign for t in config.targets])
    return rows[pareto_mask(rows[list(config.target_names)].to_numpy(float), signs)]


def best_so_far(experiments: pd.DataFrame, config: CampaignConfig) -> dict[str, dict[str, object]]:
    """Per target: best measured value and its experiment id (censored values excluded)."""
    out: dict[str, dict[str, object]] = {}
    for t in config.targets:
        q = experiments[f"{t.name}_qualifier"]
        rows = experiments[experiments[t.name].notna() & ~q.isin(["<", ">"])]
        if rows.empty:
            out[t.name] = {"value": None, "experiment_id": None}
            continue
        i = rows[t.name].idxmax() if t.direction == "maximize" else rows[t.name].idxmin()
        out[t.name] = {"value": float(rows.at[i, t.name]), "experiment_id": str(rows.at[i, "experiment_id"])}
    return out
