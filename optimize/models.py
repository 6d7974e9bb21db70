"""The campaign's surrogates: candidates per target, model selection by cross-validation, fitted models.

For every target, each candidate of ``config.models.candidates`` is scored by honest cross-validation
on the rows where that target was measured (see :mod:`surrogate.selection`); the lowest NLPD wins
and is refit on all rows. Gradient-boosting candidates are first tuned by Optuna on the same rows
(tuning is not nested inside the outer CV, so their scores are slightly optimistic; GP
hyper-parameters are refit in every fold). The fitted models are cached as JSON keyed by the data
version and the config, so ``kiln suggest`` reuses what ``kiln retrain`` chose.

With ``config.prior`` every candidate but ``constant`` also learns from the prior campaign's rows (see
:mod:`surrogate.transfer`); cross-validation folds hold out this campaign's rows only, and GBM settings
are tuned on this campaign's rows.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from optimize.campaign import Campaign
from optimize.config import TASK, CampaignConfig, CategoricalInput, Target
from optimize.fileio import atomic_write, sha256
from optimize.validation import qualifier_column
from surrogate.encoding import CategoricalFeature, ContinuousFeature, Encoder

SCALE_FLOOR_FRACTION = 0.2  # outcome scale floor: a fifth of the target's physical span
NOISE_FLOOR_FRACTION = 0.02  # noise floor when the config gives no noise_std: 2 % of that span
MIN_ROWS_TO_SELECT = 4  # uncensored rows needed before models are compared by CV
_KIND_MODE = {
    "gp": ("gp", "codes"),
    "gp-onehot": ("gp", "onehot"),
    "gp-descriptors": ("gp", "descriptors"),
    "gbm": ("gbm", "onehot"),
    "gbm-descriptors": ("gbm", "descriptors"),
    "constant": ("constant", "codes"),
}


def encoder_for(config: CampaignConfig, task: bool = False) -> Encoder:
    """The feature encoder of a campaign's search space (descriptor-only categories as extras);
    ``task``: one more input last, 0 for this campaign's rows and small for a prior's
    (see :mod:`surrogate.transfer`)."""
    feats = []
    for inp in config.inputs:
        if isinstance(inp, CategoricalInput):
            feats.append(CategoricalFeature(inp.name, inp.choices, inp.extra))
        else:
            feats.append(ContinuousFeature(inp.name, inp.lower, inp.upper))
    if task:
        feats.append(ContinuousFeature(TASK, 0.0, 1.0))
    return Encoder(tuple(feats))


def featurizer_for(config: CampaignConfig, mode: str, task: bool = False):
    """A :class:`~surrogate.features.Featurizer` in ``mode`` with the config's descriptor tables
    (``task``: for a model of this campaign's and a prior's rows, see :mod:`surrogate.transfer`)."""
    from surrogate.features import DescriptorTable, Featurizer

    tables = {
        inp.name: DescriptorTable(inp.descriptors.names, dict(inp.descriptors.values))
        for inp in config.inputs
        if isinstance(inp, CategoricalInput) and inp.descriptors is not None
    }
    return Featurizer(encoder_for(config, task), mode, tables if mode != "codes" else {})


def _span(target: Target) -> float:
    if target.lower is not None and target.upper is not None:
        span = target.upper - target.lower
    elif target.lower is not None:
        span = abs(target.reference - target.lower)
    elif target.upper is not None:
        span = abs(target.upper - target.reference)
    else:
        span = abs(target.reference)
    return span if span > 0 and math.isfinite(span) else 0.0


def scale_floor(target: Target) -> float:
    """Smallest outcome scale a model may assume, from the declared bounds (or the reference point)."""
    return SCALE_FLOOR_FRACTION * _span(target)


def noise_floor(target: Target) -> float:
    """Smallest noise std a model may infer: the config's ``noise_std``, else a fiftieth of the span."""
    return target.noise_std if target.noise_std is not None else NOISE_FLOOR_FRACTION * _span(target)


