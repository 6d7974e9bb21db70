"""kiln benchmark: strategies, scoring, oracle files, lookup tables, MLflow, reproducibility."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from optimize.benchmark import (
    BenchmarkError,
    BenchmarkSettings,
    experiments_to_reach,
    hypervolume,
    lookup_problem,
    run_benchmark,
    virtual_lab_problem,
)
from optimize.cli import app
from optimize.config import load_config
from optimize.errors import DataError
from optimize.parallel import fork_map
from optimize.virtual_lab import VirtualLab
from tests.conftest import make_campaign

GP_ONLY = {"candidates": ["gp-onehot"]}
RESULT_COLUMNS = {"strategy", "seed", "batch", "n_experiments", "hypervolume", "seconds", "feasible", "furnace_runs"}
runner = CliRunner()


@pytest.fixture
def gp_config(tmp_path):
    return load_config(make_campaign(tmp_path, models=GP_ONLY))


def test_hypervolume_of_known_fronts():
    assert hypervolume(np.array([[1.0, 1.0]])) == pytest.approx(1.0)
    assert hypervolume(np.array([[0.5, 1.0], [1.0, 0.5], [0.4, 0.4]])) == pytest.approx(0.75)
    assert hypervolume(np.zeros((0, 3))) == 0.0
    assert hypervolume(np.array([[np.nan, 1.0], [0.5, 0.5]])) == pytest.approx(0.25)  # unscored rows skipped


def test_every_strategy_runs_from_the_same_initial_design(gp_config):
    settings = BenchmarkSettings(("botorch", "random", "sobol", "tpe"), (0, 1), n_initial=4, batches=2, batch_size=2)
    res = run_benchmark(virtual_lab_problem(gp_config), settings)
    frame = res.frame()
    assert len(frame) == 4 * 2 * 3 and set(frame.columns) == RESULT_COLUMNS
    assert frame.hypervolume.between(0, 1).all() and (frame.seconds >= 0).all()
    for seed, g in frame[frame.batch == 0].groupby("seed"):
        assert g.hypervolume.nunique() == 1  # same initial design for every strategy
    for _, g in frame.groupby(["strategy", "seed"]):
        assert g.sort_values("batch").hypervolume.is_monotonic_increasing  # the best found never gets lost
        assert g.n_experiments.tolist() == [4, 6, 8]
    assert {s["strategy"] for s in res.summary} == {"botorch", "random", "sobol", "tpe"}
    again = run_benchmark(virtual_lab_problem(gp_config), settings).frame()
    assert np.allclose(again.hypervolume, frame.hypervolume)  # seeded end to end


def test_lookup_table_strategies_only_pick_its_rows(gp_config, tmp_path):
    lab = VirtualLab(noise=0.0)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        carb = rng.choice(["none", "K2CO3", "Na2CO3"])
        rec = {
            "temperature_c": float(rng.choice(np.arange(450, 801, 25))),
            "carbonate": carb,
            "k_ratio": 0.0 if carb == "none" else float(rng.choice([0.5, 1.0, 2.0])),
            "addition": "" if carb == "none" else str(rng.choice(["internal", "external"])),
            "br_fraction": 1.0,
        }
        t = lab.truth({**rec, "addition": rec["addition"] or None})
        rows.append({"experiment_id": f"r{i}", **rec, **{k: round(v, 3) for k, v in t.items() if k != "emission_nm"}})
    table = pd.DataFrame(rows).drop_duplicates(subset=["temperature_c", "carbonate", "k_ratio", "addition"])
    path = tmp_path / "lookup.csv"
    table.to_csv(path, index=False)
    problem = lookup_problem(gp_config, path)
    asked = []
    measure = problem.measure
    problem = problem.__class__(
        problem.config, lambda r: asked.append(dict(r)) or measure(r), None, None, problem.pool, "lookup"
    )
    res = run_benchmark(problem, BenchmarkSettings(("botorch", "random"), (0,), n_initial=4, batches=2, batch_size=3))
    keys = {(r["temperature_c"], r["carbonate"], r["k_ratio"]) for r in rows}
    assert all((r["temperature_c"], r["carbonate"], r["k_ratio"]) in keys for r in asked)
    assert res.frame().hypervolume.between(0, 1).all()
    with pytest.raises(BenchmarkError, match="tpe strategy needs a continuous space"):
        run_benchmark(problem, BenchmarkSettings(("tpe",), (0,), n_initial=4, batches=1, batch_size=2))


ORACLE = """
def truth(recipe):
    t = recipe["time_h"]
    bonus = {"water": 0.0, "ethanol": 10.0, "toluene": 5.0}[recipe["solvent"]]
    return {"yield_pct": min(100.0, 8 * t + bonus), "cost": t / 2 + (2 if recipe["solvent"] == "toluene" else 0)}

def measure(recipe):
    out = truth(recipe)
    return {"yield_pct": "<10" if out["yield_pct"] < 10 else out["yield_pct"], "cost": out["cost"]}
