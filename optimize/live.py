"""A campaign kept open: warm models in memory, retrains in the background, coalesced.

``kiln serve`` holds one per campaign, and so can a notebook (``optimize.open_campaign``). Suggest and predict
use the newest fitted models that exist (their data version is reported), so an ingest never makes a caller
wait for a retrain. After an ingest, one retrain of the newest data runs in a fresh ``kiln retrain`` process
(model selection there forks its own workers, which a threaded server must not do); ingests that arrive
meanwhile only mark the data dirty, so any number of them during one retrain cause one more retrain, not one
each. The retrain process writes the model cache; this process loads it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from optimize.campaign import ParsedBatches, load_campaign
from optimize.config import CampaignConfig, load_config
from optimize.errors import KilnError

log = logging.getLogger("kiln.live")
LOG_QUIET_S = 1.0  # a suggestion's MLflow logging waits until no suggestion has run for this long ...
LOG_MAX_DELAY_S = 60.0  # ... or until it has waited this long


def _logging_process() -> None:
    """The logging process's initializer: run at a lower priority than the server's requests, and end with the
    server even if it is killed (a pool worker waits on a queue it holds both ends of, so it would outlive it)."""
    os.nice(10)
    server = os.getppid()

    def watch() -> None:
        while os.getppid() == server:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="watch-server", daemon=True).start()


class RetrainFailed(KilnError):
    """The background retrain process failed; its message holds the process's last output lines."""


