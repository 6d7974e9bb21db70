"""A lab's tracking server: ``kiln ui`` over a real PostgreSQL (Debian's package, a throwaway cluster on a free
loopback port) with MLflow's login, serving the artifacts; two campaigns' kiln commands write through it."""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, free_port, make_campaign, run_kiln
from tests.test_ui import UI

PG_PASSWORD = "pg-test-password-7"
ADMIN_PASSWORD = "a-long-test-password-1"


class Postgres:
    """A PostgreSQL cluster in a temporary folder (``initdb``, ``pg_ctl``), password login over loopback TCP.

    PostgreSQL refuses to run as root, so as root its programs run as Debian's ``postgres`` user."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise RuntimeError("PostgreSQL is not installed: `make postgres` (Debian's postgresql package)")
        self.bin = Path(found[-1]).parent
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="kiln-pg-"))
        self.as_user: list[str] = []
        if os.getuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.uri = f"postgresql+psycopg://kiln@127.0.0.1:{self.port}/kiln"

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self.as_user, *cmd], check=True, capture_output=True, text=True, timeout=120)

    def __enter__(self) -> Postgres:
        data, pwfile = self.dir / "data", self.dir / "pw"
        pwfile.write_text(PG_PASSWORD)
        if self.as_user:
            shutil.chown(pwfile, "postgres")
        self._run(
            str(self.bin / "initdb"), "-D", str(data), "-U", "kiln", "--pwfile", str(pwfile), "-E", "UTF8",
            "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "--no-sync",
        )  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.dir} -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE kiln")
        return self

    def dsn(self, database: str = "kiln") -> str:
        return f"host=127.0.0.1 port={self.port} user=kiln password={PG_PASSWORD} dbname={database}"

    def __exit__(self, *exc: object) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def _renamed(config_path: Path, name: str) -> Path:
    raw = yaml.safe_load(config_path.read_text())
    raw["name"] = name
    config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return config_path


@pytest.mark.slow
def test_two_campaigns_track_through_an_mlflow_server_on_postgresql(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from optimize.benchmark import virtual_lab_batch
    from optimize.config import load_config

    small = {"candidates": ["gp-onehot", "constant"], "importance_repeats": 1}
    lab_a = _renamed(make_campaign(tmp_path / "a", models=small), "lab_a")
    lab_b = _renamed(make_campaign(tmp_path / "b", models=small), "lab_b")
    batch = tmp_path / "batch.csv"
    batch.write_bytes(virtual_lab_batch(load_config(lab_b), 4, seed=3)[1])
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    server_config = _renamed(make_campaign(server_dir), "lab_server")
    artifacts = tmp_path / "served-artifacts"
    with Postgres() as pg:
        server_env = {**os.environ, "PGPASSWORD": PG_PASSWORD, "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD}
        server_env.pop("MLFLOW_TRACKING_URI", None)
        ui = UI(
            server_config,
            *("--auth", "--backend-store-uri", pg.uri, "--artifacts-destination", str(artifacts)),
            env=server_env,
        )
        with ui:
            public = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
            public["MLFLOW_TRACKING_URI"] = ui.url
            env = public | {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD}
            # campaign A: a retrain (metrics, model files), then a suggestion that loads those files back
            run_kiln(env, "retrain", "--config", str(lab_a))
            suggested = json.loads(
                run_kiln(env, "suggest", "-n", "2", "--format", "json", "--config", str(lab_a)).stdout
            )
            assert len(suggested["suggestions"]) == 2
            # campaign B: an ingest, a benchmark and a history with plots
            run_kiln(env, "ingest", str(batch), "--no-retrain", "--config", str(lab_b))
            run_kiln(
                env, "benchmark", "--strategies", "random", "--seeds", "1", "--batches", "1", "--config", str(lab_b)
            )
            run_kiln(env, "history", "--plot", str(tmp_path / "plots"), "--config", str(lab_b))
            history = json.loads(run_kiln(env, "history", "--format", "json", "--config", str(lab_a)).stdout)

            monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
            monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
            client = MlflowClient(tracking_uri=ui.url)
            kinds = {}
            for name in ("lab_a", "lab_b"):
                exp = client.get_experiment_by_name(name)
                assert exp.artifact_location.startswith("mlflow-artifacts:")  # the server keeps the files
                for run in client.search_runs([exp.experiment_id]):
                    kinds.setdefault(name, {})[run.data.tags["kiln.kind"]] = run
            assert {"retrain", "suggest"} <= set(kinds["lab_a"])
            assert {"ingest", "benchmark", "history"} <= set(kinds["lab_b"])
            retrain = kinds["lab_a"]["retrain"]
            assert "plqy.cv_nlpd" in retrain.data.metrics
            assert client.list_artifacts(retrain.info.run_id)
            plots = {a.path for a in client.list_artifacts(kinds["lab_b"]["history"].info.run_id)}
            assert "progress.png" in plots
            # kiln history reads the campaign's runs back from the server
            assert {r["kind"] for r in history["runs"]} >= {"retrain", "suggest"}
            assert any("plqy.cv_nlpd" in r["metrics"] for r in history["runs"] if r["kind"] == "retrain")
            # anonymous requests are refused
            anonymous = subprocess.run(
                [sys.executable, "-m", "optimize.cli", "--quiet", "history", "--config", str(lab_a)],
                cwd=ROOT,
                env=public,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert anonymous.returncode != 0 and "not authenticated" in anonymous.stderr

        # everything is in PostgreSQL and the served folder, nothing in the chemists' own stores
        import psycopg

        with psycopg.connect(pg.dsn()) as conn:
            names = {r[0] for r in conn.execute("SELECT name FROM experiments")}
            n_runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
            users = {r[0] for r in conn.execute("SELECT username FROM users")}
        assert {"lab_a", "lab_b"} <= names and n_runs >= 6 and "admin" in users
        assert any(p.name == "progress.png" for p in artifacts.rglob("*"))
    for folder in ("a", "b"):
        assert not (tmp_path / folder / "mlruns" / "mlflow.db").exists()
