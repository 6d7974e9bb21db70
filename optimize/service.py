"""What the CLI commands do, as functions that return plain results (tests call these too)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from optimize.campaign import (
    SUGGESTION_ID,
    BatchFile,
    ingest_batch,
    ledger_columns,
    load_campaign,
    next_batch_id,
    record_suggestions,
    utc_now,
    write_template,
)
from optimize.config import CampaignConfig
from optimize.fileio import campaign_lock
from optimize.pareto import best_so_far, pareto_set
from optimize.validation import BATCH, ID


def _clean(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        return None if np.isnan(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return None if v == "" else v


# ---- retrain --------------------------------------------------------------------------------
@dataclass(frozen=True)
class TargetReport:
    target: str
    model: str
    n_rows: int
    n_censored: int
    loo_rmse: float | None
    loo_nlpd: float | None
    loo_coverage90: float | None


@dataclass(frozen=True)
class RetrainResult:
    data_version: str
    targets: list[TargetReport]
    mlflow_run_id: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _loo_report(name: str, surrogate) -> tuple[TargetReport, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    from surrogate.gp import loo_predict

    y = np.asarray(surrogate.train_y_, float)
    n_cens = int(np.asarray(surrogate.imputed_).sum())
    if len(y) < 3:
        return TargetReport(name, "gp", len(y), n_cens, None, None, None), (y, y * np.nan, y * np.nan)
    mu, sd = loo_predict(surrogate)
    keep = ~np.asarray(surrogate.imputed_, bool)  # score on observed values only
    err = (mu - y)[keep]
    sdk = sd[keep]
    rmse = float(np.sqrt(np.mean(err**2)))
    nlpd = float(np.mean(0.5 * np.log(2 * np.pi * sdk**2) + 0.5 * (err / sdk) ** 2))
    cover = float(np.mean(np.abs(err) <= 1.645 * sdk))
    return TargetReport(name, "gp", len(y), n_cens, rmse, nlpd, cover), (y[keep], mu[keep], sd[keep])


def retrain(config: CampaignConfig, parent_run_id: str | None = None) -> RetrainResult:
    """Refit every target's GP, score it by leave-one-out, log params/metrics/plots/models to MLflow."""
    from optimize.models import fit_models
    from optimize.plots import parity_figure
    from optimize.tracking import save_model_artifacts, start_run
    from surrogate.gp import hyperparameters

    t0 = time.perf_counter()
    campaign = load_campaign(config)
    fitted = fit_models(campaign)
    reports, loo = [], {}
    with start_run(config, "retrain", campaign.version, parent_run_id) as run:
        params: dict[str, Any] = {"n_experiments": len(campaign.experiments)}
        for name, s in fitted.surrogates.items():
            rep, loo[name] = _loo_report(name, s)
            reports.append(rep)
            params[f"{name}.model"] = "MixedSingleTaskGP" if s.cat_dims else "SingleTaskGP"
            params[f"{name}.n_rows"] = rep.n_rows
            params[f"{name}.n_censored"] = rep.n_censored
            params.update({f"{name}.{k}": f"{v:.4g}" for k, v in hyperparameters(s).items()})
            run.metrics({f"{name}.loo_rmse": rep.loo_rmse, f"{name}.loo_nlpd": rep.loo_nlpd, f"{name}.loo_coverage90": rep.loo_coverage90})
        run.params(params)
        run.figure(parity_figure({k: v for k, v in loo.items() if np.isfinite(v[1]).all()}), "parity.png")
        save_model_artifacts(
            run,
            {name: s.state() for name, s in fitted.surrogates.items()},
            {"data_version": campaign.version, "encoder": [f.__dict__ for f in fitted.encoder.features]},
        )
        seconds = time.perf_counter() - t0
        run.metrics({"seconds": seconds})
    return RetrainResult(campaign.version, reports, run.id, seconds)


# ---- suggest --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Suggestion:
    id: str
    inputs: dict[str, Any]
    predicted: dict[str, dict[str, float | None]]
    acquisition_value: float | None


@dataclass(frozen=True)
class SuggestResult:
    batch: str
    suggestions: list[Suggestion]
    strategy: str
    data_version: str
    mlflow_run_id: str
    template: Path
    ledger: Path
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "suggestions": [asdict(s) for s in self.suggestions],
            "strategy": self.strategy,
            "data_version": self.data_version,
            "mlflow_run_id": self.mlflow_run_id,
            "template": str(self.template),
            "ledger": str(self.ledger),
            "seconds": self.seconds,
        }


