"""Surrogates (GP, gradient boosting, constant): recover smooth functions, calibrated intervals,
censoring, descriptors, tuning, cross-validation, save/load."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import truncnorm

from surrogate.base import ConstantSurrogate
from surrogate.censoring import truncated_normal_mean
from surrogate.encoding import CategoricalFeature, ContinuousFeature, Encoder
from surrogate.errors import NotFittedError
from surrogate.features import DescriptorTable, Featurizer
from surrogate.gbm import GBMParams, GBMSurrogate
from surrogate.gp import GPSurrogate
from surrogate.importance import permutation_importance
from surrogate.io import surrogate_from_json
from surrogate.selection import choose, cross_validate, cv_splits
from surrogate.tuning import tune_gbm

ENC = Encoder((ContinuousFeature("t", 400, 800), CategoricalFeature("c", ("a", "b")), ContinuousFeature("x", 0, 1)))
CODES, ONEHOT = Featurizer(ENC), Featurizer(ENC, "onehot")


def _truth(frame: pd.DataFrame) -> np.ndarray:
    t = (frame.t.to_numpy() - 600) / 100
    return 50 * np.exp(-(t**2)) + np.where(frame.c == "a", 10.0, 0.0) + 5 * frame.x.to_numpy()


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"t": rng.uniform(400, 800, n), "c": rng.choice(["a", "b"], n), "x": rng.uniform(0, 1, n)})


def _models():
    return {
        "gp": GPSurrogate(CODES, scale_floor=5, noise_floor=0.5),
        "gp-onehot": GPSurrogate(ONEHOT, scale_floor=5, noise_floor=0.5),
        "gp-process": GPSurrogate(ONEHOT, scale_floor=5, noise_floor=0.5, kernel="process"),
        "gbm": GBMSurrogate(
            ONEHOT, params=GBMParams(n_estimators=150, learning_rate=0.1, max_depth=3), n_members=8, noise_floor=0.5
        ),
    }


def test_encoder_round_trip_and_not_applicable():
    frame = pd.DataFrame({"t": [400.0, 800.0], "c": ["b", ""], "x": [0.5, 1.0]})
    X = ENC.encode(frame)
    assert X.shape == (2, 3) and X[:, 0].tolist() == [0.0, 1.0] and X[:, 1].tolist() == [1.0, 2.0]
    back = ENC.decode(X)
    assert back[0] == {"t": 400.0, "c": "b", "x": 0.5} and back[1]["c"] is None
    with pytest.raises(ValueError, match="unknown category 'z'"):
        ENC.encode(pd.DataFrame({"t": [500.0], "c": ["z"], "x": [0.1]}))
    assert ONEHOT(X).tolist() == [[0.0, 0.0, 1.0, 0.5], [1.0, 0.0, 0.0, 1.0]]  # "does not apply" = no indicator


@pytest.mark.parametrize("kind", ["gp", "gp-onehot", "gbm"])
def test_model_recovers_smooth_function_with_calibrated_90_percent_intervals(kind):
    torch.manual_seed(0)
    rng = np.random.default_rng(3)
    train, test = _frame(80, 1), _frame(300, 2)
    y = _truth(train) + rng.normal(0, 1.0, len(train))
    model = _models()[kind].fit(ENC.encode(train), y)
    mu, sd = model.predict(ENC.encode(test))
    truth = _truth(test)
    rmse = float(np.sqrt(np.mean((mu - truth) ** 2)))
    assert rmse < 0.2 * truth.std(), rmse  # the function spans ~65 units, std ~17
    y_test = truth + rng.normal(0, 1.0, len(test))
    coverage = float(np.mean(np.abs(y_test - mu) <= 1.645 * sd))
    assert 0.8 <= coverage <= 0.97, coverage


def test_truncated_normal_mean_matches_scipy():
    mu, sd, c = np.array([20.0, 5.0]), np.array([8.0, 3.0]), np.array([10.0, 10.0])
    ours = truncated_normal_mean(c, ["<", ">"], mu, sd)
    ref_below = truncnorm.mean(-np.inf, (10 - 20) / 8, loc=20, scale=8)
    ref_above = truncnorm.mean((10 - 5) / 3, np.inf, loc=5, scale=3)
    assert ours == pytest.approx([ref_below, ref_above], rel=1e-9)


@pytest.mark.parametrize("kind", ["gp", "gbm"])
def test_censored_rows_are_imputed_on_the_right_side(kind):
    torch.manual_seed(0)
    train = _frame(20, 4)
    y = _truth(train)
    low = int(np.argmin(y))
    quals = [""] * len(y)
    quals[low] = "<"
    y_obs = y.copy()
    y_obs[low] = y[low] + 3.0  # "below this bound"
    model = _models()[kind]
    model.lower, model.upper = 0, 100
    model.fit(ENC.encode(train), y_obs, quals)
    assert model.imputed_[low] and model.imputed_.sum() == 1
    assert 0 <= model.train_y_[low] <= y_obs[low]
    assert np.array_equal(np.delete(model.train_y_, low), np.delete(y_obs, low))


def test_censored_fallback_without_a_model():
    X = ENC.encode(pd.DataFrame({"t": [400.0, 500.0], "c": ["a", "a"], "x": [0.0, 0.0]}))
    gp = GPSurrogate(CODES, scale_floor=20, lower=0, upper=100).fit(X, [10, 10], ["<", "<"])
    assert gp.train_y_.tolist() == [5.0, 5.0]  # midpoint of [0, 10]


def test_one_row_keeps_prior_scale():
    X = ENC.encode(pd.DataFrame({"t": [600.0], "c": ["a"], "x": [1.0]}))
    gp = GPSurrogate(CODES, scale_floor=8).fit(X, [22.7])
    far = ENC.encode(pd.DataFrame({"t": [400.0], "c": ["b"], "x": [0.0]}))
    _, sd = gp.predict(far)
    assert sd[0] > 8.0  # not the ~0.5 a likelihood fit on one point would give


def test_noise_floor_keeps_a_gp_from_claiming_more_precision_than_the_measurement():
    torch.manual_seed(0)
    train = _frame(30, 7)
    y = _truth(train)  # noise-free: an unconstrained GP drives the noise to ~0
    X = ENC.encode(train)
    _, sd = GPSurrogate(ONEHOT, scale_floor=5, noise_floor=2.0).fit(X, y).predict(X)
    assert sd.min() >= 2.0 * 0.99


@pytest.mark.parametrize("case", ["nan-input", "overflowing-values"])
def test_a_gp_fit_that_cannot_succeed_is_reported_by_target_name(case):
    from surrogate.errors import SurrogateFitError

    X = ENC.encode(_frame(10, 1))
    y = _truth(_frame(10, 1))
    if case == "nan-input":
        X[3, 0] = float("nan")
    else:
        y = np.array([1e308, -1e308] * 5)
    with pytest.raises(
        SurrogateFitError, match=r"^plqy: Gaussian-process fit failed after 3 attempts with growing jitter"
    ):
        GPSurrogate(ONEHOT, name="plqy").fit(X, y)


def _mll(model: GPSurrogate) -> float:
    from gpytorch.mlls import ExactMarginalLogLikelihood

    gp = model.model_
    gp.train()
    try:
        with torch.no_grad():
            out = gp(*gp.train_inputs)
            return float(ExactMarginalLogLikelihood(gp.likelihood, gp)(out, gp.train_targets).sum())
    finally:
        gp.eval()


def test_warm_start_reaches_the_cold_optimum_and_only_from_a_matching_gp():
    torch.manual_seed(0)
    rng = np.random.default_rng(3)
    frame = _frame(68, 8)
    y = _truth(frame) + rng.normal(0, 1.0, len(frame))
    X = ENC.encode(frame)
    previous = GPSurrogate(ONEHOT, scale_floor=5, noise_floor=0.5).fit(X[:60], y[:60])
    warm = GPSurrogate(ONEHOT, scale_floor=5, noise_floor=0.5).warm_start(previous)
    assert set(warm.init_params_) == {k for k, _ in previous.model_.named_parameters()}
    assert not hasattr(warm.clone(), "init_params_")  # CV folds start cold
    start = warm._build(X, y)
    warm._apply_init(start)  # the first fit attempt starts from the previous optimum
    for k, v in start.named_parameters():
        torch.testing.assert_close(v, previous.model_.get_parameter(k))
    warm.fit(X, y)
    cold = GPSurrogate(ONEHOT, scale_floor=5, noise_floor=0.5).fit(X, y)
    assert _mll(warm) >= _mll(cold) - 0.02  # per-row marginal log likelihood: same optimum or better
    Xt = ENC.encode(_frame(20, 9))
    np.testing.assert_allclose(warm.predict(Xt)[0], cold.predict(Xt)[0], atol=0.05 * np.std(y))
    # a GP on other features (codes) or another kind is no warm start for a one-hot GP
    assert not hasattr(
        GPSurrogate(ONEHOT).warm_start(GPSurrogate(CODES, scale_floor=5).fit(X[:20], y[:20])), "init_params_"
    )
    assert not hasattr(GPSurrogate(ONEHOT).warm_start(ConstantSurrogate(ONEHOT).fit(X, y)), "init_params_")


def test_a_fit_retried_under_cholesky_jitter_fits_and_restores_the_setting():
    """The retries after a failed fit run under GPyTorch's Cholesky jitter for doubles (the retry once passed a keyword
    the setting does not take, so it raised TypeError instead of fitting). Each jitter fits the same optimum, and the
    setting is back to its default afterwards."""
    from linear_operator.settings import cholesky_jitter

    torch.manual_seed(0)
    frame = _frame(20, 16)
    y = _truth(frame) + np.random.default_rng(7).normal(0, 1.0, len(frame))
    X = ENC.encode(frame)
    gp = GPSurrogate(ONEHOT, scale_floor=5, noise_floor=0.5)
    default = cholesky_jitter.value(torch.double)
    plain = gp._fit_attempt(X, y, None, warm=False)
    F = ONEHOT(ENC.encode(_frame(10, 17)))
    for jitter in (1e-5, 1e-3):
        model = gp._fit_attempt(X, y, jitter, warm=False)
        assert cholesky_jitter.value(torch.double) == default
        for k, v in model.named_parameters():
            torch.testing.assert_close(v, plain.get_parameter(k), atol=1e-3, rtol=1e-3)
        with torch.no_grad():
            torch.testing.assert_close(model.posterior(F).mean, plain.posterior(F).mean, atol=1e-2, rtol=1e-3)


def test_hyperparameters_learned_on_a_subset_then_conditioned_on_every_row():
    """``fit_rows``: the marginal likelihood is searched on a seeded subset, the posterior uses every row: at new
    recipes its error stays near the full fit's."""
    torch.manual_seed(0)
    frame = _frame(120, 12)
    y = _truth(frame) + np.random.default_rng(4).normal(0, 1.0, len(frame))
    X, Xt = ENC.encode(frame), ENC.encode(_frame(40, 13))
    full = GPSurrogate(ONEHOT, scale_floor=5, noise_floor=0.5).fit(X, y)
    sub = GPSurrogate(ONEHOT, scale_floor=5, noise_floor=0.5, fit_rows=40).fit(X, y)
    assert sub.model_.train_inputs[0].shape[0] == 120  # conditioned on all rows
    assert sub.hyperparameters() != full.hyperparameters()  # learned on 40 of them
    again = GPSurrogate(ONEHOT, scale_floor=5, noise_floor=0.5, fit_rows=40).fit(X, y)
    assert again.hyperparameters() == sub.hyperparameters()  # the subset is seeded
    truth = _truth(_frame(40, 13))
    rmse = {k: float(np.sqrt(np.mean((m.predict(Xt)[0] - truth) ** 2))) for k, m in (("full", full), ("sub", sub))}
    assert rmse["sub"] < 1.5 * rmse["full"] + 0.5, rmse
    # the setting travels with the model (clones for cross-validation, JSON) and is checked
    assert sub.clone().fit_rows == 40 and "fit_rows" not in full.settings()
    other = surrogate_from_json(json.loads(json.dumps(sub.to_json())))
    np.testing.assert_allclose(other.predict(Xt)[0], sub.predict(Xt)[0], rtol=1e-10)
    with pytest.raises(ValueError, match="fit_rows"):
        GPSurrogate(ONEHOT, fit_rows=3)


