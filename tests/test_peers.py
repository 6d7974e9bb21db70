"""Peers as benchmark strategies: Ax (Client) and BayBE (Campaign) on tiny problems, under the same protocol."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from optimize.benchmark import BenchmarkSettings, lookup_problem, oracle_problem, run_benchmark
from optimize.config import load_config
from tests.conftest import ROOT
from tests.test_benchmark import ORACLE

PEERS = ("ax", "baybe")


@pytest.fixture
def toy(tmp_path):
    from tests.test_other_campaign import CONFIG

    raw = {
        **CONFIG,
        "inputs": [*CONFIG["inputs"], {"name": "dose", "type": "continuous", "lower": 0.5, "upper": 2, "step": 0.5}],
        "conditions": [{"when": {"solvent": "water"}, "set": {"dose": 0}}],
    }
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(raw))
    oracle = tmp_path / "toy_oracle.py"
    oracle.write_text(ORACLE)
    return oracle_problem(load_config(path), str(oracle))


def test_peers_run_the_same_protocol_and_respect_conditions(toy):
    asked = []
    measure = toy.measure
    problem = toy.__class__(
        toy.config, lambda r: asked.append(dict(r)) or measure(r), toy.truth, toy.reseed, None, "toy"
    )
    settings = BenchmarkSettings(("random", *PEERS), (0,), n_initial=4, batches=2, batch_size=2)
    frame = run_benchmark(problem, settings).frame()
    assert set(frame.strategy) == {"random", *PEERS} and frame.hypervolume.between(0, 1).all()
    assert frame[frame.batch == 0].hypervolume.nunique() == 1  # the same initial design for all
    assert (frame[frame.batch > 0].groupby("strategy").seconds.max() > 0).all()
    assert len(asked) == 3 * (4 + 2 * 2)
    for r in asked:  # conditions and steps applied to every proposal
        assert (r["dose"] == 0) if r["solvent"] == "water" else (r["dose"] in (0.5, 1.0, 1.5, 2.0))
        assert 1 <= r["time_h"] <= 10


@pytest.mark.parametrize("peer", PEERS)
def test_peers_pick_only_untried_rows_of_a_lookup_table(peer):
    folder = ROOT / "benchmarks" / "problems" / "suzuki_flow"
    problem = lookup_problem(load_config(folder / "config.yaml"), folder / "table.csv")
    asked = []
    measure = problem.measure
    problem = problem.__class__(
        problem.config, lambda r: asked.append(dict(r)) or measure(r), None, None, problem.pool, "suzuki"
    )
    res = run_benchmark(problem, BenchmarkSettings((peer,), (0,), n_initial=4, batches=2, batch_size=3))
    keys = [tuple(r.values()) for r in asked]
    rows = {tuple(r) for r in problem.pool[list(problem.config.input_names)].itertuples(index=False)}
    assert len(set(keys)) == len(keys) == 10 and set(keys) <= rows
    assert np.isfinite(res.frame().hypervolume).all()


def test_a_peer_without_its_package_names_the_extra(monkeypatch, toy):
    import sys

    from optimize.benchmark import BenchmarkError

    for name in ["ax", "ax.api", "ax.api.client", *(k for k in sys.modules if k.startswith("ax."))]:
        monkeypatch.setitem(sys.modules, name, None)  # as if ax-platform were not installed
    with pytest.raises(BenchmarkError, match=r"pip install -e '.\[peers\]'"):
        run_benchmark(toy, BenchmarkSettings(("ax",), (0,), n_initial=3, batches=1, batch_size=1))
