"""Linear constraints on inputs: parsed and checked at load, honoured by every recipe kiln makes, enforced at ingest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from optimize.benchmark import BenchmarkSettings, run_cell, virtual_lab_problem
from optimize.config import ConfigError, load_config
from optimize.constraints import parse_constraint
from optimize.errors import DataError
from tests.conftest import FAST_ACQUISITION, ROOT

MIXED = ROOT / "configs" / "cspbx3_mixed_halide.yaml"
GP_ONLY = {"candidates": ["gp-onehot"], "importance_repeats": 1}


def mixed_campaign(tmp: Path, **changes) -> Path:
    raw = yaml.safe_load(MIXED.read_text())
    raw.update(data_dir=str(tmp / "data"), tracking_dir=str(tmp / "mlruns"), acquisition=FAST_ACQUISITION)
    raw["models"] = {**raw["models"], **GP_ONLY}
    raw.update(changes)
    path = tmp / "mixed.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def assert_satisfied(frame, tol: float = 1e-9) -> None:
    total = frame["x_cl"] + frame["x_br"] + frame["x_i"]
    assert np.allclose(total, 1.0, atol=tol), total.tolist()
    assert (frame["k_ratio"] + 2 * frame["x_i"] <= 4 + tol).all()
    for name in ("x_cl", "x_br", "x_i"):
        assert frame[name].between(-tol, 1 + tol).all(), frame[name].tolist()


@pytest.mark.parametrize(
    "text, coefs, op, rhs",
    [
        ("x_cl + x_br + x_i == 1", {"x_cl": 1, "x_br": 1, "x_i": 1}, "==", 1),
        ("k_ratio - 2 * x_i <= 1", {"k_ratio": 1, "x_i": -2}, "<=", 1),
        ("0.5*a + 2 >= b - 1.5e-1", {"a": 0.5, "b": -1}, ">=", -2.15),
    ],
)
def test_constraints_parse(text, coefs, op, rhs):
    c = parse_constraint(text)
    assert dict(c.coefs) == pytest.approx(coefs) and c.op == op and c.rhs == pytest.approx(rhs)


@pytest.mark.parametrize(
    "constraint, message",
    [
        ("x_cl + x_bromide + x_i == 1", r"'x_bromide' is not an input \(did you mean 'x_br'\?\)"),
        ("carbonate + x_i <= 1", "'carbonate' is a categorical input"),
        ("x_cl + x_br + x_i == 4", "no recipe with .* satisfies"),
        ("x_cl * 2 <= 1", "write the number first"),
        ("x_cl + x_br", "needs exactly one of"),
    ],
)
def test_bad_constraints_are_refused_at_load(tmp_path, constraint, message):
    with pytest.raises(ConfigError, match=message):
        load_config(mixed_campaign(tmp_path, constraints=[constraint]))


def test_every_suggestion_satisfies_the_constraints_and_ingest_enforces_them(tmp_path):
    from optimize.campaign import load_campaign
    from optimize.service import ingest, suggest
    from optimize.virtual_lab import MixedHalideLab

    config = load_config(mixed_campaign(tmp_path))
    lab, rng = MixedHalideLab(), np.random.default_rng(0)
    first = suggest(config, 6, seed=0)  # no data: a space-filling design
    assert_satisfied(pd.DataFrame([s.inputs for s in first.suggestions]))
    # the lab runs them; emission and FWHM come from the spectra
    folder = tmp_path / "spectra"
    folder.mkdir()
    rows = []
    for suggestion in first.suggestions:
        eid, run = suggestion.id, {k: suggestion.inputs[k] for k in config.input_names}
        truth = lab.measure({**run, "addition": run["addition"] or None}, rng)
        (folder / f"{eid}.csv").write_bytes(lab.spectrum({**run, "addition": run["addition"] or None}, rng))
        plqy = "<10" if isinstance(truth["plqy"], str) else truth["plqy"]
        water = truth["water_retention"] if rows else None  # the first sample's water test is still running
        rows.append({"experiment_id": eid, "batch": first.batch, **run, "plqy": plqy, "water_retention": water})
    batch = tmp_path / "monday.csv"
    _write_rows(batch, rows, config)
    ingest(config, batch, retrain_models=False, spectra_dir=folder)
    campaign = load_campaign(config)
    assert campaign.experiments["emission_nm"].notna().all() and campaign.experiments["fwhm_nm"].notna().all()
    second = suggest(config, 4, seed=1)  # models now (GPs): the acquisition keeps to the constraints
    assert second.strategy != "sobol"
    assert_satisfied(pd.DataFrame([s.inputs for s in second.suggestions]))
    # a recorded row that breaks the sum is refused, naming it
    bad = dict(rows[0], experiment_id="bad-1", x_cl=0.5, x_br=0.5, x_i=0.2)
    _write_rows(tmp_path / "bad.csv", [bad], config)
    with pytest.raises(DataError, match=r"breaks the constraint 'x_cl \+ x_br \+ x_i == 1' by 0.2"):
        ingest(config, tmp_path / "bad.csv", retrain_models=False)
    # within the stated tolerance (1e-3 by default) a hand-typed 0.333 + 0.333 + 0.334 is fine
    ok = dict(rows[0], experiment_id="ok-1", x_cl=0.3335, x_br=0.333, x_i=0.3335)
    _write_rows(tmp_path / "ok.csv", [ok], config)
    ingest(config, tmp_path / "ok.csv", retrain_models=False)


def _write_rows(path: Path, rows: list[dict], config) -> None:
    from optimize.campaign import rows_csv

    clean = []
    for r in rows:
        r = dict(r)
        if isinstance(r.get("plqy"), str):  # "<10": a censored value
            r["plqy"], r["plqy_qualifier"] = r["plqy"][1:], "<"
        clean.append(r)
    path.write_bytes(rows_csv(clean, ["experiment_id", "batch", *config.input_names, *config.target_names]))


@pytest.mark.parametrize("strategy", ["random", "sobol", "tpe", "botorch"])
def test_benchmark_strategies_keep_to_the_constraints(tmp_path, strategy):
    config = load_config(mixed_campaign(tmp_path))
    problem = virtual_lab_problem(config)
    assert type(problem.truth.__self__).__name__ == "MixedHalideLab"  # the emission follows the halide mix
    settings = BenchmarkSettings((strategy,), (0,), n_initial=6, batches=2, batch_size=3)
    cell = run_cell(problem, settings, 0, strategy)
    assert_satisfied(pd.DataFrame(cell.recipes), tol=1e-9)
    assert len(cell.recipes) == 12


@pytest.mark.slow
@pytest.mark.parametrize("peer", ["ax", "baybe"])
def test_peers_are_given_the_constraints(tmp_path, peer):
    """Ax: equalities as derived parameters, the rest as parameter constraints; BayBE: ContinuousLinearConstraint."""
    config = load_config(mixed_campaign(tmp_path))
    settings = BenchmarkSettings((peer,), (0,), n_initial=4, batches=1, batch_size=2)
    cell = run_cell(virtual_lab_problem(config), settings, 0, peer)
    assert_satisfied(pd.DataFrame(cell.recipes), tol=1e-9)