def test_folds_can_keep_the_hyperparameters_of_a_fit_on_all_rows():
    """Cross-validation of large data (``models.cv_refit_rows``): every fold's GP, and the imputer of its censored
    rows, keeps the given hyper-parameters and conditions on the fold's rows only."""
    torch.manual_seed(0)
    frame = _frame(60, 14)
    y = _truth(frame) + np.random.default_rng(5).normal(0, 1.0, len(frame))
    q = [""] * 60
    q[:5] = ["<"] * 5
    X = ENC.encode(frame)
    full = GPSurrogate(ONEHOT, scale_floor=5, noise_floor=0.5).fit(X, y, q)
    fixed = GPSurrogate(ONEHOT, scale_floor=5, noise_floor=0.5).with_hyperparameters_of(full)
    fold = fixed.clone().fit(X[:40], y[:40], q[:40])
    assert fold.hyperparameters() == full.hyperparameters()
    assert fold.model_.train_inputs[0].shape[0] == 40
    assert fixed._imputer().fixed_params_ is fixed.fixed_params_
    res = cross_validate(fixed, X, y, q, cv_splits(60, 5, 1, 0, 20))
    refit = cross_validate(GPSurrogate(ONEHOT, scale_floor=5, noise_floor=0.5), X, y, q, cv_splits(60, 5, 1, 0, 20))
    assert res.scores.n_scored == refit.scores.n_scored == 55
    assert abs(res.scores.nlpd - refit.scores.nlpd) < 0.5 and res.scores.rmse < 2 * refit.scores.rmse


