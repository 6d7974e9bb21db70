"""GP surrogate: recovers a smooth function, handles censoring, keeps honest uncertainty, saves/loads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import truncnorm

from surrogate.censoring import truncated_normal_mean
from surrogate.encoding import CategoricalFeature, ContinuousFeature, Encoder
from surrogate.errors import NotFittedError
from surrogate.gp import GPSurrogate, loo_predict

ENC = Encoder((ContinuousFeature("t", 400, 800), CategoricalFeature("c", ("a", "b")), ContinuousFeature("x", 0, 1)))


def _truth(frame: pd.DataFrame) -> np.ndarray:
    t = (frame.t.to_numpy() - 600) / 100
    return 50 * np.exp(-(t**2)) + np.where(frame.c == "a", 10.0, 0.0) + 5 * frame.x.to_numpy()


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"t": rng.uniform(400, 800, n), "c": rng.choice(["a", "b"], n), "x": rng.uniform(0, 1, n)})


def test_encoder_round_trip_and_not_applicable():
    frame = pd.DataFrame({"t": [400.0, 800.0], "c": ["b", ""], "x": [0.5, 1.0]})
    X = ENC.encode(frame)
    assert X.shape == (2, 3) and X[:, 0].tolist() == [0.0, 1.0] and X[:, 1].tolist() == [1.0, 2.0]
    back = ENC.decode(X)
    assert back[0] == {"t": 400.0, "c": "b", "x": 0.5} and back[1]["c"] is None
    with pytest.raises(ValueError, match="unknown category 'z'"):
        ENC.encode(pd.DataFrame({"t": [500.0], "c": ["z"], "x": [0.1]}))


def test_gp_recovers_smooth_function_with_calibrated_intervals():
    torch.manual_seed(0)
    train, test = _frame(40, 1), _frame(200, 2)
    rng = np.random.default_rng(3)
    y = _truth(train) + rng.normal(0, 1.0, len(train))
    gp = GPSurrogate(cat_dims=ENC.cat_dims, scale_floor=5).fit(ENC.encode(train), y)
    mu, sd = gp.predict(ENC.encode(test))
    truth = _truth(test)
    rmse = float(np.sqrt(np.mean((mu - truth) ** 2)))
    assert rmse < 3.0, rmse  # the function spans ~65 units
    y_test = truth + rng.normal(0, 1.0, len(test))
    coverage = float(np.mean(np.abs(y_test - mu) <= 1.645 * sd))
    assert 0.75 <= coverage <= 1.0, coverage
    loo_mu, loo_sd = loo_predict(gp)
    assert np.sqrt(np.mean((loo_mu - y) ** 2)) < 5.0


def test_truncated_normal_mean_matches_scipy():
    mu, sd, c = np.array([20.0, 5.0]), np.array([8.0, 3.0]), np.array([10.0, 10.0])
    ours = truncated_normal_mean(c, ["<", ">"], mu, sd)
    ref_below = truncnorm.mean(-np.inf, (10 - 20) / 8, loc=20, scale=8)
    ref_above = truncnorm.mean((10 - 5) / 3, np.inf, loc=5, scale=3)
    assert ours == pytest.approx([ref_below, ref_above], rel=1e-9)


def test_censored_rows_are_imputed_on_the_right_side():
    torch.manual_seed(0)
    train = _frame(20, 4)
    y = _truth(train)
    low = int(np.argmin(y))
    quals = [""] * len(y)
    quals[low] = "<"
    y_obs = y.copy()
    y_obs[low] = y[low] + 3.0  # "below this bound"
    gp = GPSurrogate(cat_dims=ENC.cat_dims, scale_floor=5, lower=0, upper=100).fit(ENC.encode(train), y_obs, quals)
    assert gp.imputed_[low] and gp.imputed_.sum() == 1
    assert 0 <= gp.train_y_[low] <= y_obs[low]
    assert np.array_equal(np.delete(gp.train_y_, low), np.delete(y_obs, low))


def test_censored_fallback_without_a_model():
    X = ENC.encode(pd.DataFrame({"t": [400.0, 500.0], "c": ["a", "a"], "x": [0.0, 0.0]}))
    gp = GPSurrogate(cat_dims=ENC.cat_dims, scale_floor=20, lower=0, upper=100).fit(X, [10, 10], ["<", "<"])
    assert gp.train_y_.tolist() == [5.0, 5.0]  # midpoint of [0, 10]


def test_one_row_keeps_prior_scale():
    X = ENC.encode(pd.DataFrame({"t": [600.0], "c": ["a"], "x": [1.0]}))
    gp = GPSurrogate(cat_dims=ENC.cat_dims, scale_floor=8).fit(X, [22.7])
    far = ENC.encode(pd.DataFrame({"t": [400.0], "c": ["b"], "x": [0.0]}))
    _, sd = gp.predict(far)
    assert sd[0] > 8.0  # not the ~0.5 a likelihood fit on one point would give


def test_save_load_gives_same_predictions(tmp_path):
    torch.manual_seed(0)
    train = _frame(15, 5)
    gp = GPSurrogate(cat_dims=ENC.cat_dims, scale_floor=5).fit(ENC.encode(train), _truth(train))
    gp.save(tmp_path / "m.pt")
    other = GPSurrogate(cat_dims=ENC.cat_dims, scale_floor=5).load(tmp_path / "m.pt")
    Xt = ENC.encode(_frame(10, 6))
    for a, b in zip(gp.predict(Xt), other.predict(Xt)):
        np.testing.assert_allclose(a, b, rtol=1e-10)


def test_predict_before_fit_and_bad_shapes():
    gp = GPSurrogate(name="plqy")
    with pytest.raises(NotFittedError, match="plqy: call fit"):
        gp.predict(torch.zeros(1, 3, dtype=torch.double))
    with pytest.raises(ValueError, match="NaN"):
        gp.fit(torch.zeros(2, 3, dtype=torch.double), [1.0, float("nan")])
