"""Batch proposals: valid, distinct, conditional inputs respected, pending excluded, reproducible."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optimize.acquisition import enumerate_combos, propose, recipes_frame
from optimize.campaign import load_campaign
from optimize.models import fit_models


@pytest.fixture(scope="module")
def fitted_seed(tmp_path_factory):
    from optimize.config import load_config
    from tests.conftest import make_campaign

    cfg = load_config(make_campaign(tmp_path_factory.mktemp("acq"), models={"candidates": ["gp-onehot"]}))
    campaign = load_campaign(cfg)
    torch.manual_seed(0)
    fitted = fit_models(campaign)
    X = fitted.encoder.encode(campaign.experiments[list(cfg.input_names)])
    return cfg, fitted, X


def test_combos_respect_conditions(fitted_seed):
    cfg, fitted, _ = fitted_seed
    combos = enumerate_combos(cfg, fitted.encoder)
    recipes = recipes_frame(cfg, fitted.encoder, torch.stack([_point(c, 5) for c in combos]))
    pairs = sorted(zip(recipes.carbonate, recipes.addition))
    assert pairs == sorted(
        [("none", "")] + [(c, a) for c in ("K2CO3", "Na2CO3", "Cs2CO3") for a in ("internal", "external")]
    )
    assert (recipes[recipes.carbonate == "none"].k_ratio == 0).all()


def _point(combo, d):
    x = torch.full((d,), 0.5, dtype=torch.double)
    for j, v in combo.fixed.items():
        x[j] = v
    return x


def _check_valid(cfg, recipes):
    dosed = recipes.carbonate != "none"  # without a carbonate k_ratio is 0, below its range (checked below)
    for inp in cfg.inputs:
        col = recipes[inp.name][dosed] if inp.name == "k_ratio" else recipes[inp.name]
        if inp.type == "continuous":
            assert ((col >= inp.lower) & (col <= inp.upper)).all()
        else:
            assert set(col) <= set(inp.choices) | {""}
    none = recipes.carbonate == "none"
    assert (recipes[none].k_ratio == 0).all() and (recipes[none].addition == "").all()
    assert (recipes[~none].addition != "").all()


def test_proposals_are_valid_distinct_and_new(fitted_seed):
    cfg, fitted, X = fitted_seed
    p = propose(cfg, fitted, X, torch.zeros(0, X.shape[1], dtype=torch.double), 4, seed=1)
    recipes = recipes_frame(cfg, fitted.encoder, p.X)
    assert len(recipes) == 4 and p.strategy == "portfolio"
    _check_valid(cfg, recipes)
    assert not recipes.duplicated().any()
    measured = load_campaign(cfg).experiments[list(cfg.input_names)]
    merged = recipes.merge(measured, how="inner", on=list(cfg.input_names))
    assert merged.empty, f"suggested a measured recipe: {merged}"
    # steps from the config: 5 C, 0.05 ratio, 0.05 Br fraction
    assert ((recipes.temperature_c - 400) % 5 == 0).all()


def test_reproducible_with_seed_and_pending_excluded(fitted_seed):
    cfg, fitted, X = fitted_seed
    empty = torch.zeros(0, X.shape[1], dtype=torch.double)
    a = propose(cfg, fitted, X, empty, 2, seed=7)
    b = propose(cfg, fitted, X, empty, 2, seed=7)
    assert torch.equal(a.X, b.X)
    # with a's first recipe pending, it must not be proposed again
    c = propose(cfg, fitted, X, a.X[:1], 2, seed=7)
    tol = cfg.acquisition.duplicate_tolerance
    for x in c.X:
        same_cat = torch.equal(x[fitted.encoder.cat_dims], a.X[0, fitted.encoder.cat_dims])
        close = (x[fitted.encoder.cont_dims] - a.X[0, fitted.encoder.cont_dims]).abs().max() <= tol
        assert not (same_cat and close)


@pytest.mark.parametrize("kind", ["qlognparego", "qlogehvi", "portfolio"])
def test_other_acquisition_kinds(fitted_seed, kind):
    cfg, fitted, X = fitted_seed
    cfg2 = cfg.model_copy(update={"acquisition": cfg.acquisition.model_copy(update={"kind": kind})})
    p = propose(cfg2, fitted, X, torch.zeros(0, X.shape[1], dtype=torch.double), 3, seed=0)
    assert p.strategy == kind and np.isfinite(p.acquisition_values).all()
    recipes = recipes_frame(cfg2, fitted.encoder, p.X)
    _check_valid(cfg2, recipes)
    assert not recipes.duplicated().any()


def test_gradient_boosting_targets_still_get_suggestions(tmp_path):
    """Where GBM wins a target, its ensemble posterior feeds the same acquisition and local search."""
    from optimize.config import load_config
    from tests.conftest import make_campaign

    cfg = load_config(make_campaign(tmp_path, models={"candidates": ["gbm"], "tuning_trials": 3, "gbm_members": 4}))
    campaign = load_campaign(cfg)
    fitted = fit_models(campaign)
    assert {s.kind for s in fitted.surrogates.values()} == {"gbm"}
    X = fitted.encoder.encode(campaign.experiments[list(cfg.input_names)])
    p = propose(cfg, fitted, X, torch.zeros(0, X.shape[1], dtype=torch.double), 3, seed=0)
    recipes = recipes_frame(cfg, fitted.encoder, p.X)
    _check_valid(cfg, recipes)
    assert (
        len(recipes) == 3
        and not recipes.duplicated().any()
        and torch.isfinite(torch.as_tensor(p.acquisition_values)).all()
    )


def test_local_search_climbs_to_the_best_grid_point():
    """The polish needs no gradients: on a concave function of the free features it reaches the grid point
    nearest the optimum from a far start, leaves fixed features alone and stays on the grid."""
    from optimize.acquisition import Combo, _local_search

    target = torch.tensor([0.30, 0.85, 0.0], dtype=torch.double)

    def acqf(X):  # b x 1 x 3 -> b
        return -((X.squeeze(-2)[:, :2] - target[:2]) ** 2).sum(-1)

    steps = {0: 0.05, 1: 0.05}
    starts = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]], dtype=torch.double)
    out = _local_search(acqf, starts, [Combo({2: 1.0}), Combo({1: 0.0, 2: 0.0})], steps, max_rounds=40)
    assert torch.allclose(out[0], torch.tensor([0.30, 0.85, 1.0], dtype=torch.double), atol=1e-9)
    assert torch.allclose(out[1], torch.tensor([0.30, 0.0, 0.0], dtype=torch.double), atol=1e-9)


def test_ehvi_uses_the_kernel_built_at_setup_and_never_compiles(fitted_seed, tmp_path, monkeypatch):
    """BoTorch >= 0.18 JIT-compiles a C++ kernel on the first qLogEHVI (40-50 s, and a hang on a stale lock):
    proposing leaves the torch extensions directory untouched and uses the kernel `make setup` built, which
    gives BoTorch's pure-PyTorch values."""
    import botorch.acquisition.multi_objective.logei as logei

    from optimize.acquisition import _acqf_builder, _evaluate

    cfg, fitted, X = fitted_seed
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    monkeypatch.setattr(logei, "_load_attempted", False)
    monkeypatch.setattr(logei, "_C", None)
    p = propose(cfg, fitted, X, torch.zeros(0, X.shape[1], dtype=torch.double), 2, seed=3)
    assert len(p.X) == 2 and p.strategy == "portfolio"
    assert not (tmp_path / "ext").exists()
    assert logei._C is not None and "site-packages" in logei._C.__file__

    points = torch.rand(64, X.shape[1], dtype=torch.double, generator=torch.Generator().manual_seed(0))
    fused = _evaluate(_acqf_builder(cfg, fitted, X, 0)(None, 0), points)
    monkeypatch.setattr(logei, "_C", None)
    plain = _evaluate(_acqf_builder(cfg, fitted, X, 0)(None, 0), points)
    assert torch.allclose(fused, plain, rtol=1e-6, atol=1e-8)


