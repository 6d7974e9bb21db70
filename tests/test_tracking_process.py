"""A fresh command's MLflow tracking in a process of its own, the ``kiln`` entry point's quick exit, and the Pareto
mask that reports and figures use without torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from tests.conftest import ROOT


def test_a_run_whose_command_ends_before_logging_is_ended_failed(config):
    """The command asks for the run early and gets its id; if it then fails (no logging handed over), the tracking
    process ends the run FAILED, says why in a tag, and exits."""
    from mlflow.tracking import MlflowClient

    from optimize.tracking import wait_for_run
    from optimize.tracking_process import TrackingProcess

    tracking = TrackingProcess(config)
    run_id = tracking.open_run("suggest", "v0")()
    client = MlflowClient(config.tracking_uri)
    run = client.get_run(run_id)
    assert run.info.status == "RUNNING" and run.data.tags["kiln.kind"] == "suggest"
    assert run.data.tags["kiln.data_version"] == "v0"
    tracking.close()
    assert wait_for_run(config, run_id, timeout_s=60) == "FAILED"
    assert "ended before logging" in client.get_run(run_id).data.tags["kiln.error"]


def test_the_kiln_command_exits_with_its_code_and_its_output_flushed(tmp_path):
    """``kiln`` leaves without tearing the interpreter down (``optimize.cli.run``): what it printed is all there,
    on the right stream, and the exit code is the command's."""

    def kiln(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "optimize.cli", *args]
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)

    helped = kiln("--help")
    assert helped.returncode == 0 and "suggest" in helped.stdout and "ingest" in helped.stdout
    missing = kiln("suggest", "--config", str(tmp_path / "nowhere.yaml"))
    assert missing.returncode == 2 and "config file not found" in missing.stderr and missing.stdout == ""
    bad = kiln("suggest", "-n", "0")
    assert bad.returncode == 2 and "-n" in bad.stderr  # typer's usage error


def test_the_pareto_mask_is_botorchs(config):
    """Non-dominated rows in NumPy, as BoTorch's ``is_non_dominated`` (duplicates kept) finds them: on tied and
    repeated values, in both directions of optimization (FWHM is minimized), and across blocks of 256 rows."""
    import torch
    from botorch.utils.multi_objective.pareto import is_non_dominated

    from optimize.pareto import objectives, pareto_mask

    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 60, 600):
        values = rng.integers(0, 4, size=(n, len(config.target_names))).astype(float)
        expected = is_non_dominated(torch.as_tensor(objectives(values, config)), deduplicate=False).numpy()
        got = pareto_mask(values, config)
        assert got.dtype == bool and (got == expected).all()
    assert pareto_mask(np.array([[50.0, 20.0, 1.0, 1.0], [50.0, 20.0, 1.0, 1.0]]), config).all()  # equal: both kept
