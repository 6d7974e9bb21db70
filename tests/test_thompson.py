"""Thompson sampling (the exploring half of the portfolio acquisition): function samples, batches."""

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


@pytest.mark.parametrize("kind", ["portfolio", "qlogehvi"])
def test_batches_on_a_lookup_pool_pick_untried_rows(tmp_path, kind):
    from optimize.acquisition import suggest_recipes
    from optimize.campaign import campaign_from_batches
    from optimize.config import load_config
    from optimize.models import fit_models
    from tests.conftest import lab_batches, make_campaign

    cfg = load_config(
        make_campaign(tmp_path, acquisition={"kind": kind, "mc_samples": 32}, models={"candidates": ["gp-onehot"]})
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
