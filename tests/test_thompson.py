"""Thompson sampling for hypervolume improvement: the improvement itself, function samples, batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optimize.benchmark import hypervolume
from optimize.thompson import hypervolume_improvement


def test_hypervolume_improvement_is_the_hypervolume_added():
    rng = np.random.default_rng(0)
    ref = torch.zeros(3, dtype=torch.double)
    front = torch.as_tensor(rng.random((6, 3)), dtype=torch.double)
    Y = torch.as_tensor(rng.random((40, 3)) * 1.2, dtype=torch.double)
    from botorch.utils.multi_objective.pareto import is_non_dominated

    front = front[is_non_dominated(front)]
    gain = hypervolume_improvement(Y, front, ref)
    base = hypervolume(front.numpy())
    expected = [hypervolume(np.vstack([front.numpy(), y[None]])) - base for y in Y.numpy()]
    assert np.allclose(gain.numpy(), expected, atol=1e-9)
    assert (gain[(Y <= front.max(0).values).all(-1) & (gain > 0)] > 0).all() and (gain >= 0).all()


def test_function_samples_follow_the_posterior(tmp_path):
    """A GP's samples average to its mean with its spread; a GBM sample is one ensemble member."""
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
    members = [m.predict(F) for m in gbm.members_]
    s = gbm.sample(X, torch.Generator().manual_seed(1)).numpy()
    assert any(np.allclose(s, m) for m in members)


@pytest.mark.parametrize("kind", ["thompson", "portfolio"])
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
