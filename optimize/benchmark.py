"""Benchmark optimizers on a simulator or a lookup table: hypervolume per batch, wall time per strategy.

A *problem* is a campaign config plus a way to run an experiment:

- an oracle: ``measure(recipe: dict) -> dict`` mapping target names to a number, ``"<c"``/``">c"``
  for a censored value, or ``None`` for not measured (the built-in :mod:`optimize.virtual_lab`, or any
  ``FILE.py[:FUNC]``); an oracle module may define ``truth(recipe)`` (noise-free values, used for
  scoring) and ``reseed(seed)`` (called before each run, for reproducible noise);
- a lookup table: a CSV with input and target columns; strategies may only pick its rows.

Every strategy starts from the same initial design per seed, then proposes ``batch_size`` recipes per
batch from what it has measured. ``botorch`` is the product's own loop: the same model fitting and
:func:`optimize.acquisition.suggest_recipes` that ``kiln suggest`` runs, on an in-memory campaign.

Scoring: each target is mapped to [0, 1] between its reference point (0) and its best physical bound
(1), values beyond the reference count as 0; the hypervolume of the noise-free values of the
recipes tried so far is divided by the best attainable hypervolume: that of the whole lookup table,
or of a dense Sobol design (20k recipes) joined with every recipe any strategy tried, so 1.0 means
the best front known was found.
"""

from __future__ import annotations

import importlib.util
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from optimize.campaign import Campaign, campaign_from_batches, csv_bytes, load_prior
from optimize.config import CampaignConfig, CategoricalInput, ContinuousInput
from optimize.errors import KilnError
from optimize.parallel import fork_map, one_torch_thread, ray_map
from optimize.validation import BATCH, ID, parse_table, qualifier_column, read_data_file, table_columns

STRATEGIES = ("botorch", "random", "sobol", "tpe")
PEERS = ("ax", "baybe")  # optional extra `peers`: optimize.peers registers them when first asked for
Recipe = dict[str, Any]


class BenchmarkError(KilnError):
    """An oracle or lookup table that cannot be benchmarked (names the file and the fix)."""


# ---- problems ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """What is optimized: the config, how to measure, and how to score."""

    config: CampaignConfig
    measure: Callable[[Recipe], Mapping[str, Any]]
    truth: Callable[[Recipe], Mapping[str, float]] | None = None
    reseed: Callable[[int], None] | None = None
    pool: pd.DataFrame | None = None  # lookup table: allowed recipes with their target values
    name: str = "oracle"


def virtual_lab_problem(config: CampaignConfig, noise: float = 1.0, missing_water: float = 0.0, lab=None) -> Problem:
    """The built-in virtual lab (needs the seed campaign's input and target names); ``lab``: a
    :class:`~optimize.virtual_lab.VirtualLab` to use instead (e.g. another lab's furnace offset)."""
    from optimize.virtual_lab import MixedHalideLab, VirtualLab

    mixed = {"x_cl", "x_br", "x_i"} <= set(config.input_names)  # CsPb(Cl,Br,I)3 under x_cl + x_br + x_i == 1
    lab = lab or (MixedHalideLab if mixed else VirtualLab)(noise=noise, missing_water=missing_water)
    probe = {"temperature_c": 600, "k_ratio": 0, "carbonate": "none", "addition": None, "br_fraction": 1}
    outputs = set(lab.truth({**probe, "x_cl": 0.0, "x_br": 1.0, "x_i": 0.0}))
    missing = [t for t in config.target_names if t not in outputs]
    if missing:
        raise BenchmarkError(f"the virtual lab does not simulate {missing}; pass --oracle FILE.py or --lookup FILE.csv")
    state = {"rng": np.random.default_rng(0)}

    def reseed(seed: int) -> None:
        state["rng"] = np.random.default_rng(seed)

    return Problem(config, lambda r: lab.measure(r, state["rng"]), lab.truth, reseed, None, "virtual_lab")