def test_a_pool_pick_evaluates_only_the_rows_that_could_win(fitted_seed):
    """On a lookup pool, a pick joins the believed front, so (same base samples) no row's qLogEHVI rises from one
    greedy step to the next: the second step evaluates the rows best first, stops early and picks what a full
    evaluation picks."""
    from optimize.acquisition import _acqf_builder, _evaluate, _lazy_argmax
    from optimize.explore import sobol_candidates

    cfg, fitted, X = fitted_seed
    pool = sobol_candidates(cfg, fitted.encoder, enumerate_combos(cfg, fitted.encoder), 300, 0)(0)  # 2,100 rows
    build = _acqf_builder(cfg, fitted, X, 0)
    first = _evaluate(build(None, 0), pool)
    k, bound = _lazy_argmax(build(None, 0), pool, torch.full_like(first, torch.inf))
    assert k == int(torch.argmax(first)) and torch.equal(bound, first)  # no bounds: every row evaluated

    rest, bound = torch.cat([pool[:k], pool[k + 1 :]]), torch.cat([first[:k], first[k + 1 :]])
    acqf = build(pool[k].unsqueeze(0), 0)
    second = _evaluate(acqf, rest)
    assert (second <= bound + 1e-9).all()  # the premise: a step's values bound the next's
    rows = []
    counted = lambda Z: rows.append(len(Z)) or acqf(Z)  # noqa: E731
    j, tightened = _lazy_argmax(counted, rest, bound)
    assert j == int(torch.argmax(second))
    assert sum(rows) < len(rest) / 2  # most rows are never evaluated at the second step
    seen = tightened != bound
    assert torch.allclose(tightened[seen], second[seen], rtol=1e-9, atol=1e-12)  # batched in other chunks


@pytest.mark.parametrize("update", [{"kind": "qlognehvi"}, {"kind": "portfolio", "exploit": "qlognehvi"}])
def test_noisy_ehvi_from_a_single_recipe(fitted_seed, update):
    """qLogNEHVI on a one-recipe baseline (a new campaign's first, or a front pruned to one) with a recipe pending:
    BoTorch samples that recipe alone, from a posterior of independent outputs, and extends those base samples by the
    posterior's batch shape for the pending one."""
    cfg, fitted, X = fitted_seed
    cfg2 = cfg.model_copy(update={"acquisition": cfg.acquisition.model_copy(update=update)})
    p = propose(cfg2, fitted, X[:1], X[1:2], 2, seed=0)
    assert len(p.X) == 2 and np.isfinite(p.acquisition_values).all()
    _check_valid(cfg2, recipes_frame(cfg2, fitted.encoder, p.X))