class LiveCampaign:
    """One campaign with warm models. Thread-safe: a server calls it from many request threads.

    ``retrains`` counts the retrain processes run (coalescing is visible in it); ``models_version`` is the data
    version of the models in memory.
    """

    def __init__(self, config: CampaignConfig) -> None:
        if config.source_path is None:
            raise KilnError(f"campaign {config.name!r}: open it from its YAML file (load_config) to serve it")
        self.config = config
        self.retrains = 0
        self.last_error: str | None = None
        self._fitted: Any = None  # optimize.models.FittedModels
        self._parsed = ParsedBatches()
        self._cond = threading.Condition()
        self._dirty = False  # newer data than the models and no retrain queued for it yet
        self._running = False
        self._closed = False
        self._worker = threading.Thread(target=self._retrain_loop, name=f"retrain-{config.name}", daemon=True)
        self._worker.start()
        # A suggestion's MLflow logging (about a second of CPU, the Pareto figure most of it) runs after the answer,
        # once no suggestion has been running for LOG_QUIET_S (or a run has waited LOG_MAX_DELAY_S), in a process
        # of its own at a lower priority: run at once, it slowed back-to-back suggestions by 20-30 % each.
        self._log_jobs: deque[tuple[float, Callable[..., Any], tuple]] = deque()
        self._suggesting = 0
        self._quiet_since = time.monotonic()
        self._logging = ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"), initializer=_logging_process
        )
        self._logger = threading.Thread(target=self._log_loop, name=f"mlflow-{config.name}", daemon=True)
        self._logger.start()

    @classmethod
    def open(cls, path: str | Path) -> LiveCampaign:
        """The campaign of a config file (its models are loaded from the cache, or fitted, at first use)."""
        return cls(load_config(path))

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def models_version(self) -> str | None:
        return None if self._fitted is None else self._fitted.data_version

    # ---- the models ---------------------------------------------------------------------------
    def _models(self, campaign) -> Any:
        """The newest models: in memory, else cached for this data, else the latest cache of older data, else
        fitted now (in a retrain process, waited for). Queues a retrain when the data are newer than them."""
        from optimize.models import latest_cached, load_cached

        with self._cond:
            if self._fitted is not None and self._fitted.data_version == campaign.version:
                return self._fitted
            known = self._fitted is not None
        fresh = load_cached(self.config, campaign.version)
        older = None if fresh is not None or known else latest_cached(self.config, campaign.version)
        with self._cond:
            if fresh is not None:
                self._fitted = fresh
                return fresh
            if self._fitted is None:
                self._fitted = older
            if not (self._running or self._dirty):  # data changed outside this process, or nothing cached
                self._dirty = True
                self._cond.notify_all()
            if self._fitted is None:
                self._wait_idle()
                if self._fitted is None:
                    raise RetrainFailed(f"campaign {self.name!r}: no models could be fitted: {self.last_error}")
            return self._fitted

    def _wait_idle(self, timeout: float | None = None) -> bool:
        """Wait (holding the condition) until no retrain is queued or running."""
        return self._cond.wait_for(lambda: not (self._dirty or self._running), timeout)

    def wait_for_models(self, timeout: float | None = None) -> bool:
        """Block until the models are fitted on the newest data (any retrain queued has run). False on timeout."""
        with self._cond:
            return self._wait_idle(timeout)

    def request_retrain(self) -> None:
        """Queue a retrain of the newest data (merged with one already queued)."""
        with self._cond:
            self._dirty = True
            self._cond.notify_all()

    def _retrain_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._dirty or self._closed)
                if self._closed:
                    return
                self._dirty, self._running = False, True
            error, fitted = self._retrain_once()
            with self._cond:
                self.retrains += 1
                self.last_error = error
                if fitted is not None:
                    self._fitted = fitted
                self._running = False
                self._cond.notify_all()

    def _retrain_once(self) -> tuple[str | None, Any]:
        """Run ``kiln retrain`` on this campaign in a fresh process; load the models it cached (an error
        message instead when it failed)."""
        from optimize.models import latest_cached

        cmd = [sys.executable, "-m", "optimize.cli", "--quiet", "retrain", "--keep-choice"]
        cmd += ["--config", str(self.config.source_path)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            return f"kiln retrain exited with {done.returncode}: {tail}", None
        return None, latest_cached(self.config, "")  # the cache that process just wrote

    def close(self) -> None:
        """Stop the retrain thread (after the retrain in progress, if any) and finish the MLflow logging."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._worker.join()
        self._logger.join()
        self._logging.shutdown(wait=True)

    def _defer(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue a suggestion's MLflow logging (see ``__init__``)."""
        with self._cond:
            self._log_jobs.append((time.monotonic(), fn, args))
            self._cond.notify_all()

    def _log_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._log_jobs or self._closed)
                if not self._log_jobs:
                    return  # closed, nothing left to log
                while not self._closed:
                    now = time.monotonic()
                    if self._suggesting == 0 and now - self._quiet_since >= LOG_QUIET_S:
                        break
                    if now - self._log_jobs[0][0] >= LOG_MAX_DELAY_S:
                        break
                    self._cond.wait(LOG_QUIET_S)
                _, fn, args = self._log_jobs.popleft()
            try:
                self._logging.submit(fn, *args).result()
            except Exception as e:  # a failed log must not stop the ones after it
                log.error("MLflow logging of a suggestion failed: %s", e)

    # ---- what a caller does -------------------------------------------------------------------
    def summary(self, short: bool = False) -> dict[str, Any]:
        """Name, experiments and data version; unless ``short`` also the inputs, targets, pending suggestions,
        batches, the models in memory and the retrain state."""
        campaign = load_campaign(self.config, self._parsed)
        doc: dict[str, Any] = {
            "name": self.name,
            "n_experiments": len(campaign.experiments),
            "data_version": campaign.version,
        }
        if short:
            return doc
        with self._cond:
            fitted, running, queued = self._fitted, self._running, self._dirty
        return {
            **doc,
            "inputs": [i.model_dump(mode="json") for i in self.config.inputs],
            "targets": [t.model_dump(mode="json") for t in self.config.targets],
            "n_pending": len(campaign.pending),
            "n_batches": len(campaign.batches),
            "models": {
                "data_version": None if fitted is None else fitted.data_version,
                "chosen": {} if fitted is None else fitted.chosen(),
            },
            "retrain": {"running": running, "queued": queued, "done": self.retrains, "last_error": self.last_error},
        }

    def suggest(self, n: int, seed: int = 0, wait: bool = False):
        """Propose ``n`` recipes (``optimize.service.SuggestResult``) with the newest models; with ``wait``,
        first let any queued retrain finish so the models cover every ingested row."""
        from optimize import service

        if wait:
            self.wait_for_models()
        with self._cond:
            self._suggesting += 1
        try:
            return service.suggest(self.config, n, seed, models=self._models, parsed=self._parsed, defer=self._defer)
        finally:
            with self._cond:
                self._suggesting -= 1
                self._quiet_since = time.monotonic()
                self._cond.notify_all()

    def ingest(self, data: bytes, source: str, retrain: bool = True, by: str | None = None):
        """Add a filled batch (a CSV's bytes; ``source`` names it in errors) and queue a retrain."""
        from optimize import service

        result = service.ingest_data(self.config, data, source, retrain_models=False, parsed=self._parsed, by=by)
        if retrain:
            self.request_retrain()
        return result

    def predict(self, data: bytes, source: str):
        """Predictions for the recipes of a CSV's bytes (``optimize.service.PredictResult``)."""
        from optimize import service

        return service.predict_data(self.config, data, source, models=self._models, parsed=self._parsed)

    def history(self, with_runs: bool = True):
        """``optimize.service.HistoryResult``: experiments, best values, Pareto set, pending, MLflow runs."""
        from optimize import service

        return service.history(self.config, with_runs=with_runs, parsed=self._parsed)


