"""Optuna tuning of the gradient-boosting hyper-parameters by K-fold cross-validated RMSE.

Seeded TPE sampler, a bounded trial budget, and median pruning on the running RMSE after each fold
(a trial already worse than the median after two folds is stopped). Censored values enter the
training folds at their fallback values (see :mod:`surrogate.censoring`) and are never scored.
The trials are returned so the caller can log them (this package knows nothing of MLflow).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from torch import Tensor

from surrogate.base import as_tensor
from surrogate.censoring import censored_mask, fallback_values
from surrogate.features import Featurizer
from surrogate.gbm import GBMParams, predict_booster


@dataclass(frozen=True)
class TuningResult:
    params: GBMParams
    best_rmse: float
    trials: list[dict[str, Any]] = field(default_factory=list)  # number, state, value, params


def tune_gbm(
    featurizer: Featurizer,
    X: Tensor | np.ndarray,
    y: Sequence[float],
    qualifiers: Sequence[str] | None = None,
    *,
    n_trials: int = 20,
    folds: int = 3,
    seed: int = 0,
    lower: float | None = None,
    upper: float | None = None,
) -> TuningResult:
    """Search GBM hyper-parameters for ``X`` (``n x d``), ``y`` (``n``); ``n`` must be at least 4."""
    import optuna
    from sklearn.model_selection import KFold

    if n_trials < 1:
        raise ValueError(f"n_trials = {n_trials}: must be at least 1")
    F = featurizer(as_tensor(X)).numpy()
    y = np.asarray(y, dtype=np.float64)
    q = list(qualifiers) if qualifiers is not None else [""] * len(y)
    cens = censored_mask(q)
    y_fit = y.copy()
    if cens.any():
        y_fit[cens] = fallback_values(y[cens], [v for v, c in zip(q, cens) if c], lower, upper)
    n = len(y)
    if n < 4:
        raise ValueError(f"{n} rows are too few to tune hyper-parameters by {folds}-fold CV (need 4)")
    splits = list(KFold(n_splits=min(folds, n), shuffle=True, random_state=seed).split(F))
    max_leaf = max(1, min(5, n // 6))

    def objective(trial: optuna.Trial) -> float:
        params = GBMParams(
            n_estimators=trial.suggest_int("n_estimators", 20, 250, log=True),
            learning_rate=trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            max_depth=trial.suggest_int("max_depth", 1, 4),
            min_samples_leaf=trial.suggest_int("min_samples_leaf", 1, max_leaf),
            subsample=trial.suggest_float("subsample", 0.6, 1.0),
        )
        sq: list[float] = []
        for k, (tr, te) in enumerate(splits):
            model = params.booster(F[tr], y_fit[tr], seed)
            scored = te[~cens[te]]
            if len(scored):
                sq.extend((predict_booster(model, F[scored]) - y[scored]) ** 2)
            rmse = float(np.sqrt(np.mean(sq))) if sq else float("inf")
            trial.report(rmse, k)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return rmse

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            direction="minimize",
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
        )
        study.optimize(objective, n_trials=n_trials)
    finally:
        optuna.logging.set_verbosity(previous)
    trials = [
        {"number": t.number, "state": t.state.name, "value": t.value, "params": dict(t.params)} for t in study.trials
    ]
    return TuningResult(GBMParams(**study.best_params), float(study.best_value), trials)
