"""What the CLI commands do, as functions that return plain results (tests call these too)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from optimize.campaign import (
    SUGGESTION_ID,
    BatchFile,
    ParsedBatches,
    add_batch,
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
class RetrainResult:
    data_version: str
    targets: list  # optimize.models.TargetModels, config order
    mlflow_run_id: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "data_version": self.data_version,
            "targets": [asdict(t) for t in self.targets],
            "mlflow_run_id": self.mlflow_run_id,
            "seconds": self.seconds,
        }


def retrain(
    config: CampaignConfig,
    triggered_by: str | None = None,
    reselect: bool = True,
    progress: Callable[[str], None] | None = None,
) -> RetrainResult:
    """Select and fit a surrogate per target (see :func:`_retrain`); ``progress(message)`` hears each step."""
    return _retrain(config, load_campaign(config), triggered_by, reselect, progress)[0]


def _retrain(
    config: CampaignConfig,
    campaign,
    triggered_by: str | None = None,
    reselect: bool = True,
    progress: Callable[[str], None] | None = None,
):
    """Select and fit a surrogate per target by cross-validation; cache the models; log it all to MLflow.

    The latest cached models of another data version are the warm start (``models.warm_start``) and,
    with ``reselect=False`` (after an ingest), the choice to keep while little data was added
    (``models.reselect_growth``).

    The run holds: per target the chosen model, its hyper-parameters and every candidate's CV RMSE,
    NLPD and 90 % coverage; parity, calibration and importance plots; the fitted models as JSON.
    Each Optuna study is a child run with one step per trial.
    """
    from optimize.models import latest_cached, save_cached, select_models
    from optimize.plots import calibration_figure, importance_figure, parity_figure
    from optimize.tracking import start_run

    t0 = time.perf_counter()
    warm = latest_cached(config, campaign.version)
    fitted, selection = select_models(campaign, warm=warm, reselect=reselect, progress=progress)
    save_cached(config, fitted)
    reports = list(selection.targets.values())
    with start_run(config, "retrain", campaign.version, triggered_by=triggered_by) as run:
        params: dict[str, Any] = {
            "n_experiments": len(campaign.experiments),
            "warm_start_from": warm.data_version if warm else "",
            **{f"models.{k}": v for k, v in config.models.model_dump().items()},
        }
        if campaign.prior is not None:
            params.update(
                {
                    "prior": campaign.prior.name,
                    "prior.n_experiments": len(campaign.prior.experiments),
                    "prior.data_dir": str(config.prior_path),
                }
            )
        metrics: dict[str, float] = {}
        for rep in reports:
            params.update(
                {
                    f"{rep.target}.model": rep.chosen,
                    f"{rep.target}.n_rows": rep.n_rows,
                    f"{rep.target}.n_censored": rep.n_censored,
                    f"{rep.target}.selected_on": rep.selected_on,
                    f"{rep.target}.prior_rows": rep.prior_rows,
                }
            )
            params.update({f"{rep.target}.{k}": f"{v:.4g}" for k, v in rep.hyperparameters.items()})
            for label, sc in rep.cv.items():
                metrics.update({f"{rep.target}.{label}.cv_{k}": v for k, v in sc.items() if k != "n_scored"})
                if label == rep.chosen:
                    metrics.update({f"{rep.target}.cv_{k}": v for k, v in sc.items() if k != "n_scored"})
            metrics.update({f"{rep.target}.importance.{k}": v["mean"] for k, v in rep.importance.items()})
        run.params(params)
        run.metrics(metrics)
        cv = {t: [(r.label, r.y, r.mean, r.std) for r in res] for t, res in selection.cv_results.items() if res}
        if cv:
            chosen = {t: next(m for m in ms if m[0] == selection.targets[t].chosen) for t, ms in cv.items()}
            run.figure(parity_figure(chosen), "parity.png")
            run.figure(calibration_figure(cv), "calibration.png")
        importance = {r.target: r.importance for r in reports if r.importance}
        if importance:
            run.figure(importance_figure(importance), "importance.png")
        run.json([asdict(r) for r in reports], "model_selection.json")
        for name, s in fitted.surrogates.items():
            run.json(s.to_json(), f"models/{name}.json")
        for name, s in fitted.explorers.items():  # what the acquisition explores with (models.explore_with)
            run.json(s.to_json(), f"models/{name}.explorer.json")
        for key, res in selection.tuning.items():
            with start_run(
                config, "tuning", campaign.version, parent=run.id, name=f"optuna-{key.replace('/', '-')}"
            ) as child:
                child.params(
                    {"study": key, "n_trials": len(res.trials), **{f"best.{k}": v for k, v in vars(res.params).items()}}
                )
                scored = [tr for tr in res.trials if tr["value"] is not None]
                child.series("cv_rmse", [tr["value"] for tr in scored], [tr["number"] for tr in scored])
                child.metrics(
                    {"best_cv_rmse": res.best_rmse, "pruned": sum(t["state"] == "PRUNED" for t in res.trials)}
                )
                child.json(res.trials, "trials.json")
        seconds = time.perf_counter() - t0
        run.metrics({"seconds": seconds})
    return RetrainResult(campaign.version, reports, run.id, seconds), fitted


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
    models_data_version: str = ""  # the data the models were fitted on (older than data_version while retraining)
    models: dict[str, str] = field(default_factory=dict)  # target -> chosen model, which predicts (as predict's)
    explored_with: dict[str, str] = field(default_factory=dict)  # target -> the model the recipes were chosen with

    def to_json(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "suggestions": [asdict(s) for s in self.suggestions],
            "strategy": self.strategy,
            "data_version": self.data_version,
            "models_data_version": self.models_data_version,
            "models": self.models,
            "explored_with": self.explored_with,
            "mlflow_run_id": self.mlflow_run_id,
            "template": str(self.template),
            "ledger": str(self.ledger),
            "seconds": self.seconds,
        }


def suggest(
    config: CampaignConfig,
    n: int,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    models: Callable[[Any], Any] | None = None,
    parsed: ParsedBatches | None = None,
    defer: Callable[..., Any] | None = None,
    open_run: Callable[[str, str], Callable[[], str]] | None = None,
) -> SuggestResult:
    """Propose ``n`` new recipes; record them as pending and write a batch template.

    ``models(campaign)`` gives the fitted models to use (a warm service's newest, perhaps of an older data
    version: ``models_data_version`` says which); by default those cached for this data, else fitted now.
    ``parsed``: batches validated before (a long-lived process). ``defer(fn, *args)``: run the MLflow logging
    (:func:`log_suggestion`; params, metrics, the suggestions, the Pareto figure: about a second) later, e.g. in a
    service's logging process; the run exists, and its id is in the result and the ledger, before this returns.
    ``open_run(kind, data_version)``: have that run opened elsewhere (a command's
    :class:`optimize.tracking_process.TrackingProcess`), asked as the work starts; it returns a function that gives
    the run's id. By default :func:`optimize.tracking.start_run`, here, once the recipes are chosen.
    Holds the campaign lock throughout so that two concurrent calls cannot propose the same batch.
    """
    from botorch.utils.sampling import manual_seed

    from optimize.acquisition import suggest_recipes
    from optimize.tracking import start_run

    if n < 1:
        raise ValueError("n must be at least 1")
    t0 = time.perf_counter()
    with campaign_lock(config.data_path):
        campaign = load_campaign(config, parsed)
        run_id_of = open_run("suggest", campaign.version) if open_run else None
        with manual_seed(seed):
            # retrains (a run of its own) if nothing is cached
            fitted = models(campaign) if models else _models_for(config, campaign, progress)
            if progress:
                progress(f"proposing {n} recipes ({config.acquisition.kind})")
            t_fit = time.perf_counter()
            recipes, proposal = suggest_recipes(campaign, fitted, n, seed)
        t_acq = time.perf_counter()
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
        ledger["data_version"] = fitted.data_version
        suggestions = [
            Suggestion(
                id=row[SUGGESTION_ID],
                inputs={k: _clean(row[k]) for k in config.input_names},
                predicted={
                    t: {"mean": _clean(row[f"{t}_mean"]), "std": _clean(row[f"{t}_std"])} for t in config.target_names
                },
                acquisition_value=_clean(row["acquisition_value"]),
            )
            for _, row in ledger.iterrows()
        ]
        run_id = run_id_of() if run_id_of else start_run(config, "suggest", campaign.version).id
        ledger["mlflow_run_id"] = run_id
        ledger_path = record_suggestions(config, ledger[ledger_columns(config)])
        template = write_template(config, batch, ledger)
        seconds = {"fit": t_fit - t0, "acquisition": t_acq - t_fit, "total": time.perf_counter() - t0}
    params = {
        "n": n,
        "seed": seed,
        "strategy": proposal.strategy,
        "batch": batch,
        "models_data_version": fitted.data_version,
        **config.acquisition.model_dump(),
    }

    job = (config, run_id, params, seconds, suggestions, campaign.experiments, ledger)
    (defer or (lambda fn, *args: fn(*args)))(log_suggestion, *job)
    return SuggestResult(
        batch,
        suggestions,
        proposal.strategy,
        campaign.version,
        run_id,
        template,
        ledger_path,
        seconds,
        fitted.data_version,
        fitted.chosen(),
        fitted.explored_with(),
    )


def log_suggestion(
    config: CampaignConfig,
    run_id: str,
    params: dict[str, Any],
    seconds: dict[str, float],
    suggestions: list[Suggestion],
    experiments: pd.DataFrame,
    ledger: pd.DataFrame,
) -> None:
    """Fill and end a suggestion's MLflow run (opened by :func:`suggest`): params, timings, acquisition values,
    the suggestions as JSON and the Pareto figure. Module-level and of picklable arguments, so that a service can
    run it in another process."""
    from optimize.plots import pareto_figure
    from optimize.tracking import attach_run

    with attach_run(config, run_id) as run:
        run.params(params)
        run.metrics({f"seconds_{k}": v for k, v in seconds.items()})
        run.series("acquisition_value", [s.acquisition_value for s in suggestions])
        run.json([asdict(s) for s in suggestions], "suggestions.json")
        pareto = pareto_set(experiments, config)
        run.figure(pareto_figure(experiments, pareto, config, ledger), "pareto_front.png")


# ---- predict --------------------------------------------------------------------------------
@dataclass(frozen=True)
class PredictResult:
    recipes: pd.DataFrame  # experiment_id (or row<N>) and the inputs
    predicted: dict[str, tuple[np.ndarray, np.ndarray]]  # target -> (mean, std), each n
    models: dict[str, str]  # target -> chosen model
    data_version: str

    def to_json(self) -> dict[str, Any]:
        rows = []
        for i, rec in enumerate(self.recipes.to_dict(orient="records")):
            rows.append(
                {
                    "id": rec[ID],
                    "inputs": {k: _clean(v) for k, v in rec.items() if k not in (ID, BATCH)},
                    "predicted": {
                        t: {"mean": _clean(m[i]), "std": _clean(s[i])} for t, (m, s) in self.predicted.items()
                    },
                }
            )
        return {"data_version": self.data_version, "models": self.models, "predictions": rows}


def _models_for(config: CampaignConfig, campaign, progress: Callable[[str], None] | None = None):
    """The models retrain chose for this data and config (from the cache, else retrained now)."""
    from optimize.models import load_cached

    fitted = load_cached(config, campaign.version)
    return fitted if fitted is not None else _retrain(config, campaign, reselect=False, progress=progress)[1]


def predict(config: CampaignConfig, file: Path) -> PredictResult:
    """Predictions with uncertainty for the recipes in a CSV (input columns; an id column optional).

    Categories known only by their descriptors (e.g. an untried carbonate) are accepted; only
    descriptor-based models can tell them apart from each other.
    """
    from optimize.validation import read_data_file

    return predict_data(config, read_data_file(Path(file)), str(file))


def predict_data(
    config: CampaignConfig,
    data: bytes,
    file: str,
    models: Callable[[Any], Any] | None = None,
    parsed: ParsedBatches | None = None,
) -> PredictResult:
    """:func:`predict` for a CSV's bytes (``file`` names it in errors), ``models`` and ``parsed`` as in
    :func:`suggest`."""
    from optimize.validation import parse_table

    recipes = parse_table(data, config, file, require_targets=False, allow_extra_categories=True)
    campaign = load_campaign(config, parsed)
    fitted = models(campaign) if models else _models_for(config, campaign)
    inputs = recipes[[ID, *config.input_names]]
    return PredictResult(inputs, fitted.predict(inputs), fitted.chosen(), fitted.data_version)


# ---- ingest ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class IngestResult:
    batch_file: Path
    rows: int  # new experiments
    sha256: str
    data_version: str
    mlflow_run_id: str
    retrain: RetrainResult | None  # None with retrain=False
    amended: int = 0  # cells of earlier experiments changed (late measurements, corrections)

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_file": str(self.batch_file),
            "rows": self.rows,
            "amended_cells": self.amended,
            "sha256": self.sha256,
            "data_version": self.data_version,
            "mlflow_run_id": self.mlflow_run_id,
            "retrain": self.retrain.to_json() if self.retrain else None,
        }


def ingest(
    config: CampaignConfig,
    file: Path,
    retrain_models: bool = True,
    progress: Callable[[str], None] | None = None,
    by: str | None = None,
    spectra_dir: Path | None = None,
) -> IngestResult:
    """Validate and add a filled batch file, then retrain (two MLflow runs: ingest, retrain).

    With ``retrain_models=False`` only the batch is added (several batches at once); the next
    ``suggest`` or ``predict`` retrains, since the model cache is keyed by data version. Spectra: the files its
    ``spectrum`` column names (relative to it), else ``spectra_dir/<experiment_id>.csv`` where one exists.
    """
    from optimize.campaign import read_spectra
    from optimize.validation import read_data_file

    data = read_data_file(Path(file))
    spectra = read_spectra(data, str(file), Path(file).parent, spectra_dir)
    return ingest_data(config, data, str(file), retrain_models, progress, by=by, spectra=spectra)


def ingest_data(
    config: CampaignConfig,
    data: bytes,
    file: str,
    retrain_models: bool = True,
    progress: Callable[[str], None] | None = None,
    parsed: ParsedBatches | None = None,
    by: str | None = None,
    spectra: dict[str, bytes] | None = None,
) -> IngestResult:
    """:func:`ingest` for a batch CSV's bytes (``file`` names it in errors and in the ingest run; ``parsed`` as
    in :func:`suggest`; ``by``: who sends it, default the OS user)."""
    from optimize.tracking import start_run

    added: BatchFile = add_batch(config, data, file, parsed, by=by, spectra=spectra)
    campaign = load_campaign(config, parsed)
    with start_run(config, "ingest", campaign.version) as run:
        run.params(
            {
                "file": str(file),
                "sha256": added.sha256,
                "rows": added.rows,
                "stored_as": added.path.name,
                "by": added.by,
            }
        )
        run.metrics(
            {"n_experiments": len(campaign.experiments), "batch_rows": added.rows, "amended_cells": added.amended}
        )
        run.files([added.path], "batch")
        if added.spectra:
            run.json(dict(added.spectra), "batch/spectra_sha256.json")
    result = retrain(config, triggered_by=run.id, reselect=False, progress=progress) if retrain_models else None
    return IngestResult(added.path, added.rows, added.sha256, campaign.version, run.id, result, added.amended)


# ---- benchmark ------------------------------------------------------------------------------
def benchmark(
    config: CampaignConfig,
    settings,
    oracle: str | None = None,
    lookup: Path | None = None,
    progress=None,
    workers: int = 1,
    ray_address: str | None = None,
):
    """Run ``kiln benchmark`` (see :mod:`optimize.benchmark`; cells in ``workers`` local processes, or as tasks on
    the Ray cluster at ``ray_address``) and log it as one MLflow run: settings as params, median hypervolume per
    strategy per batch as stepped metrics, the curves plot and every result row as artifacts."""
    from optimize.benchmark import (
        BenchmarkError,
        experiments_to_reach,
        lookup_problem,
        oracle_problem,
        run_benchmark,
        virtual_lab_problem,
    )
    from optimize.plots import benchmark_figure
    from optimize.tracking import start_run

    if oracle and lookup:
        raise BenchmarkError("give --oracle or --lookup, not both")
    if lookup:
        problem = lookup_problem(config, Path(lookup))
    elif oracle:
        problem = oracle_problem(config, oracle)
    else:
        problem = virtual_lab_problem(config)
    result = run_benchmark(problem, settings, progress, workers, ray_address)
    with start_run(config, "benchmark", problem.name, name=f"benchmark-{problem.name}") as run:
        run.params(
            {
                "problem": problem.name,
                "strategies": ",".join(settings.strategies),
                "seeds": len(settings.seeds),
                "n_initial": settings.n_initial,
                "batches": settings.batches,
                "batch_size": settings.batch_size,
                "models": ",".join(config.models.candidates),
                "acquisition": config.acquisition.kind,
                "cells_on": f"ray {ray_address}" if ray_address else f"{workers} local processes",
            }
        )
        for row in result.summary:
            run.metrics(
                {
                    f"{row['strategy']}.hv_median": row["hv_median"],
                    f"{row['strategy']}.seconds_median": row["seconds_median"],
                },
                step=row["batch"],
            )
        for name in settings.strategies:
            run.metrics({f"{name}.experiments_to_90pct": experiments_to_reach(result.rows, name, 0.9)})
        run.metrics({"best_hypervolume": result.best_hypervolume})
        run.figure(benchmark_figure(result.summary, f"{config.name} on {problem.name}"), "hypervolume_curves.png")
        run.json(result.rows, "results.json")
        run.json(result.summary, "summary.json")
    return replace(result, mlflow_run_id=run.id)


# ---- history --------------------------------------------------------------------------------
@dataclass(frozen=True)
class HistoryResult:
    experiments: pd.DataFrame
    best: dict[str, dict[str, Any]]
    pareto: pd.DataFrame
    pending: pd.DataFrame
    data_version: str
    runs: list[dict[str, Any]]
    plots: list[Path] = field(default_factory=list)

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
            "plots": [str(p) for p in self.plots],
        }


def history(
    config: CampaignConfig,
    with_runs: bool = True,
    plot_dir: Path | None = None,
    parsed: ParsedBatches | None = None,
) -> HistoryResult:
    """Experiments so far, the best value per target, the measured Pareto set, pending suggestions, runs.

    With ``plot_dir``: also write (and log to an MLflow run) the Pareto front with the pending
    suggestions, the progress per target, and partial dependence plots (see :func:`history_plots`).
    """
    campaign = load_campaign(config, parsed)
    runs: list[dict[str, Any]] = []
    if with_runs:
        from optimize.tracking import list_runs

        runs = list_runs(config)
    pareto = pareto_set(campaign.experiments, config)
    plots = history_plots(config, campaign, pareto, Path(plot_dir)) if plot_dir is not None else []
    return HistoryResult(
        campaign.experiments,
        best_so_far(campaign.experiments, config),
        pareto,
        campaign.pending,
        campaign.version,
        runs,
        plots,
    )


def history_plots(config: CampaignConfig, campaign, pareto: pd.DataFrame, folder: Path) -> list[Path]:
    """PNG files in ``folder``, also logged as artifacts of a ``history`` MLflow run:

    - ``pareto_front.png``: measured points, the Pareto set, pending suggestions (predicted mean +- std);
    - ``progress.png``: every target in the order experiments were run, with the best so far;
    - ``partial_dependence.png``: the first target's model prediction as each continuous input varies
      (others as in the experiments), one line per category of the first categorical input.
    """
    from optimize.plots import pareto_figure, partial_dependence_figure, progress_figure
    from optimize.tracking import start_run

    folder.mkdir(parents=True, exist_ok=True)
    figures = {
        "pareto_front.png": pareto_figure(
            campaign.experiments, pareto, config, campaign.pending if len(campaign.pending) else None
        ),
        "progress.png": progress_figure(campaign.experiments, config),
    }
    target = config.targets[0].name
    if len(campaign.measured(target)) and len(campaign.experiments) >= 2:
        fitted = _models_for(config, campaign)
        curves, by = partial_dependence(config, fitted, campaign.experiments, target)
        if curves:
            figures["partial_dependence.png"] = partial_dependence_figure(curves, target, by)
    paths = []
    with start_run(config, "history", campaign.version) as run:
        for name, fig in figures.items():
            fig.savefig(folder / name, dpi=110)
            paths.append(folder / name)
            run.figure(fig, name)
        paths += _latest_retrain_plots(config, folder)
        run.files([p for p in paths if p.name in ("parity.png", "calibration.png")])
    return paths


def _latest_retrain_plots(config: CampaignConfig, folder: Path) -> list[Path]:
    """Parity and calibration plots of the latest retrain that cross-validated (copied into ``folder``)."""
    from optimize.tracking import latest_run

    run = latest_run(config, "retrain", with_artifact="parity.png")
    if run is None:
        return []
    return [run.download(name, folder) for name in ("parity.png", "calibration.png") if run.has(name)]


def partial_dependence(config: CampaignConfig, fitted, experiments: pd.DataFrame, target: str, points: int = 25):
    """``({input: {category: (grid, mean, std)}}, categorical name)``: the average predicted ``target``
    over the experiments' recipes with one continuous input set to each grid value and the first
    categorical input set to each choice (conditions applied: an input the choice fixes is skipped)."""
    from optimize.config import CategoricalInput, ContinuousInput

    cats = [i for i in config.inputs if isinstance(i, CategoricalInput)]
    conts = [i for i in config.inputs if isinstance(i, ContinuousInput)]
    by = cats[0] if cats else None
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    base = experiments[list(config.input_names)].reset_index(drop=True)
    for inp in conts:
        grid = np.linspace(inp.lower, inp.upper, points)
        per_cat: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for choice in by.choices if by else [""]:
            rows = base.copy()
            if by is not None:
                rows[by.name] = choice
            conditions = config.applicable_conditions({by.name: choice} if by else {})
            if any(inp.name in c.set for c in conditions):
                continue  # e.g. k_ratio is 0 without a carbonate: nothing to vary
            for c in config.inputs:  # a category made active again takes its first choice
                if isinstance(c, CategoricalInput) and c is not by:
                    inactive = any(c.name in cond.inactive for cond in conditions)
                    rows[c.name] = "" if inactive else rows[c.name].replace("", c.choices[0])
            for cond in conditions:
                for name, v in cond.set.items():
                    rows[name] = v
            means, stds = [], []
            for g in grid:
                rows[inp.name] = g
                mean, std = fitted.surrogates[target].predict(fitted.encoder.encode(rows))
                means.append(mean.mean())
                stds.append(np.sqrt(np.mean(std**2)))
            per_cat[choice or "all"] = (grid, np.array(means), np.array(stds))
        if per_cat:
            curves[inp.name] = per_cat
    return curves, by.name if by else ""


__all__ = ["benchmark", "history", "ingest", "predict", "retrain", "suggest"]
