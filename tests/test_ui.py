"""``kiln ui``: the MLflow UI over the campaign's store, private to this machine unless ``--host``."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, run_kiln


def listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses with a socket listening on ``port`` (from /proc/net/tcp)."""
    out = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, p = local.split(":")
        if state == "0A" and int(p, 16) == port:  # 0A = LISTEN
            out.add(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
    return out


def wait_http(url: str, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{url} did not answer within {timeout} s")
        time.sleep(0.5)


class UI:
    """``kiln ui`` running in its own process group."""

    def __init__(self, config_path: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "optimize.cli",
                "ui",
                "--config",
                str(config_path),
                "--port",
                str(self.port),
                *extra,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            env=env,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> UI:
        try:
            wait_http(self.url + "/health")
        except TimeoutError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)


def _live_processes() -> dict[int, tuple[int, str]]:
    """pid -> (process group, command line) of every process that is not a zombie (from /proc)."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        state, _, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if state != "Z":
            out[int(d.name)] = (int(pgrp), cmd)
    return out


@pytest.mark.slow
def test_ui_listens_on_localhost_only_unless_host_is_given(config_path, config):
    with UI(config_path) as ui:
        assert listening_addresses(ui.port) == {"127.0.0.1"}
        store = str(config.tracking_path)
        groups = {g for g, cmd in _live_processes().values() if "mlflow server" in cmd and store in cmd}
        assert len(groups) == 1  # the MLflow server (with its workers and job consumers) in a group of its own
    # stopping kiln ui (SIGTERM, as a service manager does) stops every process of the server's group
    left = [(pid, cmd) for pid, (g, cmd) in _live_processes().items() if g in groups]
    assert not left, left
    refused = subprocess.run(
        [sys.executable, "-m", "optimize.cli", "ui", "--config", str(config_path), "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2 and "--auth" in refused.stderr
    env = {**os.environ, "MLFLOW_AUTH_ADMIN_PASSWORD": "a-long-test-password-1"}
    with UI(config_path, "--host", "0.0.0.0", "--auth", env=env) as ui:
        assert listening_addresses(ui.port) == {"0.0.0.0"}
        api = ui.url + "/api/2.0/mlflow/experiments/search?max_results=5"
        with pytest.raises(urllib.error.HTTPError) as anonymous:
            urllib.request.urlopen(api, timeout=10)
        assert anonymous.value.code == 401
        login = base64.b64encode(b"admin:a-long-test-password-1").decode()
        request = urllib.request.Request(api, headers={"Authorization": f"Basic {login}"})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 200


CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
# flags for a closed network (the machine notes: without them Chromium keeps dialling out)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.slow
def test_the_mlflow_ui_shows_the_campaign_runs_and_metrics_in_a_real_browser(config_path, config):
    """``kiln ui`` in headless Chromium (playwright): the campaign's experiment, its retrain run and the
    run's metrics are on the page. Screenshots go to ``test-artifacts/``."""
    from mlflow.tracking import MlflowClient
    from playwright.sync_api import sync_playwright

    from optimize.service import retrain

    result = retrain(config)
    client = MlflowClient(tracking_uri=config.tracking_uri)
    exp = client.get_experiment_by_name(config.name)
    run = client.get_run(result.mlflow_run_id)
    run_name = run.data.tags["mlflow.runName"]
    ARTIFACTS.mkdir(exist_ok=True)
    with UI(config_path) as ui, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{ui.url}/#/experiments/{exp.experiment_id}/runs", wait_until="domcontentloaded")
            page.get_by_text(config.name).first.wait_for(timeout=60_000)
            page.get_by_text(run_name).first.wait_for(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "mlflow_experiment.png"), full_page=True)
            page.goto(
                f"{ui.url}/#/experiments/{exp.experiment_id}/runs/{result.mlflow_run_id}", wait_until="domcontentloaded"
            )
            page.get_by_text("plqy.cv_nlpd").first.wait_for(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "mlflow_run.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "mlflow_run.png").stat().st_size > 10_000


@pytest.mark.slow
def test_shared_server_mode_two_chemists_one_history(config_path, tmp_path):
    """``MLFLOW_TRACKING_URI`` at a tracking server (here ``kiln ui`` over a SQLite store on
    localhost): two chemists' kiln commands, from their own folders, land in one history."""
    from mlflow.tracking import MlflowClient

    from tests.conftest import make_campaign

    second = make_campaign(tmp_path / "chemist2")
    with UI(config_path) as server:
        env = {**os.environ, "MLFLOW_TRACKING_URI": server.url}
        for cfg, out in ((config_path, tmp_path / "p1"), (second, tmp_path / "p2")):
            run_kiln(env, "history", "--plot", str(out), "--config", str(cfg))
        client = MlflowClient(tracking_uri=server.url)
        exp = client.get_experiment_by_name("cspbbr3_sio2")
        runs = client.search_runs([exp.experiment_id], "tags.`kiln.kind` = 'history'")
        assert len(runs) == 2
        for run in runs:  # artifacts reachable through the server
            assert "progress.png" in {a.path for a in client.list_artifacts(run.info.run_id)}
    # neither chemist wrote a private store
    assert not (tmp_path / "chemist2" / "mlruns" / "mlflow.db").exists()
