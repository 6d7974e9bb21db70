"""The exploring half of the portfolio acquisition: upper confidence bounds, function samples, batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def test_function_samples_follow_the_posterior(tmp_path):
    """A GP's samples average to its mean with its spread; a GBM sample is one ensemble member; a constant
    model's sample is one level."""
    from optimize.campaign import campaign_from_batches
    from optimize.config import load_config
    from optimize.models import fit_models
    from tests.conftest import lab_batches, make_campaign

    cfg = load_config(make_campaign(tmp_path, models={"candidates": ["gp-onehot"]}))
    campaign = campaign_from_batches(cfg, lab_batches(cfg, 12))
    fitted = fit_models(campaign)
    gp = fitted.surrogates["plqy"]
    X = fitted.encoder.encode(campaign.experiments[list(cfg.input_names)])[:5]
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([gp.sample(X, gen) for _ in range(400)])
    with torch.no_grad():
        mvn = gp.mvn(X)
        mean, std = mvn.mean, mvn.stddev
    assert torch.allclose(draws.mean(0), mean, atol=4 * float(std.max()) / 20)
    assert torch.allclose(draws.std(0), std, rtol=0.2)
    assert torch.equal(gp.sample(X, torch.Generator().manual_seed(3)), gp.sample(X, torch.Generator().manual_seed(3)))

    cfg_gbm = cfg.model_copy(
        update={"models": cfg.models.model_copy(update={"candidates": ("gbm",), "tuning_trials": 2})}
    )
    gbm = fit_models(campaign_from_batches(cfg_gbm, lab_batches(cfg_gbm, 12))).surrogates["plqy"]
    F = gbm.featurizer(X).numpy()
    members = list(gbm.forest_.predict(F))
    s = gbm.sample(X, torch.Generator().manual_seed(1)).numpy()
    assert any(np.allclose(s, m) for m in members)

    cfg_c = cfg.model_copy(update={"models": cfg.models.model_copy(update={"candidates": ("constant",)})})
    constant = fit_models(campaign_from_batches(cfg_c, lab_batches(cfg_c, 12))).surrogates["plqy"]
    draws = torch.stack([constant.sample(X, gen) for _ in range(200)])
    assert (draws == draws[:, :1]).all() and draws[:, 0].std() > 0  # one level per draw, different draws


def _fitted_lab(tmp_path, rows: int = 12, **acquisition):
    from optimize.campaign import campaign_from_batches
    from optimize.config import load_config
    from optimize.models import fit_models
    from tests.conftest import FAST_ACQUISITION, lab_batches, make_campaign

    cfg = load_config(
        make_campaign(tmp_path, acquisition={**FAST_ACQUISITION, **acquisition}, models={"candidates": ["gp-onehot"]})
    )
    campaign = campaign_from_batches(cfg, lab_batches(cfg, rows))
    return cfg, campaign, fit_models(campaign)


def test_upper_confidence_bound_moves_each_target_its_better_way(tmp_path):
    """PLQY (maximized) moves up, FWHM (minimized) down, by beta posterior standard deviations; a ``target``
    objective moves towards its goal and stops there; the means returned (what constraints are judged on) are the
    posterior means."""
    from optimize.config import Target
    from optimize.explore import optimistic

    cfg, campaign, fitted = _fitted_lab(tmp_path)
    X = fitted.encoder.encode(campaign.experiments[list(cfg.input_names)])
    X[:, fitted.encoder.cont_dims] = (X[:, fitted.encoder.cont_dims] + 0.05).clamp(0.0, 1.0)  # near, not on, the data
    surrogates = fitted.acquisition_surrogates()
    bound, mean = optimistic(cfg, fitted.botorch_model(), X, beta=2.0)
    for j, s in enumerate(surrogates):
        with torch.no_grad():
            mu, var = s.marginal(X)
        assert torch.allclose(mean[:, j], mu.reshape(-1))
        sign = 1.0 if cfg.targets[j].direction == "maximize" else -1.0
        assert torch.allclose(bound[:, j], mu.reshape(-1) + sign * 2.0 * var.reshape(-1).sqrt())
    assert (bound[:, 1] < mean[:, 1]).all() and (bound[:, 0] > mean[:, 0]).all()

    reach = bound[:, 0] - mean[:, 0]
    goal = float(mean[0, 0] + reach[0] / 2)  # within the first recipe's reach; the others anywhere
    targets = list(cfg.targets)
    targets[0] = Target(**{**targets[0].model_dump(), "direction": "target", "goal": goal})
    aimed, mean = optimistic(cfg.model_copy(update={"targets": tuple(targets)}), fitted.botorch_model(), X, beta=2.0)
    assert torch.allclose((aimed[:, 0] - goal).abs(), ((mean[:, 0] - goal).abs() - reach).clamp_min(0.0))
    assert float(aimed[0, 0]) == pytest.approx(goal)  # within reach: at the goal, not past it


def test_a_larger_reach_explores_where_the_models_know_less(tmp_path):
    """With beta = 0 the explorer exploits the posterior means; with a large beta its picks sit where the
    posterior is wider (the same candidates and random weights)."""
    from optimize.acquisition import enumerate_combos
    from optimize.explore import explore_batch, sobol_candidates

    spread = {}
    for beta in (0.0, 5.0):
        cfg, campaign, fitted = _fitted_lab(tmp_path / str(beta), explore_beta=beta)
        X_measured = fitted.encoder.encode(campaign.experiments[list(cfg.input_names)])
        draw = sobol_candidates(cfg, fitted.encoder, enumerate_combos(cfg, fitted.encoder), 64, seed=1)
        empty = torch.zeros(0, X_measured.shape[-1], dtype=torch.double)
        X, values = explore_batch(cfg, fitted, X_measured, empty, X_measured, 4, seed=0, candidates=draw)
        assert X.shape == (4, X_measured.shape[-1]) and torch.isfinite(values).all()
        with torch.no_grad():
            spread[beta] = torch.stack([s.marginal(X)[1].reshape(-1) for s in fitted.surrogates.values()]).sqrt()
    assert float(spread[5.0].mean()) > float(spread[0.0].mean())


@pytest.mark.parametrize(("kind", "explore"), [("portfolio", "ucb"), ("portfolio", "thompson"), ("qlogehvi", "ucb")])
def test_batches_on_a_lookup_pool_pick_untried_rows(tmp_path, kind, explore):
    from optimize.acquisition import suggest_recipes
    from optimize.campaign import campaign_from_batches
    from optimize.config import load_config
    from optimize.models import fit_models
    from tests.conftest import lab_batches, make_campaign

    cfg = load_config(
        make_campaign(
            tmp_path,
            acquisition={"kind": kind, "explore": explore, "mc_samples": 32},
            models={"candidates": ["gp-onehot"]},
        )
    )
    batches = lab_batches(cfg, 40)
    everything = campaign_from_batches(cfg, batches).experiments
    campaign = campaign_from_batches(cfg, lab_batches(cfg, 10))
    pool = everything[list(cfg.input_names)]
    recipes, proposal = suggest_recipes(campaign, fit_models(campaign), 5, seed=0, pool=pool)
    keys = [tuple(r) for r in recipes.astype(str).to_numpy()]
    tried = {tuple(r) for r in campaign.experiments[list(cfg.input_names)].astype(str).to_numpy()}
    allowed = {tuple(r) for r in pool.astype(str).to_numpy()}
    assert len(set(keys)) == 5 and set(keys) <= allowed and not set(keys) & tried
    assert proposal.strategy == kind and np.isfinite(proposal.acquisition_values).all()
