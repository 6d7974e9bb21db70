"""Prior knowledge: another campaign's rows (the paper's) learned together with a new lab's."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from optimize.acquisition import suggest_recipes
from optimize.campaign import campaign_from_batches, load_campaign
from optimize.config import ConfigError, load_config
from optimize.errors import DataError
from optimize.models import FittedModels, fit_models, select_models
from surrogate.gp import GPSurrogate
from tests.conftest import SEED_DATA, SMALL_SELECTION, kiln, lab_batches, make_campaign

FAST = {"kind": "qlogehvi", "mc_samples": 32, "raw_samples_per_combo": 16, "restarts": 2, "maxiter": 20}
GP_ONLY = {"candidates": ["gp-onehot"], "importance_repeats": 1}


def _new_lab(tmp_path: Path, models: dict | None = None, prior: dict | None = None) -> Path:
    """A campaign with no experiments of its own whose prior is a copy of the paper's rows."""
    path = make_campaign(tmp_path, acquisition=FAST, models=models or GP_ONLY)
    shutil.rmtree(tmp_path / "data")
    shutil.copytree(SEED_DATA / "batches", tmp_path / "paper" / "batches")
    raw = yaml.safe_load(path.read_text())
    raw["prior"] = prior or {"data_dir": "paper", "name": "he2023"}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_a_new_lab_gets_its_first_batch_from_the_prior(tmp_path):
    from optimize.virtual_lab import VirtualLab

    config = load_config(_new_lab(tmp_path))
    campaign = load_campaign(config)
    assert len(campaign.experiments) == 0 and len(campaign.prior.experiments) == 13
    fitted = fit_models(campaign)
    assert set(fitted.surrogates) == set(config.target_names)
    assert fitted.reports["plqy"].prior_rows == 9 and "prior campaign 'he2023'" in fitted.reports["plqy"].note
    recipes, proposal = suggest_recipes(campaign, fitted, 4, seed=0)
    assert proposal.strategy == "qlogehvi"  # chosen by the models, not a space-filling design
    # The paper's lesson (internal K2CO3 near 1:1, about 600 C) is in the first batch of the new lab
    # and the recipes are much better than a space-filling start of the same size.
    lab = VirtualLab(noise=0)
    first = [lab.truth(r)["plqy"] for r in recipes.to_dict(orient="records")]
    cold, _ = suggest_recipes(load_campaign(config.model_copy(update={"prior": None})), fitted, 4, seed=0)
    sobol = [lab.truth(r)["plqy"] for r in cold.to_dict(orient="records")]
    assert np.median(first) > 40 and np.median(first) > np.median(sobol) + 20, (first, sobol)


def test_transfer_learns_how_far_the_prior_carries_over():
    """Same truth in both campaigns: 3 own rows + 30 prior rows predict far better than 3 rows alone,
    and the task length-scale grows (the campaigns are correlated). Unrelated truth: it shrinks, so the
    prior's values stop counting (the predictions are not worse than without the prior)."""
    from surrogate.encoding import ContinuousFeature, Encoder
    from surrogate.features import Featurizer
    from surrogate.transfer import TransferSurrogate

    plain = Featurizer(Encoder((ContinuousFeature("x", 0, 1), ContinuousFeature("z", 0, 1))), "onehot")
    with_task = Featurizer(Encoder((*plain.encoder.features, ContinuousFeature("task", 0, 1))), "onehot")
    rng = np.random.default_rng(0)
    X_prior, X_own, X_test = (torch.as_tensor(rng.random((n, 2))) for n in (30, 3, 200))

    def f(X):
        return np.sin(6 * X[:, 0].numpy()) + X[:, 1].numpy()

    def rmse(model):
        return float(np.sqrt(np.mean((model.predict(X_test)[0] - f(X_test)) ** 2)))

    def task_lengthscale(model):
        return model.hyperparameters()["covar_module.lengthscale.2"]

    settings = {"noise_floor": 0.01, "scale_floor": 0.1}
    alone = GPSurrogate(plain, **settings).fit(X_own, f(X_own))
    same = TransferSurrogate(GPSurrogate(with_task, **settings), X_prior, f(X_prior)).fit(X_own, f(X_own))
    unrelated = TransferSurrogate(GPSurrogate(with_task, **settings), X_prior, -3 * f(X_prior)).fit(X_own, f(X_own))
    assert rmse(same) < 0.1 * rmse(alone)
    assert rmse(unrelated) < rmse(alone)
    assert task_lengthscale(same) > 2.0 > 0.2 > task_lengthscale(unrelated)