def test_k_fold_scores_only_as_many_folds_as_the_held_out_budget_needs():
    every = cv_splits(500, 5, 1, 0, 20)
    capped = cv_splits(500, 5, 1, 0, 20, max_scored=250)
    assert len(every) == 5 and len(capped) == 3  # 100 + 100 + 100 held out reach 250
    for (a_tr, a_te), (b_tr, b_te) in zip(every, capped):  # the same folds, the first three of them
        assert np.array_equal(a_te, b_te) and np.array_equal(a_tr, b_tr)
    assert len(cv_splits(113, 5, 1, 0, 20, max_scored=250)) == 5  # smaller data: every fold
    assert len(cv_splits(5000, 5, 1, 0, 20, max_scored=250)) == 2  # never fewer than two folds
    assert len(cv_splits(12, 5, 1, 0, 20, max_scored=2)) == 12  # leave-one-out is never cut


@pytest.mark.parametrize("kernel", ["rbf", "process", "process-fixed-share"])
def test_fast_marginal_likelihood_equals_gpytorchs_value_and_gradient(kernel):
    """The NumPy closure kiln fits one-hot and descriptor GPs with gives GPyTorch's objective and autograd gradient,
    the latter in the logarithms of the length-scales and the noise that its vector holds (random hyper-parameters,
    censored-free data, noise at its floor and above), the same fitted optimum as BoTorch's own search, and
    steps aside (``None``) for a model it does not cover; for the default kernel and the process kernel, whose
    share is learned or fixed."""
    from botorch.optim.closures import get_loss_closure_with_grads
    from botorch.optim.utils import get_parameters_and_bounds
    from gpytorch.mlls import ExactMarginalLogLikelihood

    from surrogate.fast_mll import fast_closure

    torch.manual_seed(0)
    frame = _frame(17, 21)
    y = _truth(frame) + np.random.default_rng(6).normal(0, 1.0, len(frame))
    X = ENC.encode(frame)
    kind = "rbf" if kernel == "rbf" else "process"
    gp = GPSurrogate(ONEHOT, scale_floor=5, noise_floor=0.5, kernel=kind)
    for noise in ("floor", 0.3):
        model = gp._build(X, y)
        mll = ExactMarginalLogLikelihood(model.likelihood, model).train()
        rbfs = [model.covar_module] if kind == "rbf" else [model.covar_module.full, model.covar_module.process]
        with torch.no_grad():
            for rbf in rbfs:
                rbf.raw_lengthscale.uniform_(0.1, 3.0)
            if kind == "process":
                model.covar_module.raw_weight.fill_(0.3)
                model.covar_module.raw_weight.requires_grad_(kernel == "process")
            model.mean_module.raw_constant.fill_(0.4)
            raw = model.likelihood.noise_covar.raw_noise
            raw.fill_(
                float(model.likelihood.noise_covar.raw_noise_constraint.lower_bound) if noise == "floor" else noise
            )
        params = {k: p for k, p in get_parameters_and_bounds(mll)[0].items() if p.requires_grad}
        want_value, want_grads = get_loss_closure_with_grads(mll, parameters=params)()
        closure = fast_closure(mll)
        value, grad = closure()
        np.testing.assert_allclose(value, float(want_value.detach()), rtol=1e-12, atol=1e-12)
        # the optimizer's vector holds the length-scales and the noise as logarithms: d/dz = x d/dx
        theta = torch.cat([p.detach().reshape(-1) for p in params.values()]).numpy()
        logged = closure.log_scaled
        assert logged.sum() == theta.size - 1 - (kernel == "process")  # all but the mean (and the share)
        np.testing.assert_allclose(closure.state, np.where(logged, np.log(np.where(logged, theta, 1)), theta))
        want = torch.cat([w.reshape(-1) for w in want_grads]).numpy() * np.where(logged, theta, 1.0)
        np.testing.assert_allclose(grad, want, rtol=1e-9, atol=1e-12)
        x = closure.state  # the optimizer's vector: read at it, not at the parameters
        with torch.no_grad():
            rbfs[0].raw_lengthscale.mul_(2.0)
        np.testing.assert_array_equal(closure(x)[1], grad)
        bad_value, bad_grad = closure(np.full_like(x, np.nan))  # as BoTorch's closure: NaN, not an exception
        assert np.isnan(bad_value) and np.isnan(bad_grad).all()
    if kernel == "process-fixed-share":
        return
    fast = GPSurrogate(ONEHOT, scale_floor=5, noise_floor=0.5, kernel=kind).fit(X, y)
    slow = GPSurrogate(ONEHOT, scale_floor=5, noise_floor=0.5, kernel=kind)
    slow.model_ = slow._build(X, y)
    from botorch.fit import fit_gpytorch_mll

    fit_gpytorch_mll(ExactMarginalLogLikelihood(slow.model_.likelihood, slow.model_))
    assert abs(_mll(fast) - _mll(slow)) < (1e-6 if kind == "rbf" else 1e-5)  # same optimum (per-row log likelihood)
    mixed = GPSurrogate(CODES, scale_floor=5)._build(X, y)  # MixedSingleTaskGP: BoTorch's own closure
    assert fast_closure(ExactMarginalLogLikelihood(mixed.likelihood, mixed)) is None


