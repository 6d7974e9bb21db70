"""After an ingest, retrain keeps each target's chosen model while little data was added (refitting
it warm), and compares the candidates again once the rows grew past ``models.reselect_growth``."""

from __future__ import annotations

from optimize.campaign import campaign_from_batches
from optimize.config import load_config
from optimize.models import select_models
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


def test_parallel_selection_chooses_and_fits_as_the_serial_one(tmp_path):
    """Model selection in 2 forked processes gives the serial run's choices, CV scores, tuned settings and
    predictions (every job seeded alike), GBM candidates included."""
    import numpy as np

    config = load_config(
        make_campaign(
            tmp_path,
            models=SMALL_SELECTION,
        )
    )
    (campaign,) = _campaigns(config, [24])
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
