"""``kiln benchmark --ray-address``: the (strategy, seed) cells as tasks on a real Ray cluster (a head started
on loopback for the test, stopped after), with the results of a local run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from optimize.benchmark import BenchmarkSettings, run_benchmark, virtual_lab_problem
from optimize.cli import app
from optimize.config import load_config
from optimize.parallel import ray_map
from optimize.server import stop_group
from tests.conftest import free_port, make_campaign
from tests.test_benchmark import GP_ONLY, ORACLE

runner = CliRunner()


class RayHead:
    """``ray start --head --block`` on 127.0.0.1 with 2 CPUs, in a process group of its own (stopped with it)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.tmp = tempfile.mkdtemp(prefix="kiln-ray-")  # short: Ray's socket paths live under it

    def __enter__(self) -> RayHead:
        ray = Path(sys.executable).with_name("ray")
        cmd = [str(ray), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", self.tmp]
        log = open(Path(self.tmp) / "head.log", "w")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while subprocess.run([str(ray), "status", "--address", self.address], capture_output=True).returncode:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"the Ray head did not start: {(Path(self.tmp) / 'head.log').read_text()[-2000:]}")
            time.sleep(1)
        return self

    def __exit__(self, *exc: object) -> None:
        stop_group(self.proc, grace=20)
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.mark.slow
def test_benchmark_cells_on_a_ray_cluster_equal_a_local_run(tmp_path):
    gp_config = load_config(make_campaign(tmp_path / "vl", models=GP_ONLY))
    settings = BenchmarkSettings(("botorch", "random"), (0, 1), n_initial=4, batches=1, batch_size=2)
    toy = tmp_path / "toy.yaml"
    from tests.test_other_campaign import CONFIG

    toy.write_text(yaml.safe_dump({**CONFIG, "models": GP_ONLY}))
    oracle = tmp_path / "toy_oracle.py"
    oracle.write_text(ORACLE)  # a user's module: sent to the cluster by value
    common = ["benchmark", "--oracle", str(oracle), "--strategies", "random,botorch", "--seeds", "2", "--initial", "3"]
    common += ["--batches", "1", "--batch-size", "2", "--format", "json", "--config", str(toy)]
    local = run_benchmark(virtual_lab_problem(gp_config), settings, workers=1)
    local_cli = runner.invoke(app, [*common, "--workers", "1"])
    assert local_cli.exit_code == 0, local_cli.stderr
    with RayHead() as head:
        on_ray = run_benchmark(virtual_lab_problem(gp_config), settings, ray_address=head.address)
        ray_cli = runner.invoke(app, [*common, "--ray-address", head.address])
        assert ray_cli.exit_code == 0, ray_cli.stderr
        where = ray_map(lambda i: (i, os.getpid(), os.environ.get("OMP_NUM_THREADS")), range(4), head.address)
    key = ["strategy", "seed", "batch", "n_experiments", "hypervolume", "feasible"]
    assert local.frame()[key].equals(on_ray.frame()[key])
    assert [r["hypervolume"] for r in json.loads(local_cli.stdout)["results"]] == [
        r["hypervolume"] for r in json.loads(ray_cli.stdout)["results"]
    ]
    # the items ran as Ray tasks in the cluster's worker processes, on one thread each, in the items' order
    assert [w[0] for w in where] == [0, 1, 2, 3]
    assert os.getpid() not in {w[1] for w in where} and {w[2] for w in where} == {"1"}
