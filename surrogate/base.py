"""The one interface every surrogate shares, and the constant-mean baseline.

A surrogate models one target on encoded recipes (``n x d`` double tensors, see
:mod:`surrogate.encoding`), through its :class:`~surrogate.features.Featurizer`. scikit-learn habits:
``fit`` returns ``self``, learned state lives in attributes ending in ``_``, predicting before
fitting raises :class:`~surrogate.errors.NotFittedError`.

``fit`` is a template (BayBE-style ``fit`` -> ``_fit``): it validates, turns censored values into
numbers (see :mod:`surrogate.censoring`) and then calls the model's ``_fit``. Persistence is JSON
(:meth:`Surrogate.to_json`, :func:`surrogate.io.surrogate_from_json`): settings, training data and,
for GPs, the fitted hyper-parameters; nothing is ever unpickled.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
from gpytorch.distributions import MultivariateNormal
from gpytorch.utils.warnings import NumericalWarning
from linear_operator.operators import DiagLinearOperator
from torch import Tensor

from surrogate.censoring import censored_mask, clip_to_interval, fallback_values, truncated_normal_mean
from surrogate.errors import NotFittedError, SurrogateFitError
from surrogate.features import Featurizer

MIN_ROWS_TO_IMPUTE = 3  # uncensored rows needed to ask a model where a censored value lies


def floored_scale(y: np.ndarray, floor: float) -> float:
    """The sample standard deviation of ``y`` (target units; 0 for one value), floored at ``floor``: the scale a GP
    standardizes its outcomes by, and so its prior standard deviation."""
    y = np.asarray(y, dtype=np.float64)
    return max(float(np.std(y, ddof=1)) if len(y) > 1 else 0.0, floor, 1e-12)


def as_tensor(X: Tensor | np.ndarray) -> Tensor:
    """Encoded recipes as a double tensor (no copy when already one)."""
    return torch.as_tensor(X, dtype=torch.double)


class Surrogate(ABC):
    """A model of one target.

    Args:
        featurizer: encoded recipes -> model features.
        scale_floor: smallest outcome scale the model may assume, in target units (a target
            measured twice says nothing about how much it can vary).
        noise_floor: smallest observation-noise std the model may infer, in target units (the
            measurement's repeatability; without it a GP on ten rows explains every wiggle and
            becomes overconfident).
        lower, upper: physical bounds of the target (clip imputed censored values).
        name: used in error messages.
        seed: every random choice the model makes derives from it.
    """

    kind: ClassVar[str]
    default_mode: ClassVar[str] = "codes"  # feature mode named by the bare kind in labels

    def __init__(
        self,
        featurizer: Featurizer,
        *,
        scale_floor: float = 0.0,
        noise_floor: float = 0.0,
        lower: float | None = None,
        upper: float | None = None,
        name: str = "target",
        seed: int = 0,
    ) -> None:
        self.featurizer = featurizer
        self.scale_floor = float(scale_floor)
        self.noise_floor = float(noise_floor)
        self.lower, self.upper, self.name, self.seed = lower, upper, name, int(seed)

    # ---- settings ------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """Constructor arguments other than the featurizer (JSON-able)."""
        return {
            "scale_floor": self.scale_floor,
            "noise_floor": self.noise_floor,
            "lower": self.lower,
            "upper": self.upper,
            "name": self.name,
            "seed": self.seed,
        }

    def clone(self) -> Surrogate:
        """An unfitted copy with the same settings."""
        return type(self)(self.featurizer, **self.settings())

    @property
    def label(self) -> str:
        """Short name for reports: kind and feature mode, e.g. ``gp`` or ``gbm-descriptors``."""
        mode = self.featurizer.mode
        return self.kind if mode == self.default_mode or self.kind == "constant" else f"{self.kind}-{mode}"

    @property
    def input_names(self) -> tuple[str, ...]:
        """Names of the ``d`` columns of the encoded recipes this model takes."""
        return self.featurizer.encoder.names

    # ---- fitting -------------------------------------------------------------------------
    def fit(
        self, X: Tensor | np.ndarray, y: Sequence[float] | np.ndarray, qualifiers: Sequence[str] | None = None
    ) -> Surrogate:
        """Fit on ``X`` (``n x d``) and ``y`` (``n``); ``qualifiers`` marks censored rows (``<``/``>``).

        Sets ``train_X_`` (``n x d``), ``train_y_`` (``n``, censored rows imputed), ``imputed_`` (``n``
        bool) and whatever the model learns.
        """
        X = as_tensor(X)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if X.ndim != 2 or X.shape[0] != y.shape[0]:
            raise ValueError(f"{self.name}: X must be n x d and y n, got {tuple(X.shape)} and {y.shape}")
        if y.shape[0] == 0:
            raise SurrogateFitError(f"{self.name}: no measured rows to fit on")
        if not np.isfinite(y).all():
            raise ValueError(f"{self.name}: y contains NaN or inf; drop unmeasured rows before fitting")
        qualifiers = list(qualifiers) if qualifiers is not None else [""] * len(y)
        cens = censored_mask(qualifiers)
        y_fit = y.copy()
        if cens.any():
            cq = [q for q, c in zip(qualifiers, cens) if c]
            if (~cens).sum() >= MIN_ROWS_TO_IMPUTE:
                first = self._imputer()
                first._fit(X[~cens], y[~cens])
                mu, sd = first._predict(X[cens])
                guess = truncated_normal_mean(y[cens], cq, mu, sd)
            else:
                guess = fallback_values(y[cens], cq, self.lower, self.upper)
            y_fit[cens] = clip_to_interval(guess, y[cens], cq, self.lower, self.upper)
        self._fit(X, y_fit)
        self.train_X_, self.train_y_, self.imputed_ = X, y_fit, cens
        return self

    def outcome_scale(self) -> float:
        """How much the target varies, in target units: :func:`floored_scale` of the fitted values."""
        self._check_fitted()
        return floored_scale(self.train_y_, self.scale_floor)

    def _imputer(self) -> Surrogate:
        """The model fit on the uncensored rows to place the censored ones (a fresh clone)."""
        return self.clone()

    @abstractmethod
    def _fit(self, X: Tensor, y: np.ndarray) -> None:
        """Learn from ``X`` (``n x d``) and uncensored ``y`` (``n``)."""

    def _check_fitted(self) -> None:
        if not hasattr(self, "train_y_"):
            raise NotFittedError(f"{self.name}: call fit() before predict() or saving")

    # ---- prediction ----------------------------------------------------------------------
    def predict(self, X: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and std (observation noise included) at ``X`` (``n x d``); each ``n``."""
        self._check_fitted()
        return self._predict(as_tensor(X))

    @abstractmethod
    def _predict(self, X: Tensor) -> tuple[np.ndarray, np.ndarray]: ...

    @abstractmethod
    def mvn(self, X: Tensor) -> MultivariateNormal:
        """Posterior of the noise-free target at ``X`` (``batch x n x d``): an MVN with batch shape
        ``batch`` and event shape ``n``, for the acquisition function."""

    def marginal(self, X: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance of the noise-free target at each row of ``X`` (``... x d``): two ``...`` (the diagonal of
        :meth:`mvn`, which models with independent rows give without building the MVN)."""
        mvn = self.mvn(X)
        with warnings.catch_warnings():
            # a variance that rounds below zero at a training point is set to 1e-10: that is the answer
            warnings.simplefilter("ignore", NumericalWarning)
            return mvn.mean, mvn.variance

    def sample(self, X: Tensor, generator: torch.Generator) -> Tensor:
        """One joint draw of the noise-free target over the rows of ``X`` (``n x d``): ``n`` values, a
        function sample for Thompson sampling. By default from :meth:`mvn` (Cholesky with growing jitter)."""
        self._check_fitted()
        with torch.no_grad():
            mvn = self.mvn(X)
            mean, cov = mvn.mean.reshape(-1), mvn.covariance_matrix.reshape(len(X), len(X))
            z = torch.randn(len(X), generator=generator, dtype=mean.dtype)
            return mean + jittered_cholesky(cov) @ z

    def hyperparameters(self) -> dict[str, float]:
        """Named scalar hyper-parameters, for logging."""
        return {}

    # ---- persistence ---------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Everything needed to rebuild the fitted model: settings, features, data, learned state."""
        self._check_fitted()
        return {
            "kind": self.kind,
            "settings": self.settings(),
            "featurizer": self.featurizer.to_json(),
            "train_X": self.train_X_.tolist(),
            "train_y": [float(v) for v in self.train_y_],
            "imputed": [bool(v) for v in self.imputed_],
            "state": self._state_json(),
        }

    def _state_json(self) -> Any:
        """Learned state beyond the training data (``None``: refit deterministically on load)."""
        return None

    def _load(self, X: Tensor, y: np.ndarray, state: Any) -> None:
        """Restore learned state; by default refit (deterministic given ``seed``)."""
        self._fit(X, y)


def diagonal_mvn(mean: Tensor, var: Tensor) -> MultivariateNormal:
    """Independent normals as an MVN; ``mean`` and ``var`` are ``batch x n``."""
    return MultivariateNormal(mean, DiagLinearOperator(var.clamp_min(1e-12)))


class ConstantSurrogate(Surrogate):
    """Baseline: predicts the training mean everywhere, with the spread of the training values.

    Predictive std ``s * sqrt(1 + 1/n)`` (``s`` the sample std, floored at ``scale_floor``): the
    spread of a new draw from the same distribution. A model that cannot beat this has learned nothing.
    """

    kind = "constant"

    def _fit(self, X: Tensor, y: np.ndarray) -> None:
        n = len(y)
        s = float(np.std(y, ddof=1)) if n > 1 else 0.0
        self.mean_ = float(np.mean(y))
        self.std_ = max(s, self.scale_floor, self.noise_floor, 1e-9) * float(np.sqrt(1 + 1 / n))

    def _predict(self, X: Tensor) -> tuple[np.ndarray, np.ndarray]:
        n = X.shape[0]
        return np.full(n, self.mean_), np.full(n, self.std_)

    def marginal(self, X: Tensor) -> tuple[Tensor, Tensor]:
        self._check_fitted()
        shape = X.shape[:-1]
        return torch.full(shape, self.mean_, dtype=torch.double), torch.full(shape, self.std_**2, dtype=torch.double)

    def mvn(self, X: Tensor) -> MultivariateNormal:
        return diagonal_mvn(*self.marginal(X))

    def sample(self, X: Tensor, generator: torch.Generator) -> Tensor:
        """A constant function: one draw around the training mean, the same at every row of ``X``."""
        self._check_fitted()
        z = float(torch.randn(1, generator=generator, dtype=torch.double))
        return torch.full((len(X),), self.mean_ + self.std_ * z, dtype=torch.double)

    def hyperparameters(self) -> dict[str, float]:
        return {"mean": self.mean_, "std": self.std_}


def jittered_cholesky(cov: Tensor) -> Tensor:
    """Lower Cholesky factor of a covariance (``n x n``), with growing jitter for near-duplicate rows; the
    diagonal's square root (independent draws, still a valid sample of each point) if all fail."""
    scale = float(cov.diagonal().mean().clamp_min(1e-12))
    eye = torch.eye(len(cov), dtype=cov.dtype)
    for jitter in (1e-8, 1e-6, 1e-4, 1e-2):
        L, info = torch.linalg.cholesky_ex(cov + jitter * scale * eye)
        if int(info) == 0:
            return L
    return torch.diag(cov.diagonal().clamp_min(0).sqrt())
