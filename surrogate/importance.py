"""Which inputs a fitted surrogate relies on: permutation importance on its training rows.

Each input column of the encoded recipes (a categorical as a whole, not its one-hot pieces) is
shuffled ``n_repeats`` times; its importance is the mean rise in RMSE, in target units. Computed on
the training rows, so it describes the model, not the chemistry: a feature the model ignores scores
near zero, a feature it leans on scores high whether or not that reliance generalizes.
"""

from __future__ import annotations

import numpy as np

from surrogate.base import Surrogate


def permutation_importance(model: Surrogate, n_repeats: int = 5, seed: int = 0) -> dict[str, dict[str, float]]:
    """Input name -> ``{"mean", "std"}`` rise in RMSE when that input is shuffled."""
    from sklearn.inspection import permutation_importance as sk_permutation_importance

    model._check_fitted()
    X = model.train_X_.numpy()
    y = np.asarray(model.train_y_, dtype=np.float64)

    def neg_rmse(est: Surrogate, X_: np.ndarray, y_: np.ndarray) -> float:
        return -float(np.sqrt(np.mean((est.predict(X_)[0] - y_) ** 2)))

    res = sk_permutation_importance(model, X, y, scoring=neg_rmse, n_repeats=n_repeats, random_state=seed)
    names = model.input_names
    return {n: {"mean": float(m), "std": float(s)} for n, m, s in zip(names, res.importances_mean, res.importances_std)}
