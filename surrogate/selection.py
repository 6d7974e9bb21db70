"""Honest cross-validation of surrogates and the choice of one per target.

Every fold refits the model from scratch (GP hyper-parameters included) on the training rows only;
censored rows are used for training (imputed inside the fold) but never scored, since their true
value is unknown. Leave-one-out when there are few rows, else repeated K-fold. Scores per model:

- RMSE of the predictive mean;
- NLPD, the mean negative log predictive density of the held-out value under N(mean, std^2):
  a proper scoring rule that punishes both a wrong mean and a wrong uncertainty;
- coverage of the central 90 % interval (``|y - mean| <= 1.645 std``): near 0.9 when calibrated.

The model with the lowest NLPD is chosen: the acquisition uses the whole predictive distribution,
so being right about the uncertainty matters as much as being right about the mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from torch import Tensor

from surrogate.base import Surrogate, as_tensor
from surrogate.censoring import censored_mask

Z90 = 1.6448536269514722  # standard normal 95th percentile: the central 90 % interval is mean +- Z90 std


@dataclass(frozen=True)
class CVScores:
    rmse: float
    nlpd: float
    coverage90: float
    n_scored: int  # held-out predictions scored (rows x repeats)

    @classmethod
    def of(cls, y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> CVScores:
        std = np.maximum(std, 1e-12)
        err = mean - y
        nlpd = float(np.mean(0.5 * np.log(2 * np.pi * std**2) + 0.5 * (err / std) ** 2))
        return cls(float(np.sqrt(np.mean(err**2))), nlpd, float(np.mean(np.abs(err) <= Z90 * std)), int(len(y)))


@dataclass(frozen=True)
class CVResult:
    """Scores of one model and its held-out predictions (each ``k``: rows x repeats, uncensored only)."""

    label: str
    scores: CVScores
    y: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def cv_splits(
    n: int, folds: int, repeats: int, seed: int, loo_max_rows: int, max_scored: int | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Leave-one-out when ``n <= loo_max_rows`` (or ``folds >= n``), else ``repeats`` x ``folds``-fold; with
    ``max_scored``, K-fold keeps its first folds up to the one whose held-out rows reach ``max_scored`` in all
    (at least two folds), so that large data sets are not cross-validated for longer than telling the models
    apart needs."""
    from sklearn.model_selection import LeaveOneOut, RepeatedKFold

    if n < 2:
        raise ValueError(f"cross-validation needs at least 2 rows, got {n}")
    if n <= loo_max_rows or folds >= n:
        return list(LeaveOneOut().split(np.zeros(n)))
    splits = list(RepeatedKFold(n_splits=folds, n_repeats=repeats, random_state=seed).split(np.zeros(n)))
    if max_scored is None:
        return splits
    held_out = np.cumsum([len(te) for _, te in splits])
    return splits[: max(2, int(np.searchsorted(held_out, max_scored)) + 1)]


def cross_validate(
    model: Surrogate,
    X: Tensor | np.ndarray,
    y: Sequence[float],
    qualifiers: Sequence[str] | None,
    splits: list[tuple[np.ndarray, np.ndarray]],
) -> CVResult:
    """Refit an unfitted copy of ``model`` on each training fold and score it on the held-out rows."""
    X = as_tensor(X)
    y = np.asarray(y, dtype=np.float64)
    q = np.asarray(list(qualifiers) if qualifiers is not None else [""] * len(y), dtype=object)
    cens = censored_mask(list(q))
    ys, means, stds = [], [], []
    for tr, te in splits:
        te = te[~cens[te]]
        if len(te) == 0:
            continue
        m = model.clone().fit(X[tr], y[tr], list(q[tr]))
        mu, sd = m.predict(X[te])
        ys.append(y[te]), means.append(mu), stds.append(sd)
    if not ys:
        raise ValueError(f"{model.name}: no uncensored rows to score")
    y_, mu_, sd_ = np.concatenate(ys), np.concatenate(means), np.concatenate(stds)
    return CVResult(model.label, CVScores.of(y_, mu_, sd_), y_, mu_, sd_)


def choose(results: Sequence[CVResult]) -> CVResult:
    """The result with the lowest NLPD (ties: the first listed)."""
    if not results:
        raise ValueError("no cross-validation results to choose from")
    return min(results, key=lambda r: r.scores.nlpd if np.isfinite(r.scores.nlpd) else np.inf)