def make_candidate(
    config: CampaignConfig, target: Target, label: str, gbm_params: Any = None, prior: PriorRows | None = None
):
    """An unfitted surrogate for ``target`` named by a candidate ``label`` (e.g. ``gbm-descriptors``);
    with ``prior`` rows, a :class:`~surrogate.transfer.TransferSurrogate` around it (not ``constant``)."""
    from surrogate.io import surrogate_class
    from surrogate.transfer import TransferSurrogate

    kind, mode = _KIND_MODE[label]
    settings: dict[str, Any] = {
        "scale_floor": scale_floor(target),
        "noise_floor": noise_floor(target),
        "lower": target.lower,
        "upper": target.upper,
        "name": target.name,
        "seed": config.models.seed,
    }
    if kind == "gbm":
        settings.update(params=gbm_params, n_members=config.models.gbm_members)
    if kind == "gp" and config.models.gp_fit_rows is not None:
        settings.update(fit_rows=config.models.gp_fit_rows)
    if kind == "gp" and mode != "codes" and config.models.gp_kernel != "rbf":
        settings.update(kernel=config.models.gp_kernel)
    transfer = prior is not None and kind != "constant"
    model = surrogate_class(kind)(featurizer_for(config, mode, task=transfer), **settings)
    return TransferSurrogate(model, prior.X, prior.y, prior.qualifiers) if transfer else model


@dataclass(frozen=True)
class PriorRows:
    """A prior campaign's rows for one target: ``X`` (``k x d`` encoded), ``y`` (``k``), qualifiers."""

    X: Any
    y: np.ndarray
    qualifiers: list[str]


def prior_rows(campaign: Campaign, target: str, encoder: Encoder) -> PriorRows | None:
    """The prior campaign's measured rows of ``target``, or ``None`` (no prior, or none measured)."""
    if campaign.prior is None:
        return None
    rows = campaign.prior.measured(target)
    if rows.empty:
        return None
    return PriorRows(encoder.encode(rows), rows[target].to_numpy(float), list(rows[qualifier_column(target)]))


# ---- selection results ---------------------------------------------------------------------
@dataclass(frozen=True)
class TargetModels:
    """What retrain found for one target: the winner, every candidate's CV scores, importances."""

    target: str
    chosen: str
    n_rows: int
    n_censored: int
    cv: dict[str, dict[str, float]] = field(default_factory=dict)  # label -> rmse, nlpd, coverage90, n_scored
    hyperparameters: dict[str, float] = field(default_factory=dict)
    importance: dict[str, dict[str, float]] = field(default_factory=dict)
    note: str = ""
    selected_on: int = 0  # rows the choice was cross-validated on (< n_rows: kept from an earlier retrain)
    prior_rows: int = 0  # rows of the prior campaign the model also learned from
    explorer: str = ""  # the model the acquisition explores with when it is not the chosen one (models.explore_with)


@dataclass(frozen=True)
class Selection:
    """Model selection over all targets, with what the plots and logs need (not cached)."""

    targets: dict[str, TargetModels]
    cv_results: dict[str, list]  # target -> [surrogate.selection.CVResult]
    tuning: dict[str, Any]  # "target/label" -> surrogate.tuning.TuningResult