"""


def test_cli_benchmark_with_an_oracle_file_for_another_campaign(tmp_path):
    from mlflow.tracking import MlflowClient

    from tests.test_other_campaign import CONFIG

    cfg_path = tmp_path / "toy.yaml"
    cfg_path.write_text(yaml.safe_dump({**CONFIG, "models": GP_ONLY}))
    oracle = tmp_path / "toy_oracle.py"
    oracle.write_text(ORACLE)
    res = runner.invoke(
        app,
        [
            "benchmark",
            "--oracle",
            f"{oracle}:measure",
            "--strategies",
            "botorch,random",
            "--seeds",
            "2",
            "--initial",
            "3",
            "--batches",
            "2",
            "--batch-size",
            "2",
            "--format",
            "json",
            "--config",
            str(cfg_path),
        ],
    )
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["problem"] == "toy_oracle" and len(doc["results"]) == 2 * 2 * 3
    assert set(doc["results"][0]) == RESULT_COLUMNS
    cfg = load_config(cfg_path)
    client = MlflowClient(cfg.tracking_uri)
    run = client.get_run(doc["mlflow_run_id"])
    assert run.data.tags["kiln.kind"] == "benchmark" and "botorch.hv_median" in run.data.metrics
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {
        "hypervolume_curves.png",
        "results.json",
        "summary.json",
    }
    table = runner.invoke(
        app,
        [
            "benchmark",
            "--oracle",
            str(oracle),
            "--strategies",
            "random",
            "--seeds",
            "1",
            "--initial",
            "3",
            "--batches",
            "1",
            "--batch-size",
            "2",
            "--config",
            str(cfg_path),
        ],
    )
    assert table.exit_code == 0 and "to 90 %" in table.stdout
    # --first-seed extends a study: seed 1 alone gives the rows seed 1 gave in the two-seed run
    later = runner.invoke(
        app,
        ["benchmark", "--oracle", f"{oracle}:measure", "--strategies", "random", "--seeds", "1", "--first-seed", "1"]
        + ["--initial", "3", "--batches", "2", "--batch-size", "2", "--format", "json", "--config", str(cfg_path)],
    )
    assert later.exit_code == 0, later.stderr

    def curve(rows, seed):  # hypervolume per batch; its scale (the best known front) holds what the run found
        return [r["hypervolume"] for r in rows if r["seed"] == seed]

    rows = json.loads(later.stdout)["results"]
    random_rows = [r for r in doc["results"] if r["strategy"] == "random"]
    assert {r["seed"] for r in rows} == {1} and curve(rows, 1) == pytest.approx(curve(random_rows, 1), rel=1e-3)
    assert curve(rows, 1) != pytest.approx(curve(random_rows, 0), rel=1e-3)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--oracle", "nope.py"], "oracle file not found"),
        (["--strategies", "botorch,grid"], "unknown strategies \\['grid'\\]"),
        (["--oracle", "x.py", "--lookup", "y.csv"], "not both"),
    ],
)
def test_cli_benchmark_errors_are_clean(config_path, args, message):
    import re

    res = runner.invoke(app, ["benchmark", *args, "--seeds", "1", "--batches", "1", "--config", str(config_path)])
    assert res.exit_code == 2 and re.search(message, res.stderr) and "Traceback" not in res.stderr


def test_experiments_to_reach():
    rows = [
        {"strategy": "a", "seed": s, "batch": b, "n_experiments": 4 * (b + 1), "hypervolume": h}
        for s, hs in enumerate([[0.1, 0.95, 1.0], [0.1, 0.5, 0.92], [0.1, 0.2, 0.3]])
        for b, h in enumerate(hs)
    ]
    assert experiments_to_reach(rows, "a", 0.9) == 12.0  # seeds need 8, 12, never -> median 12
    assert math.isinf(experiments_to_reach(rows, "a", 0.99))


@pytest.mark.slow
def test_botorch_beats_random_search_on_the_virtual_lab(gp_config):
    """Statistical, lean: 3 seeds, 8 initial + 3 batches of 4."""
    res = run_benchmark(
        virtual_lab_problem(gp_config),
        BenchmarkSettings(("botorch", "random"), (0, 1, 2), n_initial=8, batches=3, batch_size=4),
    )
    final = {s["strategy"]: s["hv_median"] for s in res.summary if s["batch"] == 3}
    assert final["botorch"] > final["random"] + 0.05, final


def test_with_outcome_constraints_only_feasible_recipes_count():
    import numpy as np

    from optimize.benchmark import feasible_only
    from optimize.config import OutcomeConstraint, load_config
    from tests.conftest import SEED_CONFIG

    cfg = load_config(SEED_CONFIG).model_copy(
        update={"outcome_constraints": (OutcomeConstraint(target="water_retention", min=0.9),)}
    )
    values = np.array([[80, 22, 0.9, 0.95], [90, 21, 1.0, 0.5], [70, 23, 0.8, np.nan]])
    out = feasible_only(cfg, values)
    assert np.isfinite(out[0]).all() and np.isnan(out[1]).all() and np.isnan(out[2]).all()  # unknown is not feasible


def test_parallel_cells_equal_a_serial_run(gp_config):
    """--workers: (strategy, seed) cells in forked processes give exactly the serial run's results."""
    settings = BenchmarkSettings(("botorch", "random", "tpe"), (0, 1), n_initial=4, batches=2, batch_size=2)
    serial = run_benchmark(virtual_lab_problem(gp_config), settings, workers=1)
    parallel = run_benchmark(virtual_lab_problem(gp_config), settings, workers=2)
    key = ["strategy", "seed", "batch", "n_experiments", "hypervolume", "feasible"]
    assert serial.frame()[key].equals(parallel.frame()[key])
    assert serial.best_hypervolume == parallel.best_hypervolume