def oracle_problem(config: CampaignConfig, spec: str) -> Problem:
    """An oracle from ``FILE.py[:FUNC]`` (default function ``measure``)."""
    path_s, _, func = spec.partition(":")
    path = Path(path_s)
    if not path.is_file():
        raise BenchmarkError(f"{path}: oracle file not found; pass --oracle FILE.py[:FUNC]")
    mod_spec = importlib.util.spec_from_file_location(f"kiln_oracle_{abs(hash(path.resolve()))}", path)
    module = importlib.util.module_from_spec(mod_spec)
    try:
        mod_spec.loader.exec_module(module)
    except Exception as e:  # the user's code: report, do not crash with a traceback
        raise BenchmarkError(f"{path}: importing the oracle failed ({type(e).__name__}: {e})") from None
    fn = getattr(module, func or "measure", None)
    if not callable(fn):
        raise BenchmarkError(f"{path}: no function {func or 'measure'!r}; define measure(recipe: dict) -> dict")
    truth = getattr(module, "truth", None)
    reseed = getattr(module, "reseed", None)
    return Problem(
        config, fn, truth if callable(truth) else None, reseed if callable(reseed) else None, None, path.stem
    )


def lookup_problem(config: CampaignConfig, path: Path) -> Problem:
    """A lookup table: its rows are the only recipes; measuring one returns its row's values."""
    path = Path(path)
    data = read_data_file(path)
    table = parse_table(data, config, str(path), require_targets=False)
    missing = [t for t in config.target_names if t not in table.columns]
    if missing:
        raise BenchmarkError(f"{path}: target columns {missing} are missing; a lookup table needs every target")
    table = table.reset_index(drop=True)
    index = {recipe_key(config, r): i for i, r in enumerate(table.to_dict(orient="records"))}

    def measure(recipe: Recipe) -> dict[str, Any]:
        row = table.iloc[index[recipe_key(config, recipe)]]
        out = {}
        for t in config.target_names:
            v, q = row[t], row.get(qualifier_column(t), "")
            out[t] = None if pd.isna(v) else (f"{q}{v}" if q in ("<", ">") else float(v))
        return out

    return Problem(config, measure, None, None, table, f"{config.name}:{path.stem}")  # e.g. suzuki_flow:table