def _shared_or_not(frame: pd.DataFrame, shared: bool) -> np.ndarray:
    """A peak in ``t`` that category ``b`` shares with ``a`` at a level of its own (10 lower), or turns into a dip."""
    peak = 40 * np.exp(-(((frame.t.to_numpy() - 600) / 150) ** 2))
    return np.where(frame.c == "a", peak, peak - 10 if shared else -peak)


@pytest.mark.parametrize("shared", [True, False])
def test_the_process_kernel_carries_the_conditions_to_a_category_not_tried_there(shared):
    """Category ``b`` measured only below 500 C, ``a`` everywhere: where ``b`` shares ``a``'s broad peak, the process
    kernel predicts it at 560-640 C from ``a``'s rows (the default kernel cannot), and gives its shared half the
    largest share; where ``b``'s response is the opposite, the smallest, and predicts no worse than the default."""
    rng = np.random.default_rng(5)
    t_a, t_b = np.linspace(400, 800, 14), rng.uniform(400, 500, 6)
    train = pd.DataFrame({"t": np.r_[t_a, t_b], "c": ["a"] * 14 + ["b"] * 6, "x": rng.uniform(0, 1, 20)})
    y = _shared_or_not(train, shared) + rng.normal(0, 0.5, len(train))
    test = pd.DataFrame({"t": np.linspace(560, 640, 9), "c": "b", "x": 0.5})
    errors, weights = {}, {}
    for kernel in ("rbf", "process"):
        torch.manual_seed(0)
        model = GPSurrogate(ONEHOT, scale_floor=5, noise_floor=0.5, kernel=kernel).fit(ENC.encode(train), y)
        mean = model.predict(ENC.encode(test))[0]
        errors[kernel] = float(np.sqrt(np.mean((mean - _shared_or_not(test, shared)) ** 2)))
        weights[kernel] = model.hyperparameters().get("covar_module.weight")
    if shared:
        assert errors["process"] < 0.5 * errors["rbf"] and weights["process"] > 0.45, (errors, weights)
    else:
        assert errors["process"] < 1.1 * errors["rbf"] and weights["process"] < 0.1, (errors, weights)
    assert weights["rbf"] is None
    from gpytorch.kernels import RBFKernel

    for column, feature in (("t", ENC.features[0]), ("c", ENC.features[1])):  # nothing to share, or nothing to share by
        encoder = Encoder((feature,))
        gp = GPSurrogate(Featurizer(encoder, "onehot"), scale_floor=5, kernel="process")
        assert type(gp._build(encoder.encode(train[[column]]), y).covar_module) is RBFKernel
    with pytest.raises(ValueError, match="one-hot or descriptor"):
        GPSurrogate(CODES, kernel="process")
    with pytest.raises(ValueError, match="kernel"):
        GPSurrogate(ONEHOT, kernel="matern")


