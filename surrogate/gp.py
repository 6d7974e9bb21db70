"""Gaussian-process surrogate for one target on encoded inputs.

Mixed inputs use BoTorch's ``MixedSingleTaskGP``: an RBF kernel on the continuous features combined
(sum and product) with a categorical kernel ``exp(-mismatch / lengthscale)`` on integer-coded
categories, so no ordering is imposed on, e.g., carbonates. Outcomes are standardized with a floor on
the scale so that a target measured once or twice does not get a falsely tiny uncertainty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from botorch.exceptions.errors import ModelFittingError
from botorch.fit import fit_gpytorch_mll
from botorch.models import MixedSingleTaskGP, ModelListGP, SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from gpytorch import settings as gpsettings
from gpytorch.mlls import ExactMarginalLogLikelihood
from linear_operator.utils.errors import NanError, NotPSDError
from torch import Tensor

from surrogate.censoring import censored_mask, clip_to_interval, fallback_values, truncated_normal_mean
from surrogate.errors import NotFittedError, SurrogateFitError

MIN_ROWS_TO_TUNE = 3  # fewer measured rows: condition on them, keep prior hyper-parameters
_JITTERS = (None, 1e-5, 1e-3)  # cholesky jitter tried in turn when a fit fails


class FlooredStandardize(Standardize):
    """``Standardize`` whose scale is at least ``min_scale`` (in target units).

    With one or two measured rows the sample standard deviation says nothing about how much the
    target can vary; the floor (e.g. a fifth of the target's physical range) keeps the prior honest.
    """

    def __init__(self, m: int, min_scale: float) -> None:
        super().__init__(m=m)
        self.register_buffer("min_scale", torch.tensor(float(min_scale), dtype=torch.double))

    def forward(self, Y: Tensor, Yvar: Tensor | None = None, X: Tensor | None = None):
        if not self.training:
            return super().forward(Y, Yvar, X)
        super().forward(Y, Yvar, X)  # learns means and stdvs
        stdvs = torch.maximum(self.stdvs, self.min_scale.to(self.stdvs))
        self.stdvs, self._stdvs_sq = stdvs, stdvs.pow(2)
        self.eval()
        try:
            return super().forward(Y, Yvar, X)
        finally:
            self.train()


class GPSurrogate:
    """Exact GP for one target. sklearn-style: ``fit`` returns self, learned state ends in ``_``.

    Args:
        cat_dims: indices of integer-coded categorical features in ``X``.
        scale_floor: lower bound of the outcome scale, in target units.
        lower, upper: physical bounds of the target (used to clip imputed censored values).
        name: used in error messages.
    """

    def __init__(
        self,
        cat_dims: Sequence[int] = (),
        scale_floor: float = 0.0,
        lower: float | None = None,
        upper: float | None = None,
        name: str = "target",
    ) -> None:
        self.cat_dims = list(cat_dims)
        self.scale_floor = float(scale_floor)
        self.lower, self.upper, self.name = lower, upper, name

    # ---- fitting ---------------------------------------------------------------------------
    def fit(self, X: Tensor, y: Sequence[float] | np.ndarray, qualifiers: Sequence[str] | None = None) -> GPSurrogate:
        """Fit on ``X`` (``n x d`` double) and ``y`` (``n``); ``qualifiers`` marks censored rows (``<``/``>``).

        Sets ``model_`` (a BoTorch model), ``train_X_`` (``n x d``), ``train_y_`` (``n``, censored rows
        imputed) and ``imputed_`` (``n`` bool).
        """
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
            if (~cens).sum() >= 2:
                first = self._fit_model(X[~cens], y[~cens])
                mu, sd = _predict(first, X[cens])
                guess = truncated_normal_mean(y[cens], cq, mu, sd)
            else:
                guess = fallback_values(y[cens], cq, self.lower, self.upper)
            y_fit[cens] = clip_to_interval(guess, y[cens], cq, self.lower, self.upper)
        self.model_ = self._fit_model(X, y_fit)
        self.train_X_, self.train_y_, self.imputed_ = X, y_fit, cens
        return self

    def _build(self, X: Tensor, y: np.ndarray) -> SingleTaskGP:
        Y = torch.as_tensor(y, dtype=torch.double).reshape(-1, 1)
        tf = FlooredStandardize(m=1, min_scale=self.scale_floor)
        if self.cat_dims:
            return MixedSingleTaskGP(X, Y, cat_dims=self.cat_dims, outcome_transform=tf)
        return SingleTaskGP(X, Y, outcome_transform=tf)

    def _fit_model(self, X: Tensor, y: np.ndarray) -> SingleTaskGP:
        if len(y) < MIN_ROWS_TO_TUNE:
            # Too few rows to learn hyper-parameters: the likelihood would shrink the signal
            # variance to nothing. Keep the priors' defaults and only condition on the data.
            return self._build(X, y).eval()
        last: Exception | None = None
        for jitter in _JITTERS:
            model = self._build(X, y)
            mll = ExactMarginalLogLikelihood(model.likelihood, model)
            try:
                if jitter is None:
                    fit_gpytorch_mll(mll)
                else:
                    with gpsettings.cholesky_jitter(double=jitter):
                        fit_gpytorch_mll(mll)
                model.eval()
                return model
            except (ModelFittingError, NotPSDError, NanError, RuntimeError) as e:
                last = e
        raise SurrogateFitError(
            f"{self.name}: Gaussian-process fit failed after {len(_JITTERS)} attempts with growing jitter "
            f"({type(last).__name__}: {last}). Check for duplicated rows with contradictory values."
        )

    # ---- prediction ------------------------------------------------------------------------
    def predict(self, X: Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and std (including observation noise) at ``X`` (``n x d``); each ``n``."""
        if not hasattr(self, "model_"):
            raise NotFittedError(f"{self.name}: call fit() before predict()")
        return _predict(self.model_, X)

    # ---- persistence: tensors only, loadable with torch.load(weights_only=True) ------------
    def state(self) -> dict[str, Tensor]:
        if not hasattr(self, "model_"):
            raise NotFittedError(f"{self.name}: call fit() before saving")
        state = {f"model.{k}": v.detach().clone() for k, v in self.model_.state_dict().items()}
        state["train_X"] = self.train_X_.detach().clone()
        state["train_y"] = torch.as_tensor(self.train_y_)
        state["imputed"] = torch.as_tensor(self.imputed_)
        return state

    def save(self, path: str | Path) -> None:
        torch.save(self.state(), Path(path))

    def load_state(self, state: dict[str, Tensor]) -> GPSurrogate:
        X, y = state["train_X"], state["train_y"].numpy()
        model = self._build(X, y)
        model.load_state_dict({k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")})
        model.eval()
        self.model_, self.train_X_, self.train_y_ = model, X, y
        self.imputed_ = state["imputed"].numpy()
        return self

    def load(self, path: str | Path) -> GPSurrogate:
        return self.load_state(torch.load(Path(path), weights_only=True))


def _predict(model: SingleTaskGP, X: Tensor) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        post = model.posterior(X, observation_noise=True)
        mean = post.mean.reshape(-1).numpy()
        std = post.variance.clamp_min(0).sqrt().reshape(-1).numpy()
    return mean, std


def model_list(surrogates: Sequence[GPSurrogate]) -> ModelListGP:
    """One BoTorch model with an output per surrogate (each keeps its own training rows)."""
    return ModelListGP(*[s.model_ for s in surrogates])


def loo_predict(surrogate: GPSurrogate) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form leave-one-out predictive mean and std (``n`` each, target units) at the training rows.

    Uses the fitted hyper-parameters (they saw every row, so this is slightly optimistic) and
    ``mu_i = y_i - [K^-1 r]_i / [K^-1]_ii``, ``var_i = 1 / [K^-1]_ii`` with ``K`` the noisy covariance
    and ``r`` the residual from the prior mean, both in standardized units.
    """
    model = surrogate.model_
    X = model.train_inputs[0]
    y = model.train_targets  # standardized, n
    with torch.no_grad():
        prior = model.forward(X)
        noise = model.likelihood.noise.reshape(-1)
        K = prior.covariance_matrix + noise * torch.eye(len(y), dtype=y.dtype)
        K_inv = torch.cholesky_inverse(torch.linalg.cholesky(K))
        r = y - prior.mean
        diag = K_inv.diagonal()
        mu = y - (K_inv @ r) / diag
        var = 1.0 / diag
    tf = model.outcome_transform
    scale = float(tf.stdvs.reshape(-1)[0])
    shift = float(tf.means.reshape(-1)[0])
    return (mu.numpy() * scale + shift), (var.clamp_min(0).sqrt().numpy() * scale)


def hyperparameters(surrogate: GPSurrogate) -> dict[str, float]:
    """Named scalar hyper-parameters of the fitted model (lengthscales flattened), for logging."""
    out: dict[str, float] = {}
    for name, module in surrogate.model_.named_modules():
        for attr in ("lengthscale", "outputscale", "noise"):
            if hasattr(module, f"raw_{attr}"):
                value = getattr(module, attr).detach().reshape(-1).tolist()
                for i, v in enumerate(value):
                    key = f"{name}.{attr}" if len(value) == 1 else f"{name}.{attr}.{i}"
                    out[key] = v
    return out
