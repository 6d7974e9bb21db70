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


def test_the_discrepancy_is_nothing_at_a_known_recipe_and_grows_away_from_it(tmp_path):
    """The doubt's variance is ~0 at measured recipes, grows along an input moved away from them, reaches 1 under a
    categorical combination never tried, and never leaves [0, 1]."""
    from optimize.explore import discrepancy_variance

    cfg, campaign, fitted = _fitted_lab(tmp_path)
    enc = fitted.encoder
    X_known = enc.encode(campaign.experiments[list(cfg.input_names)])
    at_known = discrepancy_variance(enc, X_known, X_known, 0.15)
    assert float(at_known.max()) < 1e-3 and (at_known >= 0).all()

    j = enc.names.index("br_fraction")
    one = X_known[:1].repeat(6, 1)
    one[:, j] = (one[:, j] + torch.tensor([0.0, 0.02, 0.05, 0.1, 0.2, 0.4], dtype=torch.double)).clamp(0.0, 1.0)
    moved = one[:, j] - X_known[0, j]
    v = discrepancy_variance(enc, one, X_known[:1], 0.15)
    assert torch.all(v[1:] >= v[:-1] - 1e-12) and float(v[0]) < 1e-3 and (v >= 0).all() and (v <= 1).all()
    assert torch.allclose(v, 1 - torch.exp(-0.5 * moved.pow(2) / 0.15**2) ** 2 / (1 + 1e-4), atol=1e-4)

    c = enc.names.index("carbonate")
    other = X_known.clone()
    other[:, c] = float(enc.features[c].choices.index("Cs2CO3"))
    untried = ~(X_known[:, c] == other[0, c])
    assert torch.allclose(
        discrepancy_variance(enc, other[:1], X_known[untried], 0.15), torch.ones(1, dtype=torch.double)
    )


def test_doubt_widens_every_target_s_bound_by_its_variance(tmp_path):
    """``optimistic`` with a doubt (``N x m'``) takes the bound on the posterior variance plus the doubt: the means
    are unchanged, each target moves its better way by beta * sqrt(var + doubt)."""
    from optimize.explore import discrepancy_variance, optimistic

    cfg, campaign, fitted = _fitted_lab(tmp_path, explore_doubt=0.5)
    enc = fitted.encoder
    X_known = enc.encode(campaign.experiments[list(cfg.input_names)])
    X = X_known.clone()
    X[:, enc.cont_dims] = (X[:, enc.cont_dims] + 0.1).clamp(0.0, 1.0)
    model = fitted.botorch_model()
    scale = torch.tensor([s.outcome_scale() for s in fitted.acquisition_surrogates()], dtype=torch.double)
    doubt = discrepancy_variance(enc, X, X_known, 0.1).unsqueeze(-1) * (0.5 * scale) ** 2
    plain, mean0 = optimistic(cfg, model, X, beta=1.0)
    doubted, mean1 = optimistic(cfg, model, X, beta=1.0, doubt=doubt)
    assert torch.equal(mean0, mean1)
    with torch.no_grad():
        var = model.marginals(X)[1]
    for j, target in enumerate(cfg.targets):
        sign = 1.0 if target.direction == "maximize" else -1.0
        assert torch.allclose(doubted[:, j], mean0[:, j] + sign * (var[:, j] + doubt[:, j]).sqrt())
        assert (sign * (doubted[:, j] - plain[:, j]) > 0).all()  # every candidate is 0.1 from its recipe


def test_the_doubt_moves_the_continuous_search_and_leaves_a_table_alone(tmp_path):
    """With ``explore_doubt`` the exploring half of a batch over the whole space scores higher bounds, and a batch
    drawn from a finite pool of recipes is the same as without it (the doubt is off there)."""
    from optimize.acquisition import suggest_recipes
    from optimize.campaign import campaign_from_batches
    from optimize.config import load_config
    from optimize.models import fit_models
    from tests.conftest import lab_batches, make_campaign

    out = {}
    for doubt in (0.0, 0.5):
        cfg = load_config(
            make_campaign(
                tmp_path / str(doubt),
                acquisition={"explore_doubt": doubt, "mc_samples": 32},
                models={"candidates": ["gp-onehot"]},
            )
        )
        pool = campaign_from_batches(cfg, lab_batches(cfg, 40)).experiments[list(cfg.input_names)]
        campaign = campaign_from_batches(cfg, lab_batches(cfg, 10))
        fitted = fit_models(campaign)
        out[doubt] = [suggest_recipes(campaign, fitted, 4, seed=0, pool=p) for p in (None, pool)]
    (free0, table0), (free1, table1) = out[0.0], out[0.5]
    assert table0[0].equals(table1[0])
    assert np.array_equal(table0[1].acquisition_values, table1[1].acquisition_values)
    assert free0[0].iloc[:2].equals(free1[0].iloc[:2])  # the qLogEHVI half does not see the doubt
    # the exploring half's chosen scalarized bounds are higher with the doubt (recipes may coincide)
    assert (free1[1].acquisition_values[2:] > free0[1].acquisition_values[2:]).all()


def test_a_batch_explores_a_choice_no_recipe_has_yet(tmp_path):
    """While a categorical input has a choice that no measured or pending recipe has, a batch's first exploring
    recipe takes one (the best such candidate under its random weights); the batch's other picks are free. The "does
    not apply" code (no addition without a carbonate) is not a choice."""
    from optimize.acquisition import enumerate_combos
    from optimize.explore import explore_batch, sobol_candidates, untried_choices

    cfg, campaign, fitted = _fitted_lab(tmp_path, rows=16)
    enc = fitted.encoder
    X_measured = enc.encode(campaign.experiments[list(cfg.input_names)])
    j = enc.names.index("carbonate")
    cs = float(enc.features[j].code("Cs2CO3"))
    pool = sobol_candidates(cfg, enc, enumerate_combos(cfg, enc), 64, seed=1)(0)
    # one tried recipe under every combination but those with Cs2CO3: every other choice has been made
    combos = {tuple(x[enc.cat_dims].tolist()): x for x in pool if x[j] != cs}
    X_tried = torch.stack(list(combos.values()))
    flagged = untried_choices(enc, pool, X_tried)
    assert flagged.any() and torch.equal(flagged, pool[:, j] == cs)
    assert not untried_choices(enc, pool, pool).any()
    empty = torch.zeros(0, X_measured.shape[-1], dtype=torch.double)
    firsts, others = [], []
    for seed in range(4):
        draw = sobol_candidates(cfg, enc, enumerate_combos(cfg, enc), 64, seed=seed)
        X, _ = explore_batch(cfg, fitted, X_measured, empty, X_tried, 3, seed=seed, candidates=draw)
        firsts.append(float(X[0, j]))
        others += X[1:, j].tolist()
    assert firsts == [cs] * 4
    assert any(c != cs for c in others)