def test_forest_loads_the_scikit_learn_trees_earlier_model_files_hold():
    """Model files written before XGBoost grew the trees hold scikit-learn's: they pass the forest's checks (a split's
    children come after it) and predict what scikit-learn does."""
    from sklearn.ensemble import GradientBoostingRegressor

    from surrogate.forest import Forest

    rng = np.random.default_rng(1)
    X = rng.random((60, 4))
    y = X[:, 0] + np.sin(5 * X[:, 1])
    members = [GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=i).fit(X, y) for i in range(2)]
    trees = [
        [
            {
                "left": t.tree_.children_left.tolist(),
                "right": t.tree_.children_right.tolist(),
                "feature": t.tree_.feature.tolist(),
                "threshold": t.tree_.threshold.tolist(),
                "value": t.tree_.value.reshape(-1, 1).tolist(),  # nested, as scikit-learn keeps them
            }
            for t in m.estimators_[:, 0]
        ]
        for m in members
    ]
    start = [float(m.init_.constant_.reshape(-1)[0]) for m in members]
    doc = json.loads(json.dumps({"start": start, "learning_rate": 0.1, "n_features": 4, "trees": trees}))
    expected = np.stack([m.predict(X[:9]) for m in members])
    np.testing.assert_allclose(Forest.from_json(doc).predict(X[:9]), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["gp", "gp-onehot", "gp-process", "gbm"])
def test_save_load_through_json_gives_same_predictions(kind):
    torch.manual_seed(0)
    train = _frame(15, 5)
    y = _truth(train)
    q = [""] * len(y)
    q[0] = "<"
    model = _models()[kind].fit(ENC.encode(train), y, q)
    doc = json.loads(json.dumps(model.to_json()))  # through text, as on disk
    other = surrogate_from_json(doc)
    assert type(other) is type(model) and other.label == model.label
    Xt = ENC.encode(_frame(10, 6))
    # a GBM fitted in this process predicts with XGBoost's float32 sums, a loaded one adds the same leaves in float64
    rtol = 1e-6 if kind == "gbm" else 1e-10
    for a, b in zip(model.predict(Xt), other.predict(Xt)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-12)
    assert json.loads(json.dumps(other.to_json())) == doc  # and the loaded model saves what it loaded


