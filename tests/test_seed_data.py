"""The seed data set: the paper's results as validated rows, censored values marked, sources given."""

from __future__ import annotations

import math

import pytest

from optimize.campaign import load_campaign
from optimize.config import load_config
from tests.conftest import SEED_CONFIG, SEED_DATA


@pytest.fixture(scope="module")
def seed():
    return load_campaign(load_config(SEED_CONFIG)).experiments.set_index("experiment_id")


def _row(seed, **inputs):
    m = seed
    for k, v in inputs.items():
        m = m[m[k] == v]
    assert len(m) == 1, f"expected one row for {inputs}, got {len(m)}"
    return m.iloc[0]


def test_temperature_series_without_carbonate(seed):
    series = seed[seed.carbonate == "none"].sort_values("temperature_c")
    assert list(series.temperature_c) == [400, 500, 600, 700, 800]
    assert (series.k_ratio == 0).all() and (series.addition == "").all()
    assert list(series.plqy_qualifier) == ["<", "<", "", "", ""]
    assert list(series.plqy) == [10, 10, 37, 20, 16]
    # dispersible up to 600 C, fused above; pores sealed (water-proof) only from 700 C
    assert list(series.dispersibility) == [0.75, 0.75, 1.0, 0.0, 0.0]
    assert list(series.water_retention) == [0.2, 0.2, 0.8, 1.0, 1.0]


def test_k2co3_addition_and_ratio(seed):
    ext = _row(seed, carbonate="K2CO3", addition="external", temperature_c=600)
    internal = _row(seed, carbonate="K2CO3", addition="internal", k_ratio=1.0, br_fraction=1.0)
    assert (ext.plqy, internal.plqy) == (51, 87)
    assert internal.fwhm_nm == 22.7 and internal.water_retention == 1.0 and internal.dispersibility == 1.0
    for ratio in (2.0, 4.0):
        r = _row(seed, carbonate="K2CO3", k_ratio=ratio)
        assert r.dispersibility == 0.25 and math.isnan(r.plqy)


@pytest.mark.parametrize("carbonate", ["Na2CO3", "Cs2CO3"])
def test_other_carbonates_are_censored_below_k2co3(seed, carbonate):
    r = _row(seed, carbonate=carbonate)
    assert (r.plqy, r.plqy_qualifier, r.k_ratio, r.temperature_c) == (87, "<", 1.0, 600)


def test_iodide_compositions(seed):
    assert sorted(seed.br_fraction.unique()) == [0.0, 0.5, 1.0]
    for x in (0.0, 0.5):
        r = _row(seed, br_fraction=x)
        assert r.carbonate == "K2CO3" and r.addition == "internal"


def test_every_row_has_a_source_and_is_in_the_dictionary(seed):
    assert seed.source.str.contains("doi:10.1021/acsenergylett.2c02062").all()
    doc = (SEED_DATA / "README.md").read_text()
    for q in ("<", "~"):
        assert f"`{q}`" in doc
    for target in ("plqy", "fwhm_nm", "dispersibility", "water_retention"):
        assert f"`{target}`" in doc
    # qualitative encodings only use the documented scale levels
    assert set(seed.dispersibility.dropna()) <= {0.0, 0.25, 0.5, 0.75, 1.0}
    assert set(seed.water_retention.dropna()) <= {0.2, 0.8, 1.0}