class Lab:
    """The Python API: a campaign opened from its config, with DataFrames in and out.

    >>> lab = open_campaign("configs/cspbbr3_sio2.yaml")  # doctest: +SKIP
    >>> batch = lab.suggest(4)        # experiment_id, batch, the inputs, predicted <target>_mean / _std
    >>> batch["plqy"] = [...]         # fill in what the bench measured (any target may stay empty)
    >>> lab.ingest(batch)             # or a filled template CSV; the models refit in the background
    >>> lab.history()                 # every experiment so far
    """

    def __init__(self, live: LiveCampaign) -> None:
        self.live = live

    def suggest(self, n: int = 4, seed: int = 0) -> pd.DataFrame:
        """``n`` recipes, recorded as pending: ``experiment_id``, ``batch``, the inputs, and per target the
        predicted ``<target>_mean`` and ``<target>_std``. Waits for a retrain of newly ingested data first."""
        result = self.live.suggest(n, seed, wait=True)
        rows = []
        for s in result.suggestions:
            row: dict[str, Any] = {"experiment_id": s.id, "batch": result.batch, **s.inputs}
            for t, p in s.predicted.items():
                row[f"{t}_mean"], row[f"{t}_std"] = p["mean"], p["std"]
            rows.append(row)
        return pd.DataFrame(rows)

    def ingest(self, batch: str | Path | pd.DataFrame) -> int:
        """Add a filled batch: a CSV path, or a DataFrame such as :meth:`suggest`'s with measured target columns
        added (its prediction columns are left out). Returns the rows added; the models refit in the background."""
        from optimize.campaign import rows_csv
        from optimize.validation import read_data_file, table_columns

        if isinstance(batch, pd.DataFrame):
            predicted = {f"{t}_{k}" for t in self.live.config.target_names for k in ("mean", "std")}
            rows = batch.drop(columns=[c for c in batch.columns if c in predicted]).to_dict(orient="records")
            return self.live.ingest(rows_csv(rows, table_columns(self.live.config)), "DataFrame").rows
        return self.live.ingest(read_data_file(Path(batch)), str(batch)).rows

    def history(self) -> pd.DataFrame:
        """Every experiment so far (inputs, targets, qualifiers, status, source)."""
        return self.live.history(with_runs=False).experiments

    def predict(self, recipes: pd.DataFrame) -> pd.DataFrame:
        """``recipes`` (input columns) with ``<target>_mean`` and ``<target>_std`` columns added (after a retrain
        of newly ingested data)."""
        from optimize.campaign import csv_bytes

        self.live.wait_for_models()
        result = self.live.predict(csv_bytes(recipes), "DataFrame")
        out = recipes.reset_index(drop=True).copy()
        for t, (mean, std) in result.predicted.items():
            out[f"{t}_mean"], out[f"{t}_std"] = mean, std
        return out

    def close(self) -> None:
        """Stop the background retrain thread (after a retrain in progress)."""
        self.live.close()


def open_campaign(config: str | Path) -> Lab:
    """Open a campaign for use from Python (see :class:`Lab`)."""
    return Lab(LiveCampaign.open(config))