def test_gp_marginals_and_the_one_recipe_posterior_equal_gpytorchs():
    """The GP's cached-Cholesky marginals and the joint model's q = 1 shortcut give GPyTorch's posterior."""
    from surrogate.base import Surrogate
    from surrogate.joint import JointModel

    torch.manual_seed(0)
    train = _frame(20, 7)
    models = [m.fit(ENC.encode(train), _truth(train)) for m in _models().values()]
    Xt = ENC.encode(pd.concat([_frame(30, 8), train.head(3)]))  # new recipes and measured ones
    with torch.no_grad():
        for m in models:
            mean, var = m.marginal(Xt)
            want_mean, want_var = Surrogate.marginal(m, Xt)  # through the MVN
            torch.testing.assert_close(mean, want_mean, rtol=1e-9, atol=1e-9)
            torch.testing.assert_close(var, want_var, rtol=1e-7, atol=1e-9)
        joint = JointModel(models)
        post = joint.posterior(Xt.unsqueeze(-2))  # batch x 1 x d: the shortcut
        mvns = [m.mvn(Xt.unsqueeze(-2)) for m in models]
        torch.testing.assert_close(post.mean, torch.stack([d.mean for d in mvns], dim=-1), rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(post.variance, torch.stack([d.variance for d in mvns], dim=-1), rtol=1e-7, atol=1e-9)


def test_predict_before_fit_and_bad_inputs():
    gp = GPSurrogate(CODES, name="plqy")
    with pytest.raises(NotFittedError, match="plqy: call fit"):
        gp.predict(torch.zeros(1, 3, dtype=torch.double))
    with pytest.raises(ValueError, match="NaN"):
        gp.fit(torch.zeros(2, 3, dtype=torch.double), [1.0, float("nan")])


@pytest.mark.parametrize(
    "params, match",
    [
        ({"learning_rate": 0.0}, r"learning_rate = 0.0: must be a number in \(0, 1\]"),
        ({"n_estimators": 0}, r"n_estimators = 0: must be an integer in \[1, 5000\]"),
        ({"max_depth": 2.5}, r"max_depth = 2.5: must be an integer"),
        ({"subsample": 1.5}, r"subsample = 1.5"),
        ({"min_samples_leaf": 0}, r"min_samples_leaf = 0"),
    ],
)
def test_bad_gbm_hyperparameters_fail_clearly(params, match):
    with pytest.raises(ValueError, match=match):
        GBMParams(**params)


def test_bad_ensemble_size_and_tuning_budget_fail_clearly():
    with pytest.raises(ValueError, match="n_members = 1: must be an integer >= 2"):
        GBMSurrogate(ONEHOT, n_members=1)
    train = _frame(12, 1)
    with pytest.raises(ValueError, match="n_trials = 0"):
        tune_gbm(ONEHOT, ENC.encode(train), _truth(train), n_trials=0)


def test_optuna_tuning_is_seeded_bounded_and_prunes():
    train = _frame(40, 8)
    X, y = ENC.encode(train), _truth(train) + np.random.default_rng(0).normal(0, 1, 40)
    a = tune_gbm(ONEHOT, X, y, n_trials=12, seed=3)
    b = tune_gbm(ONEHOT, X, y, n_trials=12, seed=3)
    assert a.params == b.params and a.best_rmse == b.best_rmse
    assert len(a.trials) == 12 and {t["state"] for t in a.trials} <= {"COMPLETE", "PRUNED"}
    assert 20 <= a.params.n_estimators <= 250 and 0.01 <= a.params.learning_rate <= 0.3
    assert a.best_rmse < y.std()  # better than predicting the mean


def test_cross_validation_prefers_a_real_model_over_the_constant_on_a_smooth_function():
    torch.manual_seed(0)
    train = _frame(30, 9)
    X, y = ENC.encode(train), _truth(train) + np.random.default_rng(1).normal(0, 1, 30)
    splits = cv_splits(len(y), folds=5, repeats=1, seed=0, loo_max_rows=0)
    assert len(splits) == 5 and sorted(np.concatenate([te for _, te in splits]).tolist()) == list(range(30))
    gp = cross_validate(_models()["gp-onehot"], X, y, None, splits)
    const = cross_validate(ConstantSurrogate(CODES, scale_floor=5), X, y, None, splits)
    assert gp.scores.rmse < 0.5 * const.scores.rmse and gp.scores.nlpd < const.scores.nlpd
    assert choose([const, gp]) is gp and gp.scores.n_scored == 30
    assert len(cv_splits(8, 5, 2, 0, loo_max_rows=20)) == 8  # leave-one-out on few rows


def test_cross_validation_never_scores_censored_rows():
    train = _frame(10, 2)
    y = _truth(train)
    q = ["<"] * 3 + [""] * 7
    res = cross_validate(ConstantSurrogate(CODES, scale_floor=5), ENC.encode(train), y, q, cv_splits(10, 5, 1, 0, 20))
    assert res.scores.n_scored == 7 and sorted(res.y.tolist()) == sorted(y[3:].tolist())


CARB = Encoder((ContinuousFeature("t", 400, 800), CategoricalFeature("carb", ("Na", "K", "Cs"), extra=("Rb",))))
RADIUS = DescriptorTable(("radius",), {"Na": (102.0,), "K": (138.0,), "Rb": (152.0,), "Cs": (167.0,)})


def test_descriptors_place_an_untried_category_between_its_neighbours():
    """y rises with cation radius; a descriptor GP predicts Rb (never seen) between K and Cs."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n = 30
    carb = rng.choice(["Na", "K", "Cs"], n)
    frame = pd.DataFrame({"t": rng.uniform(400, 800, n), "carb": carb})
    radius = np.array([RADIUS.values[c][0] for c in carb])
    y = 0.5 * (radius - 100) + rng.normal(0, 0.5, n)
    desc = Featurizer(CARB, "descriptors", {"carb": RADIUS})
    assert desc(CARB.encode(pd.DataFrame({"t": [400.0], "carb": ["Rb"]})))[0, 1].item() == pytest.approx(50 / 65)
    gp = GPSurrogate(desc, scale_floor=5, noise_floor=0.5).fit(CARB.encode(frame), y)
    query = CARB.encode(pd.DataFrame({"t": [600.0] * 3, "carb": ["K", "Rb", "Cs"]}))
    mu, sd = gp.predict(query)
    assert mu[0] < mu[1] < mu[2] and abs(mu[1] - 0.5 * 52) < 3.0
    onehot = GPSurrogate(Featurizer(CARB, "onehot"), scale_floor=5, noise_floor=0.5).fit(CARB.encode(frame), y)
    _, sd_onehot = onehot.predict(query)
    assert sd_onehot[1] > 2 * sd[1]  # one-hot knows nothing of Rb


def test_descriptor_tables_are_checked():
    with pytest.raises(ValueError, match="no descriptors for \\['Cs'\\]"):
        Featurizer(CARB, "descriptors", {"carb": DescriptorTable(("r",), {"Na": (1.0,), "K": (2.0,), "Rb": (3.0,)})})
    with pytest.raises(ValueError, match="needs at least one descriptor table"):
        Featurizer(CARB, "descriptors")


def test_permutation_importance_finds_the_input_that_matters():
    torch.manual_seed(0)
    train = _frame(40, 11)
    y = 50 * np.exp(-(((train.t.to_numpy() - 600) / 100) ** 2))  # only t matters
    imp = permutation_importance(_models()["gbm"].fit(ENC.encode(train), y), n_repeats=3, seed=0)
    assert set(imp) == {"t", "c", "x"}
    assert imp["t"]["mean"] > 10 * max(imp["c"]["mean"], imp["x"]["mean"], 1e-3)


@pytest.mark.parametrize("kind", ["gp", "gp-onehot", "gp-process", "gbm", "constant"])
def test_marginals_are_the_posterior_diagonal(kind):
    """``marginal`` (what the acquisition scores candidates with) equals the mean and variance of ``mvn`` at
    each point, whatever the model."""
    from surrogate.joint import JointModel

    torch.manual_seed(0)
    train = _frame(20, 7)
    model = _models()[kind] if kind != "constant" else ConstantSurrogate(ONEHOT, scale_floor=5)
    model.fit(ENC.encode(train), _truth(train))
    X = ENC.encode(_frame(12, 8))
    mean, var = model.marginal(X)
    single = model.mvn(X.unsqueeze(-2))  # 12 one-point posteriors
    torch.testing.assert_close(mean, single.mean.squeeze(-1))
    torch.testing.assert_close(var, single.variance.squeeze(-1), rtol=1e-6, atol=1e-9)
    joint_mean, joint_var = JointModel([model, model]).marginals(X)
    assert joint_mean.shape == (12, 2) and torch.equal(joint_var[:, 1], var)


@pytest.mark.parametrize("kind", ["gp", "gp-onehot", "gp-process"])
def test_gp_predictions_and_draws_from_the_cached_factor_are_gpytorchs(kind):
    """A GP's predictions (observation noise included) and its Thompson draws come from the Cholesky factor cached
    once per model, not from GPyTorch's posterior: the same numbers to rounding, for a categorical kernel too."""
    from surrogate.base import Surrogate

    torch.manual_seed(0)
    train = _frame(20, 7)
    model = _models()[kind].fit(ENC.encode(train), _truth(train))
    X = ENC.encode(_frame(15, 8))
    mean, std = model.predict(X)
    with torch.no_grad():
        post = model.model_.posterior(model.featurizer(X), observation_noise=True)
        gp_mean, gp_std = post.mean.reshape(-1).numpy(), post.variance.sqrt().reshape(-1).numpy()
    np.testing.assert_allclose(mean, gp_mean, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(std, gp_std, rtol=1e-9, atol=1e-9)
    draw = model.sample(X, torch.Generator().manual_seed(3))
    via_mvn = Surrogate.sample(model, X, torch.Generator().manual_seed(3))  # the generic path: GPyTorch's MVN
    torch.testing.assert_close(draw, via_mvn, rtol=1e-7, atol=1e-7)
    assert not torch.allclose(draw, model.sample(X, torch.Generator().manual_seed(4)))


def test_one_recipe_posteriors_sample_as_gpytorchs_multitask_normal():
    """The acquisition's q = 1 posterior (``IndependentNormalPosterior``) gives, under the same quasi-random base
    samples, exactly the samples of the diagonal ``MultitaskMultivariateNormal`` it stands for."""
    from botorch.posteriors.gpytorch import GPyTorchPosterior
    from botorch.sampling import SobolQMCNormalSampler
    from gpytorch.distributions import MultitaskMultivariateNormal
    from linear_operator.operators import DiagLinearOperator

    from surrogate.joint import IndependentNormalPosterior

    gen = torch.Generator().manual_seed(0)
    mean = torch.randn(5, 3, 1, 4, generator=gen, dtype=torch.double)  # batch 5 x 3, q = 1, m = 4
    var = torch.rand(5, 3, 1, 4, generator=gen, dtype=torch.double) + 0.01
    ours = IndependentNormalPosterior(mean, var)
    theirs = GPyTorchPosterior(MultitaskMultivariateNormal(mean, DiagLinearOperator(var.squeeze(-2))))
    assert ours.base_sample_shape == theirs.base_sample_shape and ours.batch_range == theirs.batch_range
    got = SobolQMCNormalSampler(torch.Size([16]), seed=1)(ours)
    expected = SobolQMCNormalSampler(torch.Size([16]), seed=1)(theirs)
    assert got.shape == (16, 5, 3, 1, 4)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(ours.mean, theirs.mean)
    torch.testing.assert_close(ours.variance, theirs.variance)


def test_boost_grows_the_booster_xgboost_train_grows():
    """``surrogate.gbm.boost`` skips ``xgboost.train``'s per-round Python, not a round: the saved models are equal
    byte for byte, with and without row subsampling, from one round to many."""
    import xgboost as xgb

    from surrogate.gbm import boost

    rng = np.random.default_rng(0)
    for rows, features, rounds, subsample in [(12, 9, 100, 1.0), (30, 4, 37, 0.7), (5, 2, 1, 1.0), (40, 6, 250, 0.8)]:
        F, y = rng.random((rows, features)), rng.random(rows)
        params = {
            "objective": "reg:squarederror",
            "tree_method": "exact",
            "eta": 0.1,
            "max_depth": 3,
            "subsample": subsample,
            "lambda": 0.0,
            "base_score": float(y.mean()),
            "nthread": 1,
            "seed": 7,
            "verbosity": 0,
        }
        theirs = xgb.train(params, xgb.DMatrix(F, label=y, nthread=1), num_boost_round=rounds)
        ours = boost(params, xgb.DMatrix(F, label=y, nthread=1), rounds)
        assert bytes(ours.save_raw("json")) == bytes(theirs.save_raw("json"))
        assert len(json.loads(bytes(ours.save_raw("json")))["learner"]["gradient_booster"]["model"]["trees"]) == rounds


def test_forest_predicts_as_xgboost_after_a_trip_through_json():
    """A gradient-boosting model file holds its trees: loading rebuilds them (no refit) and every member predicts
    what the fitted XGBoost booster does (to float32 rounding of its sums); a row exactly on a split threshold goes
    left (scikit-learn's rule, XGBoost's sends it right), in the forest and in ``predict_booster`` alike; few rows
    (NumPy) and many (scikit-learn's compiled loop) alike; a damaged file is refused by name."""
    from surrogate.forest import NUMPY_MAX_PAIRS, Forest
    from surrogate.gbm import predict_booster

    rng = np.random.default_rng(0)
    X, F = rng.random((60, 5)), rng.random((40, 5))
    y = 3 * X[:, 0] + np.sin(6 * X[:, 1]) + rng.normal(0, 0.1, 60)
    params = GBMParams(n_estimators=60, max_depth=3, learning_rate=0.2, subsample=0.8)
    boosters = [params.booster(X, y, seed=i) for i in range(3)]
    forest = Forest.from_json(json.loads(json.dumps(Forest.from_boosters(boosters, 5).to_json())))
    expected = np.stack([b.inplace_predict(F).astype(np.float64) for b in boosters])
    np.testing.assert_allclose(forest.predict(F), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(forest.predict(F, [2])[0], expected[2], rtol=1e-6, atol=1e-6)
    assert np.abs(forest.predict(F)[0] - expected[1]).max() > 1e-3  # members differ (seeded subsamples)
    many = rng.random((700, 5))  # 700 rows x 180 trees: past NUMPY_MAX_PAIRS, scikit-learn's compiled loop routes them
    assert len(many) * 180 > NUMPY_MAX_PAIRS >= len(F) * 180
    expected_many = np.stack([b.inplace_predict(many).astype(np.float64) for b in boosters])
    np.testing.assert_allclose(forest.predict(many), expected_many, rtol=1e-6, atol=1e-6)
    root = json.loads(boosters[0].save_raw(raw_format="json"))["learner"]["gradient_booster"]["model"]["trees"][0]
    on_split = F[:1].copy()
    on_split[0, root["split_indices"][0]] = np.float32(root["split_conditions"][0])  # on the first tree's root split
    left = forest.predict(on_split, [0])[0, 0]
    np.testing.assert_allclose(left, predict_booster(boosters[0], on_split)[0], rtol=1e-6)
    assert abs(left - float(boosters[0].inplace_predict(on_split)[0])) > 1e-6  # XGBoost's own rule: right
    for damage in ("short", "cycle", "feature"):
        doc = Forest.from_boosters(boosters, 5).to_json()
        tree = doc["trees"][1][3]
        if damage == "short":
            tree["left"] = tree["left"][:-1]
        elif damage == "cycle":
            tree["left"][0] = 0  # the root its own child: routing would never reach a leaf
        else:
            tree["feature"][0] = 5
        with pytest.raises(ValueError, match="damaged"):
            Forest.from_json(doc)
