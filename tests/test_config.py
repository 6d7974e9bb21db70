"""The campaign YAML: the seed config loads; bad configs fail naming the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from optimize.config import CategoricalInput, ConfigError, ContinuousInput, load_config
from tests.conftest import SEED_CONFIG


def test_seed_config_matches_design_contract():
    cfg = load_config(SEED_CONFIG)
    assert cfg.name == "cspbbr3_sio2"
    assert cfg.input_names == ("temperature_c", "k_ratio", "carbonate", "addition", "br_fraction")
    t = cfg.input("temperature_c")
    assert isinstance(t, ContinuousInput) and (t.lower, t.upper) == (400, 800)
    k = cfg.input("k_ratio")
    # a carbonate's dose ranges 0.1-4; 0 (no carbonate) is the value the condition below sets
    assert isinstance(k, ContinuousInput) and (k.lower, k.upper) == (0.1, 4)
    carb = cfg.input("carbonate")
    assert isinstance(carb, CategoricalInput) and carb.choices == ("none", "K2CO3", "Na2CO3", "Cs2CO3")
    assert cfg.input("addition").choices == ("internal", "external")
    assert {(t.name, t.direction) for t in cfg.targets} == {
        ("plqy", "maximize"),
        ("fwhm_nm", "minimize"),
        ("dispersibility", "maximize"),
        ("water_retention", "maximize"),
    }
    (cond,) = cfg.conditions
    assert cond.when == {"carbonate": "none"} and cond.set == {"k_ratio": 0} and cond.inactive == ("addition",)
    assert cfg.data_path == (SEED_CONFIG.parent / "../datasets/cspbbr3_sio2").resolve()


def _write(tmp_path: Path, mutate) -> Path:
    raw = yaml.safe_load(SEED_CONFIG.read_text())
    mutate(raw)
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda r: r["targets"][1].update(direction="minimise"), r"targets\.1\.direction"),
        (lambda r: r.update(inputz=[]), r"inputz: unknown key \(did you mean 'inputs'\?\)"),
        (lambda r: r["inputs"][0].update(lower=900), r"lower \(900.0\) must be below upper"),
        (
            lambda r: r["conditions"][0]["when"].update(carbonat="none"),
            r"'carbonat' is not a categorical input \(did you mean 'carbonate'\?\)",
        ),
        (lambda r: r["conditions"][0]["set"].update(k_ratio=9), r"k_ratio=9.0 lies above \[0.1, 4.0\]"),
        (lambda r: r["targets"][0].update(reference=150), r"reference 150.0 lies outside"),
        (lambda r: r["inputs"][2].update(choices=["none"]), r"inputs\.2.*choices must be at least two"),
        (lambda r: r["acquisition"].update(restarts=0), r"acquisition\.restarts"),
        (lambda r: r["targets"].append(dict(r["targets"][0])), r"names used twice.*plqy"),
        (lambda r: r["targets"][0].update(noise_std=-1), r"targets\.0\.noise_std"),
        (lambda r: r["models"].update(candidates=["gp", "svm"]), r"models\.candidates\.1"),
        (lambda r: r["models"].update(tuning_trials=0), r"models\.tuning_trials"),
        (lambda r: r["models"].update(gbm_members=1), r"models\.gbm_members"),
        (lambda r: r["models"].update(candidates=["gp", "gp"]), r"without repeats"),
        (lambda r: r["inputs"][2].pop("descriptors"), r"'\*-descriptors' models need descriptors"),
        (lambda r: r["inputs"][2]["descriptors"]["values"].pop("Na2CO3"), r"descriptors\.values lacks \['Na2CO3'\]"),
        (
            lambda r: r["inputs"][2]["descriptors"]["values"].update(K2CO3=[1, 2]),
            r"values\.K2CO3: 2 numbers for 4 names",
        ),
    ],
)
def test_bad_config_names_the_key(tmp_path, mutate, expected):
    with pytest.raises(ConfigError, match=expected) as e:
        load_config(_write(tmp_path, mutate))
    assert "c.yaml" in str(e.value)


def test_missing_and_non_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    py = tmp_path / "evil.yaml"
    py.write_text("!!python/object/apply:os.system ['echo hacked']")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(py)


def test_config_is_frozen():
    cfg = load_config(SEED_CONFIG)
    with pytest.raises(Exception):
        cfg.name = "other"  # type: ignore[misc]
