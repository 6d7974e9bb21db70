"""After an ingest, retrain keeps each target's chosen model while little data was added (refitting
it warm), and compares the candidates again once the rows grew past ``models.reselect_growth``."""

from __future__ import annotations

import pytest

from optimize.campaign import campaign_from_batches
from optimize.config import load_config
from optimize.models import select_models
from optimize.validation import qualifier_column
from tests.conftest import SMALL_SELECTION, lab_batches, make_campaign


def _campaigns(config, sizes: list[int]):
    for n in sizes:  # the first rows of a longer design are the same recipes and results
        yield campaign_from_batches(config, lab_batches(config, n))


def test_choice_is_kept_until_the_data_grow_past_the_threshold(tmp_path):
    config = load_config(
        make_campaign(
            tmp_path, models={"candidates": ["gp-onehot", "constant"], "reselect_growth": 0.25, "importance_repeats": 1}
        )
    )
    first, small_step, big_step = _campaigns(config, [40, 48, 56])
    fitted, sel = select_models(first)
    assert all(r.selected_on == 40 and set(r.cv) == {"gp-onehot", "constant"} for r in fitted.reports.values())

    kept, sel_kept = select_models(small_step, warm=fitted, reselect=False)
    for name, r in kept.reports.items():
        assert r.n_rows == 48 and r.selected_on == 40 and r.chosen == fitted.reports[name].chosen
        assert r.cv == fitted.reports[name].cv and "kept" in r.note and "above 50 rows" in r.note
    assert not any(sel_kept.cv_results.values()) and not sel_kept.tuning  # no cross-validation ran
    # the refit models are fit on all 48 rows, not the old ones
    assert all(s.train_X_.shape[0] == 48 for s in kept.surrogates.values())

    again, sel_again = select_models(big_step, warm=kept, reselect=False)  # 56 > 40 * 1.25
    assert all(r.selected_on == 56 and r.note == "" for r in again.reports.values())
    assert all(len(res) == 2 for res in sel_again.cv_results.values())

    forced, _ = select_models(small_step, warm=fitted, reselect=True)  # kiln retrain always compares
    assert all(r.selected_on == 48 for r in forced.reports.values())


# what large campaigns do (hyper-parameters on a subset, folds that keep a fit's hyper-parameters, fewer folds),
# scaled down to 40 rows
LARGE_DATA = {"gp_fit_rows": 24, "cv_refit_rows": 30, "cv_scored_rows": 12}


@pytest.mark.parametrize("large", [False, True], ids=["small-data", "large-data"])
def test_parallel_selection_chooses_and_fits_as_the_serial_one(tmp_path, large):
    """Model selection in 2 forked processes gives the serial run's choices, CV scores, tuned settings and
    predictions (every job seeded alike), GBM candidates included."""
    import numpy as np

    config = load_config(make_campaign(tmp_path, models={**SMALL_SELECTION, **(LARGE_DATA if large else {})}))
    (campaign,) = _campaigns(config, [40 if large else 24])
    serial, sel_serial = select_models(campaign, workers=1)
    parallel, sel_parallel = select_models(campaign, workers=2)
    assert {k: r.chosen for k, r in serial.reports.items()} == {k: r.chosen for k, r in parallel.reports.items()}
    for name, r in serial.reports.items():
        assert r.cv == parallel.reports[name].cv and r.importance == parallel.reports[name].importance
    assert {k: v.params for k, v in sel_serial.tuning.items()} == {k: v.params for k, v in sel_parallel.tuning.items()}
    X = serial.encoder.encode(campaign.experiments)
    for name, model in serial.surrogates.items():
        for a, b in zip(model.predict(X), parallel.surrogates[name].predict(X)):
            np.testing.assert_array_equal(a, b)


