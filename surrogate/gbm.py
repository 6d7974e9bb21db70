"""Gradient-boosting surrogate with predictive uncertainty from a bootstrap ensemble.

``n_members`` boosted models (squared error, depth-limited trees grown by XGBoost's exact greedy algorithm,
no leaf regularization: the model of scikit-learn's ``GradientBoostingRegressor``) are fit on bootstrap
resamples of the rows (each with its own seed). XGBoost rather than scikit-learn because on 10-50 rows a tree
is a few microseconds of work and scikit-learn spends about 0.5 ms of Python and input checks around each; the
Optuna trials and leave-one-out folds of a young campaign's model selection fit ten thousand trees per
candidate (6x faster with XGBoost, measured in benchmarks/README.md). At a new recipe:

- the mean is the ensemble mean;
- the variance is the ensemble variance (how much the fit depends on which rows it saw) plus a noise
  variance estimated out of bag: the mean squared residual of each row under the members that did not
  see it, minus the ensemble variance at those rows (floored at a small positive value).

Chosen over quantile models and split-conformal intervals because on 10-100 rows those need data to
spare (a calibration split, or one model per quantile that may cross); the ensemble reuses every row
and its 90 % coverage is measured by cross-validation like every other model's (``kiln retrain``).
Not differentiable; the optimizer's local search needs no gradients. The trees are saved with the model
(:mod:`surrogate.forest`), so loading never refits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from surrogate.base import Surrogate, diagonal_mvn
from surrogate.features import Featurizer
from surrogate.forest import Forest


@dataclass(frozen=True)
class GBMParams:
    """Hyper-parameters of one boosted ensemble member (checked on construction)."""

    n_estimators: int = 100
    learning_rate: float = 0.1
    max_depth: int = 2
    min_samples_leaf: int = 1
    subsample: float = 1.0

    def __post_init__(self) -> None:
        checks = {
            "n_estimators": (
                isinstance(self.n_estimators, int) and 1 <= self.n_estimators <= 5000,
                "an integer in [1, 5000]",
            ),
            "learning_rate": (0 < self.learning_rate <= 1, "a number in (0, 1]"),
            "max_depth": (isinstance(self.max_depth, int) and 1 <= self.max_depth <= 12, "an integer in [1, 12]"),
            "min_samples_leaf": (
                isinstance(self.min_samples_leaf, int) and self.min_samples_leaf >= 1,
                "an integer >= 1",
            ),
            "subsample": (0 < self.subsample <= 1, "a number in (0, 1]"),
        }
        for name, (ok, need) in checks.items():
            if not ok:
                raise ValueError(f"GBMParams.{name} = {getattr(self, name)!r}: must be {need}")

    def booster(self, F: np.ndarray, y: np.ndarray, seed: int):
        """An XGBoost booster fitted to features ``F`` (``n x p``) and targets ``y`` (``n``): starts at the mean of
        ``y``; ``min_samples_leaf`` is the least hessian weight of a leaf, i.e. rows, under squared error; one
        thread, seeded (the row subsample)."""
        import xgboost as xgb

        params = {
            "objective": "reg:squarederror",
            "tree_method": "exact",
            "eta": self.learning_rate,
            "max_depth": self.max_depth,
            "min_child_weight": float(self.min_samples_leaf),
            "subsample": self.subsample,
            "lambda": 0.0,
            "alpha": 0.0,
            "gamma": 0.0,
            "base_score": float(np.mean(y)),
            "nthread": 1,
            "seed": seed,
            "verbosity": 0,
        }
        return boost(params, xgb.DMatrix(F, label=y, nthread=1), self.n_estimators)


def boost(params: dict[str, Any], dtrain, rounds: int):
    """``xgboost.train(params, dtrain, rounds)`` without its per-round Python: the same booster, round for round
    (the same C call, ``XGBoosterUpdateOneIter``; tested byte for byte), minus the callback container, the
    feature-name checks repeated every round and the final cache reset. On the 10-50 rows of a young campaign a
    round of a depth-2 tree is microseconds of C and was 50-70 us of Python, most of a model selection's time in
    the Optuna trials and leave-one-out folds of the gradient-boosting candidates. ``xgboost.core._LIB`` is private:
    the pin (``xgboost-cpu<4``) and the byte-for-byte test keep it honest."""
    import ctypes

    import xgboost as xgb
    from xgboost.core import _LIB, _check_call

    booster = xgb.Booster(params, [dtrain])
    if rounds > 0:
        booster.update(dtrain, 0)  # checks the features once
    for i in range(1, rounds):
        _check_call(_LIB.XGBoosterUpdateOneIter(booster.handle, ctypes.c_int(i), dtrain.handle))
    return booster


def predict_booster(booster, F: np.ndarray) -> np.ndarray:
    """A booster's predictions at the rows of ``F`` (``n x p``): ``n``, routed as :class:`~surrogate.forest.Forest`
    routes them (a row on a split threshold goes left). XGBoost sends ``x`` left when ``x < t`` in float32; fed
    the float32 just below ``x`` it sends it left exactly when ``x <= t``."""
    below = np.nextafter(np.asarray(F, dtype=np.float32), np.float32(-np.inf))
    return booster.inplace_predict(below).astype(np.float64)


class GBMSurrogate(Surrogate):
    """Bootstrap ensemble of gradient-boosted trees (see the module docstring).

    Learned state: ``forest_`` (the fitted members' trees, :class:`~surrogate.forest.Forest`), ``noise_var_``
    (target units squared); both are saved, so loading never refits. A model fitted in this process predicts with
    its XGBoost boosters and builds ``forest_`` only when it is saved or read: reading the trees out of XGBoost
    (its JSON) took half the time of fitting them, and the folds of a cross-validation never need them.
    """

    kind = "gbm"
    default_mode = "onehot"

    def __init__(
        self, featurizer: Featurizer, *, params: GBMParams | dict | None = None, n_members: int = 8, **kwargs: Any
    ) -> None:
        super().__init__(featurizer, **kwargs)
        self.params = params if isinstance(params, GBMParams) else GBMParams(**(params or {}))
        if not (isinstance(n_members, int) and n_members >= 2):
            raise ValueError(
                f"GBMSurrogate.n_members = {n_members!r}: must be an integer >= 2 (the ensemble gives the spread)"
            )
        self.n_members = n_members
        self._boosters: list[Any] | None = None  # fitted in this process (XGBoost boosters), else loaded
        self._forest: Forest | None = None

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "params": asdict(self.params), "n_members": self.n_members}

    def _fit(self, X: Tensor, y: np.ndarray) -> None:
        F = self.featurizer(X).numpy()
        n = len(y)
        rng = np.random.default_rng(self.seed)
        members, inbag = [], np.zeros((self.n_members, n), dtype=bool)
        for i in range(self.n_members):
            idx = rng.integers(0, n, n) if n > 1 else np.zeros(1, dtype=int)
            inbag[i, idx] = True
            members.append(self.params.booster(F[idx], y[idx], self.seed + i))
        self._boosters, self._forest, self._n_features = members, None, F.shape[1]
        P = self._members(F)  # members x n
        oob = ~inbag
        has = oob.any(0)
        floor = max(self.noise_floor, 1e-3 * max(self.scale_floor, float(np.std(y)) if n > 1 else 0.0, 1e-6)) ** 2
        if has.sum() >= 2:
            w = oob[:, has]
            oob_mean = (P[:, has] * w).sum(0) / w.sum(0)
            resid2 = (y[has] - oob_mean) ** 2
            self.noise_var_ = float(max(resid2.mean() - P[:, has].var(0).mean(), floor))
        else:
            self.noise_var_ = float(max(self.scale_floor**2, floor))

    @property
    def forest_(self) -> Forest:
        """The members' trees as arrays: loaded, or read out of this process's boosters at first use."""
        if self._forest is None:
            self._check_fitted()
            self._forest = Forest.from_boosters(self._boosters, self._n_features)
        return self._forest

    def _members(self, F: np.ndarray, which: list[int] | None = None) -> np.ndarray:
        """Predictions of every member (or of ``which``) at the rows of ``F`` (``n x p``): ``M x n``. Boosters and
        forest route alike (a row on a threshold goes left); they differ by the float32 rounding of XGBoost's sums."""
        if self._boosters is None:
            return self.forest_.predict(F, which)
        boosters = self._boosters if which is None else [self._boosters[i] for i in which]
        return np.stack([predict_booster(b, F) for b in boosters])

    def _members_predict(self, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        P = self._members(F)
        return P.mean(0), P.var(0)

    def _predict(self, X: Tensor) -> tuple[np.ndarray, np.ndarray]:
        mean, var = self._members_predict(self.featurizer(X).numpy())
        return mean, np.sqrt(var + self.noise_var_)

    def marginal(self, X: Tensor) -> tuple[Tensor, Tensor]:
        """The ensemble's mean and variance at each row of ``X`` (``batch x n x d``): two ``batch x n``."""
        self._check_fitted()
        shape = X.shape[:-1]
        with torch.no_grad():
            F = self.featurizer(X.detach())
            mean, var = self._members_predict(F.reshape(-1, F.shape[-1]).numpy())
        return torch.from_numpy(mean).reshape(shape), torch.from_numpy(var).reshape(shape).clamp_min(1e-12)

    def mvn(self, X: Tensor):
        return diagonal_mvn(*self.marginal(X))

    def sample(self, X: Tensor, generator: torch.Generator) -> Tensor:
        """One member of the bootstrap ensemble, drawn by ``generator``: a coherent function sample (``n``)."""
        self._check_fitted()
        count = len(self._boosters) if self._boosters is not None else self.forest_.n_members
        k = int(torch.randint(count, (1,), generator=generator))
        with torch.no_grad():
            F = self.featurizer(X.detach()).numpy()
        return torch.from_numpy(self._members(F, [k])[0])

    def _state_json(self) -> dict[str, Any]:
        return {"forest": self.forest_.to_json(), "noise_var": self.noise_var_}

    def _load(self, X: Tensor, y: np.ndarray, state: dict[str, Any] | None) -> None:
        if state is None:  # a file written before the trees were saved: refit (deterministic given the seed)
            self._fit(X, y)
            return
        self._boosters, self._forest = None, Forest.from_json(state["forest"])
        self.noise_var_ = float(state["noise_var"])

    def hyperparameters(self) -> dict[str, float]:
        return {
            **{k: float(v) for k, v in asdict(self.params).items()},
            "n_members": float(self.n_members),
            "noise_var": self.noise_var_,
        }