def test_cross_validation_scores_own_rows_with_the_prior_always_in_training(tmp_path):
    config = load_config(
        _new_lab(
            tmp_path,
            models=SMALL_SELECTION,
        )
    )
    campaign = campaign_from_batches(config, lab_batches(config, 10), prior=load_campaign(config).prior)
    fitted, selection = select_models(campaign)
    for result in selection.cv_results["dispersibility"]:
        assert len(result.y) == 10  # held-out rows are the lab's own, never the prior's
    report = fitted.reports["dispersibility"]
    assert report.prior_rows == (12 if report.chosen != "constant" else 0)
    # the JSON cache restores the transfer models exactly
    again = FittedModels.from_json(fitted.to_json())
    X = fitted.encoder.encode(campaign.experiments)
    for name, model in fitted.surrogates.items():
        np.testing.assert_allclose(again.surrogates[name].predict(X)[0], model.predict(X)[0], rtol=1e-6, atol=1e-9)


def test_the_data_version_follows_the_prior(tmp_path):
    config = load_config(_new_lab(tmp_path))
    before = load_campaign(config).version
    batch = next((tmp_path / "paper" / "batches").glob("*.csv"))
    batch.write_text(batch.read_text().replace("he2023-03,seed,600,0,none,,1,37,", "he2023-03,seed,600,0,none,,1,38,"))
    assert load_campaign(config).version != before  # cached models of the old prior are not reused


def test_a_bad_prior_is_refused_with_the_fix(tmp_path):
    config = load_config(_new_lab(tmp_path / "a", prior={"data_dir": "nowhere"}))
    with pytest.raises(
        DataError, match=r"nowhere/batches: the prior campaign has no batch files .* Fix: point prior.data_dir"
    ):
        load_campaign(config)
    path = _new_lab(tmp_path / "b")
    batch = next((tmp_path / "b" / "paper" / "batches").glob("*.csv"))
    batch.write_text(batch.read_text().replace("he2023-03,seed,600,", "he2023-03,seed,6OO,"))
    with pytest.raises(DataError, match=r"000_seed_he2023.csv, row 4, column 'temperature_c': not a number"):
        load_campaign(load_config(path))
    raw = yaml.safe_load(path.read_text())
    raw["inputs"].append({"name": "task", "type": "categorical", "choices": ["a", "b"]})
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"'task' is the model input that marks prior rows"):
        load_config(path)


def test_kiln_init_with_a_prior_suggests_from_the_first_batch(tmp_path):
    import json

    folder = tmp_path / "new-lab"
    res = kiln("init", str(folder), "--prior", str(SEED_DATA))
    assert res.exit_code == 0, res.stderr
    cfg = str(folder / "campaign.yaml")
    report = json.loads(kiln("validate-config", "--config", cfg, "--format", "json").stdout)
    assert report["experiments"] == 0 and report["prior"].startswith("cspbbr3_sio2: 13 experiments")
    out = json.loads(kiln("--quiet", "suggest", "-n", "3", "--config", cfg, "--format", "json").stdout)
    assert out["strategy"] == "portfolio" and len(out["suggestions"]) == 3  # the template's kind, chosen by the models
    bad = kiln("init", str(tmp_path / "other"), "--prior", str(tmp_path))
    assert bad.exit_code == 2 and "no batch files" in bad.stderr and not (tmp_path / "other").exists()


def test_a_benchmark_can_start_from_the_prior_without_a_design(tmp_path):
    from optimize.benchmark import BenchmarkSettings, run_benchmark, virtual_lab_problem
    from optimize.virtual_lab import VirtualLab

    config = load_config(_new_lab(tmp_path))
    other_lab = VirtualLab(furnace_offset_c=30.0, plqy_scale=0.8)
    result = run_benchmark(
        virtual_lab_problem(config, lab=other_lab), BenchmarkSettings(("botorch", "random"), (0,), 0, 1, 3)
    )
    rows = {(r["strategy"], r["batch"]): r for r in result.rows}
    assert rows["botorch", 0]["n_experiments"] == 0 and rows["botorch", 0]["hypervolume"] == 0.0
    assert rows["botorch", 1]["n_experiments"] == 3
    assert rows["botorch", 1]["hypervolume"] > rows["random", 1]["hypervolume"]  # the prior's first batch beats chance
    assert other_lab.truth({"temperature_c": 570, "k_ratio": 0, "carbonate": "none", "br_fraction": 1})[
        "plqy"
    ] == pytest.approx(
        0.8 * VirtualLab().truth({"temperature_c": 600, "k_ratio": 0, "carbonate": "none", "br_fraction": 1})["plqy"]
    )