def test_large_data_cross_validates_a_gp_on_its_all_rows_fit_and_keeps_that_fit(tmp_path):
    """Above ``cv_refit_rows`` a GP candidate is fitted once on all rows (hyper-parameters on ``gp_fit_rows`` of
    them); its folds keep those hyper-parameters; K-fold stops at ``cv_scored_rows`` held-out rows; the winner's
    final model is that all-rows fit (the same hyper-parameters and predictions as fitting it again)."""
    import numpy as np

    from optimize.models import make_candidate

    config = load_config(
        make_campaign(tmp_path, models={"candidates": ["gp-onehot", "constant"], "importance_repeats": 1, **LARGE_DATA})
    )
    (campaign,) = _campaigns(config, [40])
    fitted, sel = select_models(campaign, workers=1)
    for target in config.targets:
        report = fitted.reports[target.name]
        rows = campaign.measured(target.name)
        # two folds of 8 held-out rows reach 12 (censored ones are held out but never scored)
        assert report.chosen == "gp-onehot" and 8 < report.cv["gp-onehot"]["n_scored"] <= 16
        model = fitted.surrogates[target.name]
        assert model.fit_rows == 24 and model.train_X_.shape[0] == len(rows)
        again = make_candidate(config, target, "gp-onehot").fit(
            fitted.encoder.encode(rows), rows[target.name].to_numpy(float), list(rows[qualifier_column(target.name)])
        )
        # equal up to rounding: with two torch threads the last digits differed when the machine was busy
        assert again.hyperparameters() == pytest.approx(model.hyperparameters(), rel=1e-9)
        X = fitted.encoder.encode(campaign.experiments)
        np.testing.assert_allclose(again.predict(X)[0], model.predict(X)[0], rtol=1e-9)


def test_the_acquisition_models_the_explorer_and_predictions_come_from_the_chosen_model(tmp_path):
    """With a constant chosen for every target and ``explore_with: gp-onehot``, predictions (and reports) are the
    constant's while the acquisition's surrogates are the GPs; both survive the JSON cache."""
    import numpy as np

    from optimize.models import FittedModels
    from surrogate.gp import GPSurrogate

    config = load_config(make_campaign(tmp_path, models={"candidates": ["constant"], "importance_repeats": 1}))
    (campaign,) = _campaigns(config, [16])
    fitted, _ = select_models(campaign)
    names = [t.name for t in config.targets]
    assert {r.chosen for r in fitted.reports.values()} == {"constant"}
    assert all(fitted.reports[n].explorer == "gp-onehot" for n in names) and list(fitted.explorers) == names
    X = fitted.encoder.encode(campaign.experiments)
    for again in (fitted, FittedModels.from_json(fitted.to_json())):
        acq = again.acquisition_surrogates()
        assert all(isinstance(s, GPSurrogate) for s in acq) and len(acq) == len(names)
        mean, _ = again.predict(campaign.experiments)["plqy"]
        assert np.ptp(mean) == 0  # the constant predicts
        assert np.ptp(acq[0].predict(X)[0]) > 1  # the GP explores
        np.testing.assert_allclose(acq[0].predict(X)[0], fitted.explorers["plqy"].predict(X)[0])

    plain = load_config(make_campaign(tmp_path / "b", models={"candidates": ["constant"], "explore_with": None}))
    unexplored, _ = select_models(campaign_from_batches(plain, lab_batches(plain, 16)))
    assert not unexplored.explorers and all(r.explorer == "" for r in unexplored.reports.values())


def test_the_configured_gp_kernel_reaches_every_one_hot_and_descriptor_gp(tmp_path):
    """``models.gp_kernel: process`` builds every GP candidate on one-hot or descriptor features (and the explorer)
    with the process kernel, leaves the categorical-kernel GP on codes as it is, and survives the model files."""
    from optimize.models import make_candidate
    from surrogate.io import surrogate_from_json
    from surrogate.process_kernel import ProcessKernel

    models = {"candidates": ["gp-descriptors", "constant"], "gp_kernel": "process", "importance_repeats": 1}
    config = load_config(make_campaign(tmp_path, models=models))
    kernels = [make_candidate(config, config.targets[0], k).settings().get("kernel") for k in ("gp", "gp-onehot")]
    assert kernels == [None, "process"]  # the categorical-kernel GP keeps its own
    (campaign,) = _campaigns(config, [12])
    fitted, _ = select_models(campaign)
    explorers = fitted.explorers.values()
    assert explorers and all(type(m.model_.covar_module) is ProcessKernel for m in explorers)  # gp-onehot
    for model in [*fitted.surrogates.values(), *explorers]:
        again = surrogate_from_json(model.to_json())
        assert again.settings() == model.settings()
        if model.kind == "gp" and model.featurizer.mode != "codes":
            assert type(again.model_.covar_module) is ProcessKernel and again.kernel == "process"