def _bad_batch(item: int) -> int:
    if item == 1:
        raise DataError("<oracle-seed1-batch2>", "PLQY must be a number", "report a number", row=3, column="plqy")
    return item


def test_an_error_in_a_worker_reaches_the_caller_as_itself():
    """A cell that fails in a forked worker raises its own error, with file, row and column (not a broken pool)."""
    with pytest.raises(DataError, match=r"<oracle-seed1-batch2>, row 3, column 'plqy': PLQY must be a number"):
        fork_map(_bad_batch, [0, 1, 2], workers=2)


@pytest.mark.parametrize("name, rows", [("suzuki_flow", 74), ("lnp_formulation", 768), ("direct_arylation", 1728)])
def test_public_problems_load_and_run(name, rows):
    """The public lookup tables under benchmarks/problems: valid configs, one row per recipe, a short run."""
    from tests.conftest import ROOT

    folder = ROOT / "benchmarks" / "problems" / name
    assert (folder / "PROVENANCE.md").read_text().count("Licence") == 1
    problem = lookup_problem(load_config(folder / "config.yaml"), folder / "table.csv")
    assert len(problem.pool) == rows
    res = run_benchmark(problem, BenchmarkSettings(("random",), (0, 1), n_initial=4, batches=2, batch_size=3))
    frame = res.frame()
    assert frame.hypervolume.between(0, 1).all() and frame.groupby("seed").hypervolume.is_monotonic_increasing.all()


def test_cli_workers_models_and_set_options(tmp_path):
    """--workers N gives the serial result; --models replaces the config's candidates and --set any acquisition or
    models setting (validated); the document says which settings kiln's loop ran with."""
    from tests.test_other_campaign import CONFIG

    cfg_path = tmp_path / "toy.yaml"
    cfg_path.write_text(yaml.safe_dump(CONFIG))
    oracle = tmp_path / "toy_oracle.py"
    oracle.write_text(ORACLE)
    common = ["benchmark", "--oracle", str(oracle), "--strategies", "random,botorch", "--seeds", "2", "--initial", "3"]
    common += ["--batches", "1", "--batch-size", "2", "--format", "json", "--config", str(cfg_path)]
    docs = []
    chosen = ["--models", "gp-onehot", "--set", "acquisition.kind=qlognehvi", "--set", "acquisition.mc_samples=32"]
    for workers in ("1", "2"):
        res = runner.invoke(app, [*common, "--workers", workers, *chosen])
        assert res.exit_code == 0, res.stderr
        docs.append(json.loads(res.stdout))
    assert [r["hypervolume"] for r in docs[0]["results"]] == [r["hypervolume"] for r in docs[1]["results"]]
    loop = docs[0]["loop"]
    assert loop["models"]["candidates"] == ["gp-onehot"]
    assert (loop["acquisition"]["kind"], loop["acquisition"]["mc_samples"]) == ("qlognehvi", 32)
    bad = runner.invoke(app, [*common, "--models", "gp-onehot,svm"])
    assert bad.exit_code == 2 and "--models gp-onehot,svm" in bad.stderr and "Traceback" not in bad.stderr
    for wrong, said in {
        "acquisition.kidn=qlognehvi": "did you mean 'kind'",
        "acquisition.kind=nehvi": "acquisition.kind",
        "acquisition.mc_samples=4": "mc_samples",
        "targets.0.reference=1": "give acquisition.KEY or models.KEY",
        "acquisition.kind": "give SECTION.KEY=VALUE",
    }.items():
        bad = runner.invoke(app, [*common, "--set", wrong])
        assert bad.exit_code == 2 and said in bad.stderr and "Traceback" not in bad.stderr, (wrong, bad.stderr)


def test_the_loop_explores_with_models_explore_with_whatever_cross_validation_chose(tmp_path):
    """models.explore_with: a loop whose targets are all predicted by a constant but explore with gp-onehot
    proposes exactly the recipes of a gp-onehot loop; explore_with null (``chosen``) explores with the constant."""
    from optimize.benchmark import run_cells
    from optimize.config import with_models

    base = load_config(make_campaign(tmp_path, models=GP_ONLY))
    settings = BenchmarkSettings(("botorch",), (0,), n_initial=6, batches=2, batch_size=2)

    def recipes(config):
        return run_cells(virtual_lab_problem(config), settings, workers=1)[0].recipes

    gp = recipes(base)
    constant = with_models(base, ("constant",), None)
    assert constant.models.explore_with == "gp-onehot"
    assert recipes(constant) == gp
    assert recipes(with_models(base, ("constant",), "chosen"))[6:] != gp[6:]