def suggest(config: CampaignConfig, n: int, seed: int = 0) -> SuggestResult:
    """Fit the surrogates and propose ``n`` new recipes; record them as pending and write a batch template.

    Holds the campaign lock throughout so that two concurrent calls cannot propose the same batch.
    """
    import torch
    from botorch.utils.sampling import manual_seed

    from optimize.acquisition import propose, recipes_frame
    from optimize.models import fit_models
    from optimize.plots import pareto_figure
    from optimize.tracking import start_run

    if n < 1:
        raise ValueError("n must be at least 1")
    t0 = time.perf_counter()
    with campaign_lock(config.data_path):
        campaign = load_campaign(config)
        with manual_seed(seed):
            fitted = fit_models(campaign)
            t_fit = time.perf_counter()
            enc = fitted.encoder
            inputs = list(config.input_names)
            X_measured = enc.encode(campaign.experiments[inputs]) if len(campaign.experiments) else torch.zeros(0, len(inputs), dtype=torch.double)
            pending = campaign.pending
            X_pending = enc.encode(pending[inputs]) if len(pending) else torch.zeros(0, len(inputs), dtype=torch.double)
            proposal = propose(config, fitted, X_measured, X_pending, n, seed)
        t_acq = time.perf_counter()
        recipes = recipes_frame(config, enc, proposal.X)
        preds = fitted.predict(recipes) if fitted.surrogates else {}
        batch = next_batch_id(campaign)
        ledger = recipes.copy()
        ledger.insert(0, SUGGESTION_ID, [f"{batch}-{i + 1}" for i in range(n)])
        ledger.insert(1, BATCH, batch)
        ledger.insert(2, "created_utc", utc_now())
        for t in config.target_names:
            mean, std = preds.get(t, (np.full(n, np.nan), np.full(n, np.nan)))
            ledger[f"{t}_mean"], ledger[f"{t}_std"] = mean, std
        ledger["acquisition_value"] = proposal.acquisition_values
        ledger["data_version"] = campaign.version
        suggestions = [
            Suggestion(
                id=row[SUGGESTION_ID],
                inputs={k: _clean(row[k]) for k in inputs},
                predicted={t: {"mean": _clean(row[f"{t}_mean"]), "std": _clean(row[f"{t}_std"])} for t in config.target_names},
                acquisition_value=_clean(row["acquisition_value"]),
            )
            for _, row in ledger.iterrows()
        ]
        with start_run(config, "suggest", campaign.version) as run:
            ledger["mlflow_run_id"] = run.id
            run.params({"n": n, "seed": seed, "strategy": proposal.strategy, "batch": batch, **config.acquisition.model_dump()})
            for i, s in enumerate(suggestions):
                run.metrics({"acquisition_value": s.acquisition_value}, step=i)
            run.json([asdict(s) for s in suggestions], "suggestions.json")
            run.figure(pareto_figure(campaign.experiments, pareto_set(campaign.experiments, config), config, ledger), "pareto_front.png")
            seconds = {"fit": t_fit - t0, "acquisition": t_acq - t_fit, "total": time.perf_counter() - t0}
            run.metrics({f"seconds_{k}": v for k, v in seconds.items()})
        ledger_path = record_suggestions(config, ledger[ledger_columns(config)])
        template = write_template(config, batch, ledger)
    return SuggestResult(batch, suggestions, proposal.strategy, campaign.version, run.id, template, ledger_path, seconds)


# ---- ingest ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class IngestResult:
    batch_file: Path
    rows: int
    sha256: str
    data_version: str
    mlflow_run_id: str
    retrain: RetrainResult

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_file": str(self.batch_file),
            "rows": self.rows,
            "sha256": self.sha256,
            "data_version": self.data_version,
            "mlflow_run_id": self.mlflow_run_id,
            "retrain": self.retrain.to_json(),
        }


def ingest(config: CampaignConfig, file: Path) -> IngestResult:
    """Validate and add a filled batch file, then retrain (two MLflow runs: ingest, retrain)."""
    from optimize.tracking import start_run

    added: BatchFile = ingest_batch(config, Path(file))
    campaign = load_campaign(config)
    with start_run(config, "ingest", campaign.version) as run:
        run.params({"file": str(file), "sha256": added.sha256, "rows": added.rows, "stored_as": added.path.name})
        run.metrics({"n_experiments": len(campaign.experiments), "batch_rows": added.rows})
        run.files([added.path], "batch")
    result = retrain(config, parent_run_id=run.id)
    return IngestResult(added.path, added.rows, added.sha256, campaign.version, run.id, result)


# ---- history --------------------------------------------------------------------------------
@dataclass(frozen=True)
class HistoryResult:
    experiments: pd.DataFrame
    best: dict[str, dict[str, Any]]
    pareto: pd.DataFrame
    pending: pd.DataFrame
    data_version: str
    runs: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return [{k: _clean(v) for k, v in r.items()} for r in frame.to_dict(orient="records")]

        return {
            "data_version": self.data_version,
            "experiments": records(self.experiments),
            "best": self.best,
            "pareto_set": list(self.pareto[ID]),
            "pending": records(self.pending),
            "runs": self.runs,
        }


def history(config: CampaignConfig, with_runs: bool = True) -> HistoryResult:
    """Experiments so far, the best value per target, the measured Pareto set, pending suggestions, runs."""
    campaign = load_campaign(config)
    runs: list[dict[str, Any]] = []
    if with_runs:
        from optimize.tracking import list_runs

        runs = list_runs(config)
    return HistoryResult(
        campaign.experiments,
        best_so_far(campaign.experiments, config),
        pareto_set(campaign.experiments, config),
        campaign.pending,
        campaign.version,
        runs,
    )


__all__ = ["history", "ingest", "retrain", "suggest"]