@dataclass(frozen=True)
class FittedModels:
    """A surrogate per target (in config order), the encoder, and the data version they were fit on.

    ``surrogates`` predict and report (the cross-validation winners); the acquisition explores with
    ``explorers[target]`` where a target has one (``models.explore_with`` when the winner is another model)."""

    encoder: Encoder
    surrogates: dict  # target name -> surrogate.base.Surrogate
    data_version: str
    reports: dict[str, TargetModels] = field(default_factory=dict)
    feasibility: Any = None  # surrogate of P(synthesis succeeds) when some failed, else None
    explorers: dict = field(default_factory=dict)  # target name -> surrogate.base.Surrogate

    def acquisition_surrogates(self) -> list:
        """What the acquisition models: per target (config order) its explorer or its chosen surrogate, then
        P(success) if modelled."""
        models = [self.explorers.get(name, s) for name, s in self.surrogates.items()]
        return [*models, *([self.feasibility] if self.feasibility is not None else [])]

    def chosen(self) -> dict[str, str]:
        """Per target, the model cross-validation chose (it predicts and reports)."""
        return {name: r.chosen for name, r in self.reports.items()}

    def explored_with(self) -> dict[str, str]:
        """Per target, the model the acquisition explores with (``models.explore_with``, else the chosen one)."""
        return {name: r.explorer or r.chosen for name, r in self.reports.items()}

    def predict(self, recipes: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per target: predictive mean and std (``n`` each) at ``recipes`` (a row per recipe)."""
        X = self.encoder.encode(recipes)
        return {name: s.predict(X) for name, s in self.surrogates.items()}

    def botorch_model(self):
        """One BoTorch model of :meth:`acquisition_surrogates`: an output per target, then P(success) if modelled."""
        from surrogate.joint import JointModel

        return JointModel(self.acquisition_surrogates())

    def to_json(self) -> dict[str, Any]:
        return {
            "data_version": self.data_version,
            "encoder": self.encoder.to_json(),
            "surrogates": {k: s.to_json() for k, s in self.surrogates.items()},
            "reports": {k: asdict(r) for k, r in self.reports.items()},
            "feasibility": self.feasibility.to_json() if self.feasibility is not None else None,
            "explorers": {k: s.to_json() for k, s in self.explorers.items()},
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> FittedModels:
        from surrogate.io import surrogate_from_json

        return cls(
            Encoder.from_json(doc["encoder"]),
            {k: surrogate_from_json(v) for k, v in doc["surrogates"].items()},
            doc["data_version"],
            {k: TargetModels(**v) for k, v in doc["reports"].items()},
            surrogate_from_json(doc["feasibility"]) if doc.get("feasibility") else None,
            {k: surrogate_from_json(v) for k, v in doc.get("explorers", {}).items()},
        )


# ---- fitting ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Plan:
    """One target's model selection: its rows (``X`` ``n x d``, ``y``, qualifiers), the candidates, what to do."""

    target: Target
    X: Any
    y: np.ndarray
    q: list[str]
    prior: PriorRows | None
    labels: list[str]
    compare: bool  # cross-validate the candidates
    kept: str | None  # the earlier choice, still standing
    n_censored: int
    n_observed: int

    @property
    def fallback(self) -> str:
        return "gp" if "gp" in self.labels else self.labels[0]


def _plan(campaign: Campaign, encoder: Encoder, score: bool, warm, reselect: bool) -> list[_Plan]:
    ms = campaign.config.models
    plans = []
    for t in campaign.config.targets:
        rows = campaign.measured(t.name)
        prior = prior_rows(campaign, t.name, encoder)
        # without rows of its own, a target is modelled only from a prior (and never by a constant)
        labels = [c for c in ms.candidates if not (rows.empty and c == "constant")]
        if (rows.empty and prior is None) or not labels:
            continue
        y = rows[t.name].to_numpy(float)
        q = list(rows[qualifier_column(t.name)])
        n_cens = sum(v in ("<", ">") for v in q)
        compare = len(y) - n_cens >= MIN_ROWS_TO_SELECT and (score or len(labels) > 1)
        kept = _kept_choice(warm, t.name, len(y), labels, ms.reselect_growth) if compare and not reselect else None
        plans.append(_Plan(t, encoder.encode(rows), y, q, prior, labels, compare, kept, n_cens, len(y) - n_cens))
    return plans


def _tune_and_score(config: CampaignConfig, plan: _Plan, label: str):
    """Tune a gradient-boosting candidate (Optuna) and cross-validate it when the plan compares: one job of the
    parallel model selection, seeded alike whichever process runs it. Returns (tuning result or None, CV result
    or None, the candidate fitted on all rows as JSON or None): above ``models.cv_refit_rows`` a GP is fitted on
    all rows first, its folds keep those hyper-parameters, and the fit is the final model if it wins."""
    import torch

    from surrogate.gp import GPSurrogate
    from surrogate.selection import cross_validate, cv_splits
    from surrogate.tuning import tune_gbm

    ms = config.models
    torch.manual_seed(ms.seed)
    tuning = None
    if label.startswith("gbm") and len(plan.y) >= 4:
        featurizer = featurizer_for(config, _KIND_MODE[label][1])
        t = plan.target
        tuning = tune_gbm(
            featurizer, plan.X, plan.y, plan.q, n_trials=ms.tuning_trials, seed=ms.seed, lower=t.lower, upper=t.upper
        )
    if not plan.compare:
        return tuning, None, None
    splits = cv_splits(len(plan.y), ms.cv_folds, ms.cv_repeats, ms.seed, ms.loo_max_rows, ms.cv_scored_rows)
    model = make_candidate(config, plan.target, label, tuning.params if tuning else None, plan.prior)
    if not (isinstance(model, GPSurrogate) and len(plan.y) > ms.cv_refit_rows):
        return tuning, cross_validate(model, plan.X, plan.y, plan.q, splits), None
    full = model.clone().fit(plan.X, plan.y, plan.q)
    return tuning, cross_validate(model.with_hyperparameters_of(full), plan.X, plan.y, plan.q, splits), full.to_json()


def _fit_chosen(
    config: CampaignConfig, plan: _Plan, chosen: str, params, warm, fitted, explorer: bool = False
) -> tuple[dict, dict, dict]:
    """Fit the chosen model (or with ``explorer`` the exploring one) on all rows, unless model selection ``fitted``
    it already (as JSON), and rank the inputs (permutation importance; not for an explorer): the model as JSON (it
    travels back from a worker process as data), its hyper-parameters, the importances."""
    import torch

    from surrogate.importance import permutation_importance
    from surrogate.io import surrogate_from_json

    ms = config.models
    torch.manual_seed(ms.seed)
    if fitted is not None:
        model = surrogate_from_json(fitted)
    else:
        model = make_candidate(config, plan.target, chosen, params, plan.prior)
        if warm is not None and ms.warm_start and hasattr(model, "warm_start"):
            name = plan.target.name
            previous = warm.explorers.get(name) if explorer else None
            model.warm_start(warm.surrogates.get(name) if previous is None else previous)  # unless a GP of its kind
        model.fit(plan.X, plan.y, plan.q)
    ranked = not explorer and len(plan.y) >= 3
    imp = permutation_importance(model, ms.importance_repeats, ms.seed) if ranked else {}
    return model.to_json(), model.hyperparameters(), imp


def select_models(
    campaign: Campaign,
    score: bool = True,
    warm: FittedModels | None = None,
    reselect: bool = True,
    progress: Callable[[str], None] | None = None,
    workers: int | None = None,
) -> tuple[FittedModels, Selection]:
    """Choose and fit a surrogate per measured target.

    The jobs (tuning and cross-validating each candidate of each target, then fitting each target's winner)
    run in ``workers`` forked processes (default ``models.workers``, else the machine's cores), one torch
    thread each; every job is seeded alike, so the choice and the models do not depend on ``workers``.

    Args:
        score: cross-validate even when only one candidate is configured (retrain always does;
            a benchmark loop with a single candidate skips it).
        warm: models fitted on an earlier data version; with ``models.warm_start`` the final fit of
            a target whose chosen model is a GP of the same features starts from its
            hyper-parameters (cross-validation folds always start cold).
        reselect: compare the candidates by cross-validation (``kiln retrain``). ``False`` (after an
            ingest): keep ``warm``'s choice per target, and its tuned GBM settings, while the target's
            rows have grown by at most ``models.reselect_growth`` since that choice was made.
        progress: hears a message as the jobs start and finish.

    Raises:
        surrogate.errors.SurrogateFitError: a fit failed even after retries (names the target).
    """
    from optimize.parallel import default_workers, fork_map
    from surrogate.io import surrogate_from_json
    from surrogate.selection import choose

    config = campaign.config
    ms = config.models
    encoder = encoder_for(config)
    say = progress or (lambda message: None)
    workers = workers or ms.workers or default_workers()
    plans = _plan(campaign, encoder, score, warm, reselect)

    # 1. tune and cross-validate every candidate that is compared (or tune the one that will be used)
    jobs = [
        (i, label)
        for i, plan in enumerate(plans)
        if plan.kept is None
        for label in (plan.labels if plan.compare else [plan.fallback])
        if plan.compare or label.startswith("gbm")
    ]
    jobs.sort(key=lambda job: not job[1].startswith("gbm"))  # the long (Optuna) jobs first: better packing
    if jobs:
        say(f"tuning and cross-validating {len(jobs)} candidate models on {min(workers, len(jobs))} processes")
    done_count = [0]

    def heard(i: int, result) -> None:
        done_count[0] += 1
        say(f"cross-validated {done_count[0]} of {len(jobs)} candidate models")

    # PyTorch imports this (and SymPy, 0.5 s) at the first broadcast of shapes, which every GP fit and posterior
    # reaches: imported here once, the forked workers inherit it instead of each importing it again
    import torch.fx.experimental.symbolic_shapes  # noqa: F401

    scored = fork_map(lambda job: _tune_and_score(config, plans[job[0]], job[1]), jobs, workers, heard)
    by_plan: dict[int, dict[str, tuple]] = {}
    for (i, label), result in zip(jobs, scored):
        by_plan.setdefault(i, {})[label] = result

    # 2. per target: the winner (or the kept choice, or the fallback) and its settings
    choices = []
    for i, plan in enumerate(plans):
        done = by_plan.get(i, {})
        params = {label: tuning.params for label, (tuning, _, _) in done.items() if tuning is not None}
        results = [cv for _, cv, _ in done.values() if cv is not None]
        note, selected_on, cv = "", len(plan.y), {r.label: asdict(r.scores) for r in results}
        if plan.kept is not None:  # the data grew little since the last selection: refit its winner
            prev = warm.reports[plan.target.name]
            chosen, selected_on, cv = prev.chosen, prev.selected_on, prev.cv
            gbm = getattr(warm.surrogates.get(plan.target.name), "params", None)
            if chosen.startswith("gbm") and gbm is not None:
                params[chosen] = gbm
            note = (
                f"kept {chosen}, chosen by cross-validation on {selected_on} rows; "
                f"models are compared again above {math.floor(selected_on * (1 + ms.reselect_growth))} rows"
                " or on kiln retrain"
            )
        elif plan.compare:
            chosen = choose(results).label
        else:
            chosen = plan.fallback
            if plan.n_observed < MIN_ROWS_TO_SELECT:
                note = f"{plan.n_observed} uncensored rows: too few to compare models, using {chosen}"
        if plan.prior is not None and chosen != "constant":
            also = f"learns from {len(plan.prior.y)} rows of the prior campaign {campaign.prior.name!r} too"
            note = "; ".join(filter(None, [note, also]))
        fitted = done[chosen][2] if chosen in done and plan.kept is None else None
        choices.append((chosen, params.get(chosen), note, selected_on, cv, results, fitted))

    # 3. fit each target's model on all its rows, and the model the acquisition explores with where that differs
    explore = ms.explore_with
    explorers = [i for i, c in enumerate(choices) if explore is not None and c[0] != explore]
    fit_jobs = [(i, False) for i in range(len(plans))] + [(i, True) for i in explorers]
    say(f"fitting {len(fit_jobs)} models on {min(workers, len(fit_jobs))} processes")

    def fit(job: tuple[int, bool]) -> tuple[dict, dict, dict]:
        i, explorer = job
        if not explorer:
            return _fit_chosen(config, plans[i], choices[i][0], choices[i][1], warm, choices[i][6])
        scored = by_plan.get(i, {}).get(explore)  # fitted on all rows during selection (above cv_refit_rows)
        return _fit_chosen(config, plans[i], explore, None, warm, scored[2] if scored else None, explorer=True)

    fits = fork_map(fit, fit_jobs, workers)
    explorer_of = {plans[i].target.name: surrogate_from_json(f[0]) for (i, e), f in zip(fit_jobs, fits) if e}
    surrogates, reports, cv_results, tuning = {}, {}, {}, {}
    for i, (plan, (chosen, _, note, selected_on, cv, results, _), (doc, hyper, imp)) in enumerate(
        zip(plans, choices, fits)
    ):
        name = plan.target.name
        surrogates[name] = surrogate_from_json(doc)
        cv_results[name] = results
        for label, (result, _, _) in by_plan.get(i, {}).items():
            if result is not None:
                tuning[f"{name}/{label}"] = result
        reports[name] = TargetModels(
            name,
            chosen,
            len(plan.y),
            plan.n_censored,
            cv,
            hyper,
            imp,
            note,
            selected_on,
            len(plan.prior.y) if plan.prior is not None and chosen != "constant" else 0,
            explore if name in explorer_of else "",
        )
    feasibility = fit_feasibility(campaign, encoder)
    fitted = FittedModels(encoder, surrogates, campaign.version, reports, feasibility, explorer_of)
    return fitted, Selection(reports, cv_results, tuning)


def fit_feasibility(campaign: Campaign, encoder: Encoder):
    """A GP on the success indicator (1 = product, 0 = ``status`` failed) over every experiment, or
    ``None`` while no synthesis failed. Its mean is a smooth estimate of P(success): least-squares
    classification, calibrated enough to steer suggestions away from where failures cluster."""
    from surrogate.gp import GPSurrogate

    failed = campaign.failed.to_numpy(bool)
    if not failed.any():
        return None
    config = campaign.config
    model = GPSurrogate(
        featurizer_for(config, "onehot"),
        scale_floor=0.5,
        noise_floor=0.1,
        lower=0.0,
        upper=1.0,
        name="success",
        seed=config.models.seed,
        fit_rows=config.models.gp_fit_rows,
    )
    return model.fit(encoder.encode(campaign.experiments), (~failed).astype(float))


def _kept_choice(warm: FittedModels | None, target: str, n_rows: int, labels: list[str], growth: float) -> str | None:
    """The earlier choice for ``target`` if it still stands (same candidates, little new data)."""
    prev = warm.reports.get(target) if warm is not None else None
    if prev is None or not prev.cv or prev.chosen not in labels or set(prev.cv) != set(labels):
        return None
    return prev.chosen if prev.selected_on <= n_rows <= prev.selected_on * (1 + growth) else None


def fit_models(campaign: Campaign, warm: FittedModels | None = None) -> FittedModels:
    """Fit without comparing models when only one candidate is configured (benchmarks, tests)."""
    return select_models(campaign, score=False, warm=warm)[0]


# ---- cache: fitted models as JSON, keyed by data version and config --------------------------
_PRESENTATION = {"label", "unit", "description"}  # fields of inputs and targets no model depends on


def cache_key(config: CampaignConfig, data_version: str) -> str:
    """``<data version>-<digest of the config's model-relevant fields>`` (not paths, acquisition, labels or
    processes)."""
    doc = config.model_dump(
        mode="json", exclude={"source_path", "description", "tracking_dir", "data_dir", "acquisition"}
    )
    for part in ("inputs", "targets"):
        doc[part] = [{k: v for k, v in item.items() if k not in _PRESENTATION} for item in doc[part]]
    doc["models"].pop("workers")  # the same models whichever number of processes fit them
    digest = sha256(json.dumps(doc, sort_keys=True).encode())[:12]
    return f"{data_version}-{digest}"


def cache_path(config: CampaignConfig, data_version: str) -> Path:
    return config.tracking_path / "cache" / config.name / f"{cache_key(config, data_version)}.json"


def save_cached(config: CampaignConfig, fitted: FittedModels) -> Path:
    path = cache_path(config, fitted.data_version)
    body = json.dumps(fitted.to_json())
    atomic_write(path, json.dumps({"sha256": sha256(body.encode()), "models": json.loads(body)}).encode())
    return path


def load_cached(config: CampaignConfig, data_version: str) -> FittedModels | None:
    """The cached models for this data version and config, or ``None`` if absent, stale or unreadable."""
    return _read_cache(cache_path(config, data_version), data_version)


def latest_cached(config: CampaignConfig, other_than: str) -> FittedModels | None:
    """The most recently written cache of this config for another data version (a warm start), if any."""
    digest = cache_key(config, "").lstrip("-")
    folder = cache_path(config, other_than).parent
    paths = (
        sorted(folder.glob(f"*-{digest}.json"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
        if folder.is_dir()
        else []
    )
    for path in paths:
        version = path.name.split("-")[0]
        if version != other_than and (fitted := _read_cache(path, version)) is not None:
            return fitted
    return None


def _read_cache(path: Path, data_version: str) -> FittedModels | None:
    """``None`` when the file is missing, truncated, edited (checksum) or for other data (version):
    the cache is then refit from the data, never trusted."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if sha256(json.dumps(doc["models"]).encode()) != doc["sha256"]:
            return None
        fitted = FittedModels.from_json(doc["models"])
    except (OSError, ValueError, KeyError, TypeError, RuntimeError):
        return None
    return fitted if fitted.data_version == data_version else None
