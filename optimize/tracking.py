"""MLflow tracking: one experiment per campaign, one run per retrain, suggest or ingest.

The store is ``sqlite:///<tracking_dir>/mlflow.db`` with artifacts in ``<tracking_dir>/artifacts``
unless ``MLFLOW_TRACKING_URI`` points elsewhere (e.g. a shared tracking server). Only the
``MlflowClient`` API is used: no global active run, no global tracking URI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from optimize.config import CampaignConfig


def client_and_experiment(config: CampaignConfig):
    """An ``MlflowClient`` on the campaign's store and the id of the campaign's experiment (created if need be)."""
    import os

    from mlflow.tracking import MlflowClient

    uri = config.tracking_uri
    if not uri.startswith("sqlite:///"):
        # Against a tracking server MLflow writes "View run ... at: URL" to stdout as each run ends, which would
        # corrupt `--format json` output (and costs a request); kiln reports its run ids itself.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        return _experiment(MlflowClient(tracking_uri=uri), config, uri)
    # A local SQLite store: creating the schema and the experiment is serialized between processes
    # (eight concurrent ``kiln ingest`` would otherwise race on the first migration).
    from filelock import FileLock

    db = Path(uri[len("sqlite:///") :])
    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(db) + ".lock", timeout=300):
        return _experiment(MlflowClient(tracking_uri=uri), config, uri)


# MLflow 3's UI opens an experiment on its GenAI (traces) view unless told it holds model-development runs.
KIND_TAG = ("mlflow.experimentKind", "custom_model_development")


def _experiment(client, config: CampaignConfig, uri: str):
    exp = client.get_experiment_by_name(config.name)
    if exp is not None:
        if exp.tags.get(KIND_TAG[0]) is None:
            client.set_experiment_tag(exp.experiment_id, *KIND_TAG)
        return client, exp.experiment_id
    artifact_location = None
    if uri.startswith("sqlite:///") and uri == f"sqlite:///{config.tracking_path / 'mlflow.db'}":
        artifact_location = (config.tracking_path / "artifacts").as_uri()
    try:
        return client, client.create_experiment(config.name, artifact_location=artifact_location, tags=dict([KIND_TAG]))
    except Exception:  # created concurrently by another process
        exp = client.get_experiment_by_name(config.name)
        if exp is None:
            raise
        return client, exp.experiment_id


class Run:
    """A thin handle on one open MLflow run (from :func:`start_run`); ``with run:`` ends it after the block,
    FINISHED, or FAILED if the block raises (possibly in another thread than the one that opened it)."""

    def __init__(self, client, run_id: str) -> None:
        self.client, self.id = client, run_id

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind, error, trace) -> None:
        self.client.set_terminated(self.id, status="FINISHED" if kind is None else "FAILED")

    def params(self, values: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in values.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.id, params=items[i : i + 100])

    def metrics(self, values: dict[str, float], step: int = 0) -> None:
        self._metrics([(k, v, step) for k, v in values.items()])

    def series(self, name: str, values: list[float], steps: list[int] | None = None) -> None:
        """One metric at several steps (``steps``, default 0, 1, ...), in one write."""
        self._metrics([(name, v, s) for v, s in zip(values, range(len(values)) if steps is None else steps)])

    def _metrics(self, points: list[tuple[str, float | None, int]]) -> None:
        """(name, value, step) points, finite values only, in as few writes as MLflow allows."""
        import math
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, s) for k, v, s in points if v is not None and math.isfinite(float(v))]
        for i in range(0, len(items), 1000):
            self.client.log_batch(self.id, metrics=items[i : i + 1000])

    def tags(self, values: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.id, tags=[RunTag(k, str(v)) for k, v in values.items()])

    def figure(self, fig, name: str) -> None:
        self.client.log_figure(self.id, fig, name)
        if hasattr(fig, "number"):  # made by pyplot (which keeps it until closed)
            import matplotlib.pyplot as plt

            plt.close(fig)

    def json(self, obj: Any, name: str) -> None:
        self.client.log_text(self.id, json.dumps(obj, indent=2, default=str), name)

    def files(self, paths: list[Path], artifact_path: str | None = None) -> None:
        for p in paths:
            self.client.log_artifact(self.id, str(p), artifact_path)

    def has(self, name: str) -> bool:
        return name in {a.path for a in self.client.list_artifacts(self.id)}

    def download(self, name: str, folder: Path) -> Path:
        """Copy artifact ``name`` into ``folder``; returns its path there."""
        import os
        import shutil
        import tempfile

        quiet = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}  # no tqdm bar on stderr for one small file
        saved = {k: os.environ.get(k) for k in quiet}
        os.environ.update(quiet)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                got = Path(self.client.download_artifacts(self.id, name, tmp))
                folder.mkdir(parents=True, exist_ok=True)
                return Path(shutil.copy(got, folder / name))
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def start_run(
    config: CampaignConfig,
    kind: str,
    data_version: str,
    triggered_by: str | None = None,
    parent: str | None = None,
    name: str | None = None,
) -> Run:
    """Open a run named ``<kind>-<data version>`` (or ``name``); ``with start_run(...) as run:`` ends it after the
    block (see :class:`Run`).

    ``triggered_by``: the run that caused this one (an ingest causes a retrain); ``parent``: nest
    this run under another in the MLflow UI (e.g. an Optuna study under its retrain).
    """
    client, exp_id = client_and_experiment(config)
    tags = {"kiln.kind": kind, "kiln.data_version": data_version, "mlflow.runName": name or f"{kind}-{data_version}"}
    if triggered_by:
        tags["kiln.triggered_by"] = triggered_by
    if parent:
        tags["mlflow.parentRunId"] = parent
    run = client.create_run(exp_id, tags=tags)
    return Run(client, run.info.run_id)


def attach_run(config: CampaignConfig, run_id: str) -> Run:
    """A handle on a run opened before, perhaps by another process (``with attach_run(...) as run:`` ends it)."""
    client, _ = client_and_experiment(config)
    return Run(client, run_id)


def latest_run(
    config: CampaignConfig, kind: str, with_artifact: str | None = None, max_results: int = 20
) -> Run | None:
    """The newest finished run of ``kind`` (among the last ``max_results``) that has ``with_artifact``."""
    client, exp_id = client_and_experiment(config)
    runs = client.search_runs(
        [exp_id],
        f"tags.`kiln.kind` = '{kind}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=max_results,
    )
    for r in runs:
        run = Run(client, r.info.run_id)
        if with_artifact is None or run.has(with_artifact):
            return run
    return None


def list_runs(config: CampaignConfig, max_results: int = 50) -> list[dict[str, Any]]:
    """Recent runs of the campaign, newest first: id, kind, status, data version, start time, metrics."""
    client, exp_id = client_and_experiment(config)
    runs = client.search_runs([exp_id], order_by=["attributes.start_time DESC"], max_results=max_results)
    return [
        {
            "run_id": r.info.run_id,
            "kind": r.data.tags.get("kiln.kind", ""),
            "status": r.info.status,
            "data_version": r.data.tags.get("kiln.data_version", ""),
            "start_time": r.info.start_time,
            "metrics": dict(r.data.metrics),
        }
        for r in runs
    ]


def wait_for_run(config: CampaignConfig, run_id: str, timeout_s: float = 120.0) -> str:
    """The status of run ``run_id`` once it has ended (FINISHED, FAILED or KILLED). A fresh ``kiln suggest``'s run is
    filled and ended by its tracking process a second or two after the command has returned
    (:mod:`optimize.tracking_process`). Raises ``TimeoutError`` after ``timeout_s``."""
    import time

    client, _ = client_and_experiment(config)
    deadline = time.monotonic() + timeout_s
    while (status := client.get_run(run_id).info.status) in ("RUNNING", "SCHEDULED"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"MLflow run {run_id} is still {status} after {timeout_s:.0f} s")
        time.sleep(0.1)
    return status