def recipe_key(config: CampaignConfig, recipe: Mapping[str, Any]) -> tuple:
    out = []
    for inp in config.inputs:
        v = recipe.get(inp.name)
        if isinstance(inp, ContinuousInput):
            out.append(round(float(v), 9))
        else:
            out.append("" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    return tuple(out)


# ---- scoring -------------------------------------------------------------------------------
def _normalizer(config: CampaignConfig, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per target, in objective units (``Target.objective``): (reference, best); ``best`` is the
    physical bound (0, a hit, for a ``target`` objective), else the best of the data."""
    ref, best = [], []
    for j, t in enumerate(config.targets):
        if t.direction == "target":
            top = 0.0
        else:
            bound = t.upper if t.direction == "maximize" else t.lower
            top = float(t.objective(bound)) if bound is not None and math.isfinite(bound) else math.nan
        if not math.isfinite(top):
            col = t.objective(values[:, j][np.isfinite(values[:, j])])
            top = float(col.max()) if len(col) else t.objective_reference + 1.0
        ref.append(t.objective_reference)
        best.append(top)
    return np.array(ref), np.array(best)


def normalized(config: CampaignConfig, values: np.ndarray, ref: np.ndarray, best: np.ndarray) -> np.ndarray:
    """``n x m`` raw target values -> ``n x m`` in [0, 1] (0 = at or beyond the reference, 1 = ``best``
    in objective units, see :func:`_normalizer`); NaN rows kept."""
    from optimize.pareto import objectives

    z = (objectives(values, config) - ref) / (best - ref)
    return np.clip(z, 0.0, 1.0)


def hypervolume(z: np.ndarray) -> float:
    """Hypervolume of normalized points (``n x m``, higher is better) above the origin."""
    import torch
    from botorch.utils.multi_objective.box_decompositions.dominated import DominatedPartitioning
    from botorch.utils.multi_objective.pareto import is_non_dominated

    z = z[np.isfinite(z).all(axis=1)]
    if len(z) == 0:
        return 0.0
    Y = torch.as_tensor(z, dtype=torch.double)
    Y = Y[is_non_dominated(Y)]
    part = DominatedPartitioning(ref_point=torch.zeros(Y.shape[-1], dtype=torch.double), Y=Y)
    return float(part.compute_hypervolume())


# ---- designs -------------------------------------------------------------------------------
def apply_conditions(config: CampaignConfig, recipe: Recipe) -> Recipe:
    for cond in config.applicable_conditions(recipe):
        recipe.update(cond.set)
        for name in cond.inactive:
            recipe[name] = None
    return recipe


def _from_unit(config: CampaignConfig, u: np.ndarray) -> Recipe:
    """A point of the unit cube (one coordinate per input) -> a recipe (equalities' dependent inputs solved)."""
    recipe: Recipe = {}
    for inp, x in zip(config.inputs, u):
        if isinstance(inp, ContinuousInput):
            recipe[inp.name] = float(inp.snap(inp.lower + float(x) * (inp.upper - inp.lower)))
        else:
            recipe[inp.name] = inp.choices[min(int(x * len(inp.choices)), len(inp.choices) - 1)]
    return satisfy(config, apply_conditions(config, recipe))


def satisfy(config: CampaignConfig, recipe: Recipe) -> Recipe:
    """``recipe`` with each linear equality's dependent input solved from the others (see optimize/constraints)."""
    if not any(c.op == "==" for c in config.linear_constraints):
        return recipe
    from optimize.constraints import solve_dependents

    return solve_dependents(config.linear_constraints, recipe)


def feasible(config: CampaignConfig, recipe: Recipe) -> bool:
    """The recipe satisfies the linear constraints and its continuous inputs lie in their ranges (or at a
    condition's value)."""
    from optimize.constraints import violations

    if not config.constraints:
        return True
    for inp in config.inputs:
        fixed = any(inp.name in c.set for c in config.applicable_conditions(recipe))
        if (
            isinstance(inp, ContinuousInput)
            and not fixed
            and not inp.lower - 1e-9 <= recipe[inp.name] <= inp.upper + 1e-9
        ):
            return False
    return not violations(config.linear_constraints, recipe, 1e-9)


def sobol_recipes(config: CampaignConfig, n: int, seed: int, skip: int = 0) -> list[Recipe]:
    """``n`` recipes from a scrambled Sobol sequence (after ``skip`` points), skipping those that break a
    constraint."""
    import warnings

    from scipy.stats import qmc

    engine = qmc.Sobol(d=len(config.inputs), scramble=True, seed=seed)
    if skip:
        engine.fast_forward(skip)
    out: list[Recipe] = []
    for _ in range(64):
        with warnings.catch_warnings():  # batches of 4 or 8 are not powers of two by design; fine here
            warnings.simplefilter("ignore", UserWarning)
            points = engine.random(n)
        out += [r for r in (_from_unit(config, u) for u in points) if feasible(config, r)]
        if len(out) >= n:
            return out[:n]
    raise BenchmarkError(f"few Sobol recipes satisfy the constraints ({len(out)} of {64 * n}); relax them")


def random_recipes(config: CampaignConfig, n: int, rng: np.random.Generator) -> list[Recipe]:
    """``n`` uniformly random recipes that satisfy the constraints."""
    out: list[Recipe] = []
    for _ in range(1000 * n):
        recipe = _from_unit(config, rng.random(len(config.inputs)))
        if feasible(config, recipe):
            out.append(recipe)
            if len(out) == n:
                return out
    raise BenchmarkError("random recipes rarely satisfy the constraints; relax them")


def best_attainable(problem: Problem, n_per_dim: int = 4096, seed: int = 12345) -> np.ndarray:
    """Noise-free target values (``k x m``) of a dense design: the pool, or a big Sobol set scored by ``truth``."""
    config = problem.config
    if problem.pool is not None:
        return problem.pool[list(config.target_names)].to_numpy(float)
    if problem.truth is None:
        raise BenchmarkError(
            "the oracle has no truth(recipe) function, so the best attainable hypervolume is unknown; define truth()"
        )
    recipes = sobol_recipes(config, n_per_dim * len(config.inputs), seed)
    return np.array([[problem.truth(r)[t] for t in config.target_names] for r in recipes], dtype=float)


# ---- strategies ----------------------------------------------------------------------------
class Strategy:
    """Proposes recipes from the history of one run. Subclasses are stateful within a run only."""

    name = "strategy"

    def __init__(self, problem: Problem, seed: int) -> None:
        self.problem, self.config, self.seed = problem, problem.config, seed

    def propose(self, history: Campaign, n: int, batch: int) -> list[Recipe]:
        raise NotImplementedError

    def observe(self, recipes: list[Recipe], rows: pd.DataFrame) -> None:
        """Hear the results of ``recipes`` (``rows``: the parsed batch)."""

    def _pool_free(self, history: Campaign) -> pd.DataFrame:
        pool = self.problem.pool
        done = {recipe_key(self.config, r) for r in history.experiments.to_dict(orient="records")}
        return pool[[recipe_key(self.config, r) not in done for r in pool.to_dict(orient="records")]]


class RandomStrategy(Strategy):
    name = "random"

    def __init__(self, problem: Problem, seed: int) -> None:
        super().__init__(problem, seed)
        self.rng = np.random.default_rng(seed + 1_000_003)

    def propose(self, history: Campaign, n: int, batch: int) -> list[Recipe]:
        if self.problem.pool is not None:
            free = self._pool_free(history)
            rows = free.sample(n=n, random_state=int(self.rng.integers(2**31)))
            return _records(self.config, rows)
        return random_recipes(self.config, n, self.rng)


class SobolStrategy(Strategy):
    name = "sobol"

    def propose(self, history: Campaign, n: int, batch: int) -> list[Recipe]:
        if self.problem.pool is not None:
            raise BenchmarkError("the sobol strategy needs a continuous space; use botorch and random on lookup tables")
        return sobol_recipes(self.config, n, self.seed + 7, skip=len(history.experiments))


class TPEStrategy(Strategy):
    """Optuna's multi-objective TPE (seeded), told every measured result as objectives to maximize
    (``Target.objective``); censored values at their fallback (half-way to the physical bound),
    trials with a missing objective marked failed."""

    name = "tpe"

    def __init__(self, problem: Problem, seed: int) -> None:
        import optuna

        super().__init__(problem, seed)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(
            directions=["maximize"] * len(self.config.targets),
            sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True),
        )
        self.trials: list = []

    def _ask(self) -> tuple[Any, Recipe]:
        """A trial and its recipe; with linear constraints, the equalities' dependent inputs are solved from the
        others and a trial whose recipe breaks a constraint is told infeasible and asked again."""
        from optimize.constraints import dependents

        solved = set(dependents(self.config.linear_constraints).values())
        for _ in range(1000):
            trial = self.study.ask()
            recipe: Recipe = {}
            for inp in self.config.inputs:  # in config order, so a condition's "when" is decided first
                if isinstance(inp, CategoricalInput):
                    if any(inp.name in c.inactive for c in self.config.applicable_conditions(recipe)):
                        continue
                    recipe[inp.name] = trial.suggest_categorical(inp.name, list(inp.choices))
            apply_conditions(self.config, recipe)
            for inp in self.config.inputs:
                if isinstance(inp, ContinuousInput) and inp.name not in recipe:
                    recipe[inp.name] = (
                        0.0
                        if inp.name in solved
                        else trial.suggest_float(inp.name, inp.lower, inp.upper, step=inp.step)
                    )
            recipe = satisfy(self.config, recipe)
            if feasible(self.config, recipe):
                return trial, recipe
            # told as the reference point and marked infeasible (TPE ranks such trials last), so TPE learns
            # where not to look; told FAIL, it was ignored and kept asking for the same corner
            trial.set_constraint("linear_constraints", 1.0)
            self.study.tell(trial, [t.objective_reference for t in self.config.targets])
        raise BenchmarkError("TPE keeps proposing recipes that break the constraints; relax them")

    def propose(self, history: Campaign, n: int, batch: int) -> list[Recipe]:
        if self.problem.pool is not None:
            raise BenchmarkError("the tpe strategy needs a continuous space; use botorch and random on lookup tables")
        asked = [self._ask() for _ in range(n)]
        self.trials = [t for t, _ in asked]
        return [r for _, r in asked]

    def observe(self, recipes: list[Recipe], rows: pd.DataFrame) -> None:
        import optuna

        trials = self.trials or [self._enqueued(r) for r in recipes]
        targets = self.config.targets
        for trial, told in zip(trials, told_rows(self.config, rows)):
            values = (
                [float(t.objective(told[t.name])) for t in targets]
                if all(told[t.name] is not None for t in targets)
                else None
            )
            self.study.tell(
                trial, values, state=optuna.trial.TrialState.COMPLETE if values else optuna.trial.TrialState.FAIL
            )
        self.trials = []

    def _enqueued(self, recipe: Recipe):
        """The initial design enters the study as enqueued trials with exactly these recipes."""
        params = {k: v for k, v in recipe.items() if v is not None}
        self.study.enqueue_trial(params, skip_if_exists=False)
        trial, _ = self._ask()
        return trial


class BoTorchStrategy(Strategy):
    """The product's loop: fit the configured surrogates as ``kiln ingest`` does, then ``suggest_recipes`` (as
    ``kiln suggest``)."""

    name = "botorch"

    def __init__(self, problem: Problem, seed: int) -> None:
        super().__init__(problem, seed)
        self._fitted = None  # the previous batch's models: a warm start when models.warm_start

    def propose(self, history: Campaign, n: int, batch: int) -> list[Recipe]:
        from botorch.utils.sampling import manual_seed

        from optimize.acquisition import suggest_recipes
        from optimize.models import select_models

        with manual_seed(self.seed * 1000 + batch):
            # as `kiln ingest` after each batch: a target keeps its chosen model (refit on all rows) until its
            # rows have grown by models.reselect_growth since the cross-validation that chose it
            # (workers=1: a cell already runs in its own process)
            fitted = select_models(history, score=False, warm=self._fitted, reselect=False, workers=1)[0]
            self._fitted = fitted
            pool = self._pool_free(history) if self.problem.pool is not None else None
            recipes, _ = suggest_recipes(history, fitted, n, self.seed * 1000 + batch, pool)
        return _records(self.config, recipes)


_CLASSES: dict[str, type[Strategy]] = {c.name: c for c in (BoTorchStrategy, RandomStrategy, SobolStrategy, TPEStrategy)}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Make a strategy class available by its ``name`` (peers, benchmark scripts' variants)."""
    _CLASSES[cls.name] = cls
    return cls


def strategy_class(name: str) -> type[Strategy]:
    """The strategy called ``name``; the peers' module (and so their packages) is imported only when asked for."""
    if name in PEERS and name not in _CLASSES:
        import optimize.peers  # noqa: F401  (registers ax and baybe)
    return _CLASSES[name]


def told_value(target, value: float, qualifier: str) -> float:
    """A measured value as told to an optimizer that knows no censoring: a censored value (``<``/``>``)
    half-way between its bound and the target's physical limit (the bound itself if there is none)."""
    if qualifier == "<" and target.lower is not None:
        return 0.5 * (value + target.lower)
    if qualifier == ">" and target.upper is not None:
        return 0.5 * (value + target.upper)
    return value


def told_rows(config: CampaignConfig, rows: pd.DataFrame) -> list[dict[str, float | None]]:
    """Per row of a parsed batch: target name -> told value (see :func:`told_value`), ``None`` if not measured."""
    out = []
    for _, row in rows.iterrows():
        values: dict[str, float | None] = {}
        for t in config.targets:
            v = row[t.name]
            values[t.name] = None if pd.isna(v) else told_value(t, float(v), row[qualifier_column(t.name)])
        out.append(values)
    return out


def _records(config: CampaignConfig, frame: pd.DataFrame) -> list[Recipe]:
    out = []
    for rec in frame[list(config.input_names)].to_dict(orient="records"):
        out.append({k: (None if v == "" else v) for k, v in rec.items()})
    return out


# ---- running -------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchmarkSettings:
    strategies: tuple[str, ...] = STRATEGIES
    seeds: tuple[int, ...] = tuple(range(10))
    n_initial: int = 8
    batches: int = 6
    batch_size: int = 4

    def __post_init__(self) -> None:
        known = [*_CLASSES, *(p for p in PEERS if p not in _CLASSES)]
        unknown = [s for s in self.strategies if s not in known]
        if unknown or not self.strategies:
            raise BenchmarkError(f"unknown strategies {unknown}; choose from {known}")
        for name in ("batches", "batch_size"):
            if getattr(self, name) < 1:
                raise BenchmarkError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.n_initial < 0:
            raise BenchmarkError(
                f"n_initial must be at least 0 (0: the first batch is proposed, e.g. from a prior),"
                f" got {self.n_initial}"
            )
        if not self.seeds:
            raise BenchmarkError("at least one seed is needed")


@dataclass(frozen=True)
class BenchmarkResult:
    problem: str
    settings: BenchmarkSettings
    rows: list[dict[str, Any]]  # strategy, seed, batch, n_experiments, hypervolume, seconds
    best_hypervolume: float  # of the best known front (dense design / whole pool + all tried), normalized units
    mlflow_run_id: str | None = None
    summary: list[dict[str, Any]] = field(default_factory=list)
    loop: dict[str, Any] = field(default_factory=dict)  # kiln's loop: the config's acquisition and models settings

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "problem": self.problem,
            "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self.settings).items()},
            "best_hypervolume": self.best_hypervolume,
            "results": self.rows,
            "summary": self.summary,
            "mlflow_run_id": self.mlflow_run_id,
            "loop": self.loop,
        }


def virtual_lab_batch(config: CampaignConfig, n: int, seed: int = 0, missing_water: float = 0.0) -> tuple[Path, bytes]:
    """One in-memory batch file of ``n`` virtual-lab experiments on Sobol recipes (for
    ``campaign_from_batches``); the first rows of a longer batch are the same recipes and results."""
    from optimize.virtual_lab import VirtualLab

    lab = VirtualLab(missing_water=missing_water)
    rng = np.random.default_rng(seed)
    recipes = sobol_recipes(config, n, seed)
    results = [lab.measure(r, rng) for r in recipes]
    return Path("<virtual lab>"), _batch_bytes(config, "sim", 0, recipes, results)


def _batch_bytes(
    config: CampaignConfig, batch: str, start: int, recipes: list[Recipe], results: list[Mapping[str, Any]]
) -> bytes:
    """The CSV a lab would ingest for these recipes and results (validated by ``parse_table``)."""
    rows = []
    for i, (r, res) in enumerate(zip(recipes, results)):
        row = {c: "" for c in table_columns(config)}
        row[ID], row[BATCH] = f"x{start + i:04d}", batch
        for k in config.input_names:
            v = r.get(k)
            row[k] = "" if v is None else (f"{v:.10g}" if isinstance(v, float) else str(v))
        for t in config.target_names:
            v = res.get(t)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            if isinstance(v, str) and v[:1] in "<>":
                row[t], row[qualifier_column(t)] = v[1:], v[0]
            else:
                row[t] = f"{float(v):.10g}"
        rows.append(row)
    return csv_bytes(pd.DataFrame(rows, columns=table_columns(config)))


def _scores(problem: Problem, recipes: list[Recipe], rows: pd.DataFrame) -> np.ndarray:
    """Noise-free values of tried recipes (``n x m``): ``truth`` if known, else what was measured."""
    cfg = problem.config
    if problem.truth is not None:
        return np.array([[problem.truth(r)[t] for t in cfg.target_names] for r in recipes], dtype=float)
    vals = rows[list(cfg.target_names)].to_numpy(float).copy()
    for j, t in enumerate(cfg.targets):  # a censored value is only known to be beyond its bound
        cens = rows[qualifier_column(t.name)].isin(["<", ">"]).to_numpy()
        vals[cens, j] = t.reference
    return vals


def feasible_only(config: CampaignConfig, values: np.ndarray) -> np.ndarray:
    """``values`` (``n x m``, raw) with the rows that break an outcome constraint set to NaN: with
    ``outcome_constraints`` the benchmark scores the hypervolume of feasible recipes only."""
    out = values.astype(float).copy()
    names = list(config.target_names)
    for oc in config.outcome_constraints:
        col = out[:, names.index(oc.target)]
        bad = np.zeros(len(out), dtype=bool)
        if oc.min is not None:
            bad |= ~(col >= oc.min)
        if oc.max is not None:
            bad |= ~(col <= oc.max)
        out[bad] = np.nan
    return out


@dataclass(frozen=True)
class CellResult:
    """One (strategy, seed) run: per batch its counts and seconds, and the scored values of every recipe
    tried (``n x m``, noise-free, rows breaking an outcome constraint NaN), in the order tried."""

    strategy: str
    seed: int
    batches: list[dict[str, Any]]  # batch, n_experiments, seconds, furnace_runs
    scored: np.ndarray
    recipes: list[Recipe] = field(default_factory=list)  # every recipe tried, in order


def run_cell(problem: Problem, settings: BenchmarkSettings, seed: int, name: str, prior=None) -> CellResult:
    """Run strategy ``name`` for one seed: the seed's initial design, then ``settings.batches`` proposals.

    Deterministic given (problem, settings, seed, name): the oracle is reseeded, every strategy is
    seeded, and torch runs on one thread (so a cell gives the same result in any process).
    """
    cfg = problem.config
    if problem.pool is not None:
        initial = _records(cfg, problem.pool.sample(n=settings.n_initial, random_state=seed))
    else:
        initial = sobol_recipes(cfg, settings.n_initial, seed + 10_000)
    if problem.reseed is not None:
        problem.reseed(seed)
    strategy = strategy_class(name)(problem, seed)
    batches: list[tuple[Path, bytes]] = []
    tried: list[Recipe] = []
    scored = np.zeros((0, len(cfg.targets)))
    seconds, furnace_runs = 0.0, 0
    furnace = cfg.acquisition.furnace
    out = []
    with one_torch_thread():
        for b in range(settings.batches + 1):
            history = campaign_from_batches(cfg, batches, prior=prior)
            t0 = time.perf_counter()
            recipes = initial if b == 0 else strategy.propose(history, settings.batch_size, b)
            seconds += time.perf_counter() - t0 if b else 0.0
            if recipes:  # (none in batch 0 when n_initial = 0)
                results = [problem.measure(dict(r)) for r in recipes]
                data = _batch_bytes(cfg, f"b{b}", len(tried), recipes, results)
                path = Path(f"<{name}-seed{seed}-batch{b}>")
                parsed = parse_table(data, cfg, str(path), existing_ids=list(history.experiments[ID]))
                strategy.observe(recipes, parsed)
                batches.append((path, data))
                tried += recipes
                scored = np.vstack([scored, feasible_only(cfg, _scores(problem, recipes, parsed))])
            if furnace is not None:
                furnace_runs += len({r[furnace.input] for r in recipes})
            out.append({"batch": b, "n_experiments": len(tried), "seconds": seconds, "furnace_runs": furnace_runs})
    return CellResult(name, seed, out, scored, tried)


def run_cells(
    problem: Problem,
    settings: BenchmarkSettings,
    workers: int = 1,
    progress: Callable[[str, int, int], None] | None = None,
    ray_address: str | None = None,
) -> list[CellResult]:
    """Every (strategy, seed) cell, in order seed-major; ``workers`` > 1 runs them in that many forked
    processes (one torch thread each), ``ray_address`` as Ray tasks of one CPU each on that cluster instead
    (:func:`~optimize.parallel.ray_map`). The results do not depend on where the cells run."""
    prior = load_prior(problem.config)  # the models of the botorch strategy learn from it too (config.prior)
    cells = [(seed, name) for seed in settings.seeds for name in settings.strategies]

    def report(i: int, cell: CellResult) -> None:
        for row in cell.batches if progress else ():
            progress(cell.strategy, cell.seed, row["batch"])

    def job(cell: tuple[int, str]) -> CellResult:
        return run_cell(problem, settings, *cell, prior)

    if ray_address:
        return ray_map(job, cells, ray_address, report)
    return fork_map(job, cells, workers, report)


def run_benchmark(
    problem: Problem,
    settings: BenchmarkSettings,
    progress: Callable[[str, int, int], None] | None = None,
    workers: int = 1,
    ray_address: str | None = None,
) -> BenchmarkResult:
    """Run every strategy for every seed (``workers`` processes or a Ray cluster, see :func:`run_cells`);
    ``progress(strategy, seed, batch)`` is called for each batch as its cell finishes.

    Score: hypervolume of what was tried (noise-free), of feasible recipes only when the config has
    outcome constraints; each row also counts ``feasible`` recipes and, for a furnace campaign,
    ``furnace_runs`` (distinct values of the furnace input per batch, summed).
    """
    cfg = problem.config
    dense = feasible_only(cfg, best_attainable(problem))
    ref, best = _normalizer(cfg, dense)
    cells = run_cells(problem, settings, workers, progress, ray_address)
    rows: list[dict[str, Any]] = []
    for cell in cells:
        for row in cell.batches:
            scored = cell.scored[: row["n_experiments"]]
            rows.append(
                {
                    "strategy": cell.strategy,
                    "seed": cell.seed,
                    "batch": row["batch"],
                    "n_experiments": row["n_experiments"],
                    "hypervolume": hypervolume(normalized(cfg, scored, ref, best)),
                    "seconds": row["seconds"],
                    "feasible": int(np.isfinite(scored).all(axis=1).sum()),
                    "furnace_runs": row["furnace_runs"],
                }
            )
    # The best attainable front: the dense design plus anything a strategy found beyond it.
    hv_best = hypervolume(normalized(cfg, np.vstack([dense, *(c.scored for c in cells)]), ref, best))
    if hv_best <= 0:
        raise BenchmarkError(
            "no recipe beats the reference point on every target: the hypervolume is always 0; lower the references"
        )
    for r in rows:
        r["hypervolume"] /= hv_best
    loop = {"acquisition": cfg.acquisition.model_dump(mode="json"), "models": cfg.models.model_dump(mode="json")}
    return BenchmarkResult(problem.name, settings, rows, hv_best, None, summarize(rows), loop)


def summarize(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per strategy and batch: median and interquartile range of the hypervolume, median seconds (and
    median feasible recipes and furnace runs)."""
    frame = pd.DataFrame(rows)
    out = []
    for (name, b), g in frame.groupby(["strategy", "batch"], sort=False):
        q25, q50, q75 = np.percentile(g.hypervolume, [25, 50, 75])
        out.append(
            {
                "strategy": name,
                "batch": int(b),
                "n_experiments": int(g.n_experiments.iloc[0]),
                "hv_median": float(q50),
                "hv_q25": float(q25),
                "hv_q75": float(q75),
                "seconds_median": float(g.seconds.median()),
                **{f"{k}_median": float(g[k].median()) for k in ("feasible", "furnace_runs") if k in g},
            }
        )
    return out


def experiments_to_reach(rows: Sequence[Mapping[str, Any]], strategy: str, level: float) -> float:
    """Median (over seeds) number of experiments a strategy needed to reach ``level`` of the best hypervolume
    (``inf`` for a seed that never did; the median is then ``inf`` if half the seeds never did)."""
    frame = pd.DataFrame(rows)
    frame = frame[frame.strategy == strategy]
    needed = []
    for _, g in frame.groupby("seed"):
        hit = g[g.hypervolume >= level].n_experiments
        needed.append(float(hit.min()) if len(hit) else math.inf)
    return float(np.median(needed)) if needed else math.nan
