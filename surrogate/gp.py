"""Gaussian-process surrogate for one target on encoded inputs.

On ``codes`` features, BoTorch's ``MixedSingleTaskGP``: an RBF kernel on the continuous features
combined (sum and product) with a categorical kernel ``exp(-mismatch / lengthscale)`` on integer-coded
categories. On ``onehot`` or ``descriptors`` features, a ``SingleTaskGP`` with BoTorch's default ARD
kernel and priors (4-5x faster to fit). Outcomes are standardized with a floor on the scale so that a
target measured once or twice does not get a falsely tiny uncertainty, and the noise never goes below
the target's measurement noise floor.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from botorch.exceptions.errors import InputDataError, ModelFittingError
from botorch.exceptions.warnings import InputDataWarning
from botorch.fit import fit_gpytorch_mll
from botorch.models import MixedSingleTaskGP, SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from botorch.models.utils.gpytorch_modules import MIN_INFERRED_NOISE_LEVEL
from gpytorch import settings as gpsettings
from gpytorch.constraints import GreaterThan
from gpytorch.likelihoods import GaussianLikelihood
from gpytorch.means import ConstantMean
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import LogNormalPrior
from linear_operator.utils.errors import NanError, NotPSDError
from torch import Tensor

from surrogate.base import Surrogate, floored_scale, jittered_cholesky
from surrogate.errors import SurrogateFitError
from surrogate.fast_mll import fast_closure
from surrogate.process_kernel import ProcessKernel

MIN_ROWS_TO_TUNE = 3  # fewer measured rows: condition on them, keep prior hyper-parameters
_JITTERS = (None, 1e-5, 1e-3)  # cholesky jitter tried in turn when a fit fails
KERNELS = ("rbf", "process")


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


def _prior_mean(model, F: Tensor) -> Tensor:
    """The GP's prior mean at features ``F`` (``n x f``): ``n``. A constant mean is expanded here rather than by
    GPyTorch's ``ConstantMean``, whose ``torch.broadcast_shapes`` imports torch's symbolic shapes (SymPy: 0.4 s
    of a fresh ``kiln suggest``)."""
    if type(model.mean_module) is ConstantMean:
        return model.mean_module.constant.expand(F.shape[:-1])
    return model.mean_module(F)


def _predictive_factors(model) -> tuple[Tensor, Tensor, Tensor]:
    """Of a fitted GP in eval mode: training features (``n x f``), the lower Cholesky factor of the training
    covariance with noise (``n x n``) and ``alpha = K^-1 (y - m(X))`` (``n``), in the standardized outcome space;
    with growing jitter if the factorization fails, as GPyTorch does."""
    with torch.no_grad():
        train_F = model.train_inputs[0]
        y = model.train_targets
        K = model.covar_module(train_F).to_dense()
        K = K + model.likelihood.noise.reshape(-1) * torch.eye(len(K), dtype=K.dtype)
        for jitter in (0.0, 1e-8, 1e-6, 1e-4):
            L, info = torch.linalg.cholesky_ex(K + jitter * torch.eye(len(K), dtype=K.dtype))
            if int(info) == 0:
                break
        else:  # as GPyTorch's own factorization would
            raise NotPSDError("the training covariance is not positive definite, even with jitter 1e-4")
        alpha = torch.cholesky_solve((y - _prior_mean(model, train_F)).unsqueeze(-1), L).squeeze(-1)
    return train_F, L, alpha


class GPSurrogate(Surrogate):
    """Exact GP for one target: ``MixedSingleTaskGP`` on integer codes (``codes`` features), else
    ``SingleTaskGP`` (one-hot or descriptor features). Learned state: ``model_`` (a BoTorch model)."""

    kind = "gp"

    def __init__(self, featurizer, *, fit_rows: int | None = None, kernel: str = "rbf", **kwargs) -> None:
        """``fit_rows``: learn the hyper-parameters on at most this many rows, drawn at random (``seed``), then
        condition the GP on every row (subset-of-data hyper-parameters, exact posterior). Each step of the
        marginal-likelihood search costs O(rows^3), so at 500 rows a fit on all of them took 30 s.

        ``kernel``: ``rbf``, BoTorch's default ARD RBF; ``process``, a :class:`~surrogate.process_kernel.
        ProcessKernel` that shares the continuous inputs' effect across categorical choices (one-hot or descriptor
        features only; with no categorical or no continuous column it is the RBF)."""
        super().__init__(featurizer, **kwargs)
        if fit_rows is not None and not (isinstance(fit_rows, int) and fit_rows >= 16):
            raise ValueError(f"GPSurrogate.fit_rows = {fit_rows!r}: must be an integer >= 16 or None")
        if kernel not in KERNELS:
            raise ValueError(f"GPSurrogate.kernel = {kernel!r}: use one of {list(KERNELS)}")
        if kernel == "process" and featurizer.mode == "codes":
            raise ValueError(
                "GPSurrogate.kernel = 'process' needs one-hot or descriptor features; on integer codes the GP's "
                "categorical kernel already adds a continuous-only half"
            )
        self.fit_rows, self.kernel = fit_rows, kernel

    def settings(self) -> dict:
        own = {"fit_rows": self.fit_rows} if self.fit_rows is not None else {}
        return {**super().settings(), **own, **({"kernel": self.kernel} if self.kernel != "rbf" else {})}

    def warm_start(self, previous: Surrogate) -> GPSurrogate:
        """Start the next fit's hyper-parameter search from ``previous``'s fitted values.

        After a batch of a few experiments the hyper-parameters barely move, so L-BFGS converges
        in a fraction of the iterations. Only learned parameters (``raw_*``) whose shapes match are
        taken; ``previous`` of another kind or feature layout is ignored. Clones start cold, so
        cross-validation stays independent of earlier fits.
        """
        model = getattr(previous, "model_", None)
        if isinstance(previous, GPSurrogate) and model is not None and previous.featurizer.mode == self.featurizer.mode:
            self.init_params_ = {k: v.detach().clone() for k, v in model.named_parameters()}
        return self

    def _likelihood(self, y: np.ndarray) -> GaussianLikelihood:
        """BoTorch's default noise prior, with the noise floor (target units) as a lower bound."""
        scale = floored_scale(y, self.scale_floor)
        floor = max((self.noise_floor / scale) ** 2, MIN_INFERRED_NOISE_LEVEL)
        prior = LogNormalPrior(loc=-4.0, scale=1.0)
        init = max(float(prior.mode), 2 * floor)
        return GaussianLikelihood(
            noise_prior=prior, noise_constraint=GreaterThan(floor, transform=None, initial_value=init)
        )

    def _build(self, X: Tensor, y: np.ndarray) -> SingleTaskGP:
        with warnings.catch_warnings():
            # Outcomes are standardized with a floored scale on purpose (see FlooredStandardize).
            warnings.simplefilter("ignore", InputDataWarning)
            return self._construct(X, y)

    def _construct(self, X: Tensor, y: np.ndarray) -> SingleTaskGP:
        F = self.featurizer(X)
        Y = torch.as_tensor(y, dtype=torch.double).reshape(-1, 1)
        tf = FlooredStandardize(m=1, min_scale=self.scale_floor)
        lik = self._likelihood(y)
        cat_dims = self.featurizer.cat_dims
        if cat_dims:
            return MixedSingleTaskGP(F, Y, cat_dims=cat_dims, outcome_transform=tf, likelihood=lik)
        process = self.featurizer.continuous_columns if self.kernel == "process" else []
        if 0 < len(process) < F.shape[-1]:
            kernel = ProcessKernel(F.shape[-1], process)
            return SingleTaskGP(F, Y, covar_module=kernel, outcome_transform=tf, likelihood=lik)
        return SingleTaskGP(F, Y, outcome_transform=tf, likelihood=lik)

    def with_hyperparameters_of(self, fitted: GPSurrogate) -> GPSurrogate:
        """An unfitted copy whose fits keep ``fitted``'s hyper-parameters and only condition on their rows, as are
        its clones (cross-validation of large data, as Ax's ``cross_validate`` does by default)."""
        other = self.clone()
        other.fixed_params_ = {k: v.detach().clone() for k, v in fitted.model_.named_parameters()}
        return other

    def clone(self) -> GPSurrogate:
        other = super().clone()
        if hasattr(self, "fixed_params_"):
            other.fixed_params_ = self.fixed_params_
        return other

    def _fit(self, X: Tensor, y: np.ndarray) -> None:
        learned = getattr(self, "fixed_params_", None)
        if learned is None and self.fit_rows is not None and len(y) > self.fit_rows:
            rows = np.sort(np.random.default_rng(self.seed).choice(len(y), self.fit_rows, replace=False))
            learned = dict(self._fit_model(X[rows], y[rows]).named_parameters())
        if learned is None:
            self.model_ = self._fit_model(X, y)
            return
        model = self._build(X, y)
        with torch.no_grad():
            for name, value in model.named_parameters():
                value.copy_(learned[name])
        self.model_ = model.eval()

    def _fit_model(self, X: Tensor, y: np.ndarray) -> SingleTaskGP:
        """Fit, retrying with growing Cholesky jitter; any failure becomes a :class:`SurrogateFitError`
        naming the target (never a bare traceback)."""
        last: Exception | None = None
        for attempt, jitter in enumerate(_JITTERS):
            try:
                return self._fit_attempt(X, y, jitter, warm=attempt == 0)
            except (ModelFittingError, NotPSDError, NanError, InputDataError, RuntimeError, ValueError) as e:
                last = e
        raise SurrogateFitError(
            f"{self.name}: Gaussian-process fit failed after {len(_JITTERS)} attempts with growing jitter "
            f"({type(last).__name__}: {last}). Check the data for non-finite or extreme values and for "
            "duplicated recipes with contradictory results."
        )

    def _fit_attempt(self, X: Tensor, y: np.ndarray, jitter: float | None, warm: bool) -> SingleTaskGP:
        """One search of the hyper-parameters on ``X`` (``n x d``), ``y`` (``n``): under a Cholesky ``jitter`` for
        double precision (``None``: GPyTorch's default), from the warm start (:meth:`warm_start`) when ``warm``."""
        model = self._build(X, y)
        if len(y) < MIN_ROWS_TO_TUNE:
            # Too few rows to learn hyper-parameters: the likelihood would shrink the signal
            # variance to nothing. Keep the priors' defaults and only condition on the data.
            return model.eval()
        if warm:
            self._apply_init(model)
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        closure = fast_closure(mll)  # the same objective without PyTorch's per-operation overhead
        # ... searched over the logarithms of the length-scales and the noise (its bounds on that vector)
        options = None if closure is None else {"bounds": closure.bounds}
        with warnings.catch_warnings(), gpsettings.cholesky_jitter(double_value=jitter):
            warnings.simplefilter("ignore", InputDataWarning)
            fit_gpytorch_mll(mll, closure=closure, optimizer_kwargs=options)
        return model.eval()

    def _imputer(self) -> GPSurrogate:
        first = self.clone()
        if hasattr(self, "init_params_"):
            first.init_params_ = self.init_params_
        return first

    def _apply_init(self, model: SingleTaskGP) -> None:
        init = getattr(self, "init_params_", None)
        if not init:
            return
        own = dict(model.named_parameters())
        with torch.no_grad():
            for k, v in init.items():
                if k in own and own[k].shape == v.shape and torch.isfinite(v).all():
                    own[k].copy_(v)

    def _predict(self, X: Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of a new measurement (the noise-free :meth:`marginal` plus the likelihood's noise)."""
        with torch.no_grad():
            mean, var = self._marginal(X)
            noise = self.model_.likelihood.noise.reshape(()) * self._outcome_var()
            return mean.reshape(-1).numpy(), (var + noise).sqrt().reshape(-1).numpy()

    def mvn(self, X: Tensor):
        self._check_fitted()
        return self.model_.posterior(self.featurizer(X)).distribution

    def sample(self, X: Tensor, generator: torch.Generator) -> Tensor:
        """One joint draw of the noise-free target over the rows of ``X`` (``n x d``): ``n`` values (Thompson
        sampling). The joint posterior from the cached Cholesky factor (``cov = K** - V'V``, ``V = L^-1 K*'``, in
        standardized units, then scaled back), as :meth:`marginal` does for its diagonal: :meth:`mvn`'s to
        rounding, without GPyTorch's prediction caches and lazy tensors (0.7 s of a fresh ``kiln suggest``)."""
        self._check_fitted()
        with torch.no_grad():
            F = self.featurizer(X)
            mean, V = self._conditioned(F)
            cov = self.model_.covar_module(F).to_dense() - V.transpose(-1, -2) @ V
            mean, _ = self.model_.outcome_transform.untransform(mean.unsqueeze(-1))
            z = torch.randn(len(X), generator=generator, dtype=mean.dtype)
            return mean.reshape(-1) + jittered_cholesky(cov * self._outcome_var()) @ z

    def _conditioned(self, F: Tensor) -> tuple[Tensor, Tensor]:
        """At features ``F`` (``b x f``): the posterior mean in standardized units (``b``) and ``V = L^-1 K*'``
        (``N x b``), whose columns' inner products are what the training data explain of the prior covariance."""
        model, (train_F, L, alpha) = self.model_, self._factors()
        K_star = model.covar_module(F, train_F).to_dense()  # b x N
        mean = _prior_mean(model, F) + K_star @ alpha
        return mean, torch.linalg.solve_triangular(L, K_star.transpose(-1, -2), upper=False)

    def _outcome_var(self) -> Tensor:
        """The outcome transform's scale, squared: a standardized variance times this is in target units."""
        return self.model_.outcome_transform.stdvs.reshape(()).pow(2)

    def _factors(self) -> tuple[Tensor, Tensor, Tensor]:
        """:func:`_predictive_factors` of the fitted model, computed once."""
        cache = getattr(self, "_marginal_cache", None)
        if cache is None or cache[0] is not self.model_:
            cache = (self.model_, *_predictive_factors(self.model_))
            self._marginal_cache = cache
        return cache[1:]

    def marginal(self, X: Tensor) -> tuple[Tensor, Tensor]:
        """Noise-free posterior mean and variance at each row of ``X`` (``... x d``): two ``...``.

        The exact GP equations on a Cholesky factor cached once per fitted model (``mean = m + k*' alpha``,
        ``var = k** - |L^-1 k*|^2``, then the outcome transform undone): the values of :meth:`mvn` to rounding,
        without GPyTorch's lazy-tensor machinery, which cost about 5 ms per call, most of a small batch's time
        in the acquisition's local search.
        """
        self._check_fitted()
        return self._marginal(X)

    def _marginal(self, X: Tensor) -> tuple[Tensor, Tensor]:
        model, shape = self.model_, X.shape[:-1]
        F = self.featurizer(X.reshape(-1, X.shape[-1]))
        mean, v = self._conditioned(F)
        var = (model.covar_module(F, diag=True) - v.pow(2).sum(dim=0)).clamp_min(1e-12)
        mean, var = model.outcome_transform.untransform(mean.unsqueeze(-1), var.unsqueeze(-1))
        return mean.reshape(shape), var.reshape(shape)

    def hyperparameters(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, module in self.model_.named_modules():
            for attr in ("lengthscale", "outputscale", "noise", "weight"):
                if hasattr(module, f"raw_{attr}"):
                    value = getattr(module, attr).detach().reshape(-1).tolist()
                    for i, v in enumerate(value):
                        key = f"{name}.{attr}" if len(value) == 1 else f"{name}.{attr}.{i}"
                        out[key] = v
        return out

    # ---- persistence: the state dict as JSON lists (exact: floats round-trip through repr) --
    def _state_json(self) -> dict[str, dict]:
        return {
            k: {"shape": list(v.shape), "data": v.detach().reshape(-1).tolist()}
            for k, v in self.model_.state_dict().items()
        }

    def _load(self, X: Tensor, y: np.ndarray, state: dict[str, dict]) -> None:
        model = self._build(X, y)
        sd = model.state_dict()
        model.load_state_dict(
            {k: torch.tensor(v["data"], dtype=sd[k].dtype).reshape(v["shape"]) for k, v in state.items()}
        )
        self.model_ = model.eval()
