"""Peer optimizers as benchmark strategies: Ax (``Client``) and BayBE (``Campaign``), the optional extra ``peers``.

Both are set up as their documentation recommends and left at their defaults otherwise:

- **Ax** (``ax-platform``): a ``Client`` seeded per run, one range parameter per continuous input and one unordered
  choice parameter per categorical input; ``configure_optimization`` with every target as an objective
  (``"plqy, -fwhm_nm, ..."``) and its reference point as the objective threshold (``"plqy >= 10"``); the default
  generation strategy (Sobol, then BoTorch's modular model) asked for a batch with ``get_next_trials``.
- **BayBE**: a ``Campaign`` whose search space has a ``NumericalContinuousParameter`` per continuous input and a
  ``CategoricalParameter`` (one-hot) per categorical input (on a lookup table: the table's rows as a discrete
  space, ``SearchSpace.from_dataframe``), a ``ParetoObjective`` of ``NumericalTarget``\\ s (``minimize`` as
  configured; ``match_absolute`` for a ``target`` objective), and the default recommender
  (``TwoPhaseMetaRecommender``: random, then ``BotorchRecommender``).

What both are told, for a fair comparison (the same initial design, oracle and scoring as every strategy):

- every recipe that was really run, as run: a proposal first gets the config's conditions (``k_ratio`` 0 without a
  carbonate, ``addition`` inactive), continuous values are snapped to their steps and, on a lookup table, the
  proposal becomes the nearest untried row; an inactive categorical input is told as its first choice;
- a censored value (``<10``) as the value half-way between the bound and the target's physical limit (as TPE);
- a value not measured is left out (Ax: the metric is missing from the trial's data; BayBE: NaN, which its
  ``ParetoObjective`` accepts as a partial measurement); a ``target`` objective is told to Ax as minus the
  distance from the goal (to maximize), to BayBE as the raw value with its absolute-match transformation.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any, Mapping

import numpy as np
import pandas as pd

from optimize.benchmark import (
    BenchmarkError,
    Problem,
    Recipe,
    Strategy,
    apply_conditions,
    feasible,
    recipe_key,
    register,
    satisfy,
    told_rows,
)
from optimize.campaign import Campaign
from optimize.config import CampaignConfig, CategoricalInput, ContinuousInput
from optimize.constraints import eliminated

INSTALL_HINT = "install the optional extra: pip install -e '.[peers]'"


def _complete(config: CampaignConfig, recipe: Recipe) -> Recipe:
    """Every input with a value in its range, as peers want rows of their search space: an inactive categorical
    input as its first choice, a condition's "off" value outside the range (k_ratio 0) as the nearest bound."""
    out = dict(recipe)
    for inp in config.inputs:
        if isinstance(inp, CategoricalInput) and out.get(inp.name) in (None, ""):
            out[inp.name] = inp.choices[0]
        elif isinstance(inp, ContinuousInput) and out.get(inp.name) is not None:
            out[inp.name] = min(max(float(out[inp.name]), inp.lower), inp.upper)
    return out


def as_run(problem: Problem, recipe: Mapping, taken: set[tuple]) -> Recipe:
    """A peer's proposal as it will be run: conditions applied and steps snapped, or (lookup table) the
    nearest row not yet ``taken`` (keys of :func:`optimize.benchmark.recipe_key`)."""
    config = problem.config
    if problem.pool is None:
        out: Recipe = {}
        for inp in config.inputs:
            v = recipe.get(inp.name)
            out[inp.name] = (
                float(inp.snap(min(max(float(v), inp.lower), inp.upper))) if isinstance(inp, ContinuousInput) else v
            )
        out = satisfy(config, apply_conditions(config, out))  # snapping must not break an equality
        if not feasible(config, out):  # nor an inequality: then run the proposal as proposed, unsnapped
            raw = {i.name: _plain(recipe.get(i.name)) for i in config.inputs}
            out = satisfy(config, apply_conditions(config, raw))
        return out
    pool = problem.pool
    free = [
        i
        for i, r in enumerate(pool[list(config.input_names)].to_dict(orient="records"))
        if recipe_key(config, r) not in taken
    ]
    if not free:
        raise BenchmarkError("every row of the lookup table has been tried; use fewer batches")
    dist = np.zeros(len(free))
    for inp in config.inputs:
        col = pool[inp.name].iloc[free]
        if isinstance(inp, ContinuousInput):
            dist += ((col.astype(float).to_numpy() - float(recipe[inp.name])) / (inp.upper - inp.lower)) ** 2
        else:
            dist += (col.fillna("").astype(str).to_numpy() != str(recipe.get(inp.name) or "")).astype(float)
    row = pool.iloc[free[int(np.argmin(dist))]]
    return {inp.name: (None if row[inp.name] in ("", None) else row[inp.name]) for inp in config.inputs}


class _Peer(Strategy):
    """Shared by the peers: the keys of recipes already run (so a lookup proposal is never repeated)."""

    def __init__(self, problem: Problem, seed: int) -> None:
        from optimize.kernels import use_prebuilt_kernel

        super().__init__(problem, seed)
        self.taken: set[tuple] = set()
        use_prebuilt_kernel()  # the same qLogEHVI kernel as kiln's, no compile inside a timed batch

    def _as_run(self, proposals: list[Mapping], n: int) -> list[Recipe]:
        out: list[Recipe] = []
        for p in proposals[:n]:
            recipe = as_run(self.problem, p, self.taken | {recipe_key(self.config, r) for r in out})
            out.append(recipe)
        return out

    def observe(self, recipes: list[Recipe], rows: pd.DataFrame) -> None:
        self.taken |= {recipe_key(self.config, r) for r in recipes}
        self._tell([_complete(self.config, r) for r in recipes], told_rows(self.config, rows))

    def _tell(self, recipes: list[Recipe], values: list[dict[str, float | None]]) -> None:
        raise NotImplementedError


class AxStrategy(_Peer):
    """Ax's ``Client`` with its default generation strategy (see the module docstring)."""

    name = "ax"

    def __init__(self, problem: Problem, seed: int) -> None:
        try:
            from ax.api.client import Client
            from ax.api.configs import ChoiceParameterConfig, DerivedParameterConfig, RangeParameterConfig
        except ImportError:
            raise BenchmarkError(f"the ax strategy needs ax-platform; {INSTALL_HINT}") from None
        super().__init__(problem, seed)
        for name in list(logging.root.manager.loggerDict):  # Ax's loggers set their own levels: one line per trial
            if name == "ax" or name.startswith(("ax.", "pyro")):
                logging.getLogger(name).setLevel(logging.ERROR)
        cfg = self.config
        # Ax takes no equality constraints: each equality's dependent input becomes a derived parameter and its
        # range an inequality over the others (optimize/constraints.py, eliminated)
        bounds = {i.name: (i.lower, i.upper) for i in cfg.inputs if isinstance(i, ContinuousInput)}
        derived, inequalities = eliminated(cfg.linear_constraints, bounds)
        params: list[Any] = []
        for inp in cfg.inputs:
            if inp.name in derived:
                coefs, constant = derived[inp.name]
                expression = " + ".join([f"{constant!r}", *(f"{a!r} * {n}" for n, a in coefs.items())])
                params.append(DerivedParameterConfig(name=inp.name, expression_str=expression, parameter_type="float"))
            elif isinstance(inp, ContinuousInput):
                params.append(
                    RangeParameterConfig(
                        name=inp.name, bounds=(float(inp.lower), float(inp.upper)), parameter_type="float"
                    )
                )
            else:
                params.append(
                    ChoiceParameterConfig(
                        name=inp.name, values=list(inp.choices), parameter_type="str", is_ordered=False
                    )
                )
        self.client = Client(random_seed=seed)
        self.client.configure_experiment(
            parameters=params,
            parameter_constraints=[_ax_constraint(c) for c in inequalities] or None,
            name=f"kiln-{cfg.name}",
        )
        objectives, thresholds = [], []
        for t in cfg.targets:
            sign = "-" if t.direction == "minimize" else ""
            objectives.append(f"{sign}{t.name}")
            op = "<=" if t.direction == "minimize" else ">="
            thresholds.append(f"{t.name} {op} {t.reference if t.direction != 'target' else t.objective_reference}")
        # reference points are objective thresholds (a single objective takes none)
        self.client.configure_optimization(
            objective=", ".join(objectives), outcome_constraints=thresholds if len(objectives) > 1 else None
        )

    def propose(self, history: Campaign, n: int, batch: int) -> list[Recipe]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trials = self.client.get_next_trials(max_trials=n)
        for index in trials:  # what is run is attached as its own trial when the results are in
            self.client.mark_trial_abandoned(index)
        return self._as_run(list(trials.values()), n)

    def _tell(self, recipes: list[Recipe], values: list[dict[str, float | None]]) -> None:
        targets = {t.name: t for t in self.config.targets}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for recipe, told in zip(recipes, values):
                index = self.client.attach_trial(parameters={k: _plain(v) for k, v in recipe.items()})
                data = {
                    k: float(targets[k].objective(v)) if targets[k].direction == "target" else v
                    for k, v in told.items()
                    if v is not None
                }
                if data:
                    self.client.complete_trial(index, raw_data=data)
                else:
                    self.client.mark_trial_failed(index)


class BayBEStrategy(_Peer):
    """BayBE's ``Campaign`` with a ``ParetoObjective`` and its default recommender (see the module docstring)."""

    name = "baybe"

    def __init__(self, problem: Problem, seed: int) -> None:
        try:
            from baybe import Campaign as BayBECampaign
            from baybe.objectives import ParetoObjective
            from baybe.parameters import CategoricalParameter, NumericalContinuousParameter, NumericalDiscreteParameter
            from baybe.searchspace import SearchSpace
            from baybe.targets import NumericalTarget
        except ImportError:
            raise BenchmarkError(f"the baybe strategy needs baybe; {INSTALL_HINT}") from None
        super().__init__(problem, seed)
        cfg = self.config
        pool = problem.pool
        params: list[Any] = []
        for inp in cfg.inputs:
            if isinstance(inp, CategoricalInput):
                values = (
                    list(inp.choices)
                    if pool is None
                    else sorted({_complete(cfg, r)[inp.name] for r in pool.to_dict(orient="records")})
                )
                params.append(CategoricalParameter(name=inp.name, values=values, encoding="OHE"))
            elif pool is None:
                params.append(NumericalContinuousParameter(name=inp.name, bounds=(float(inp.lower), float(inp.upper))))
            else:
                params.append(
                    NumericalDiscreteParameter(name=inp.name, values=sorted(set(pool[inp.name].astype(float))))
                )
        if pool is None:
            from baybe.constraints import ContinuousLinearConstraint

            operator = {"==": "=", "<=": "<=", ">=": ">="}
            constraints = [
                ContinuousLinearConstraint(
                    parameters=[n for n, _ in c.coefs], operator=operator[c.op], coefficients=[a for _, a in c.coefs],
                    rhs=c.rhs,
                )
                for c in cfg.linear_constraints
            ]  # fmt: skip
            space = SearchSpace.from_product(params, constraints=constraints or None)
        else:
            rows = pd.DataFrame([_complete(cfg, r) for r in pool[list(cfg.input_names)].to_dict(orient="records")])
            space = SearchSpace.from_dataframe(rows, params)
        targets = []
        for t in cfg.targets:
            if t.direction == "target":
                targets.append(NumericalTarget.match_absolute(t.name, t.goal))
            else:
                targets.append(NumericalTarget(t.name, minimize=t.direction == "minimize"))
        objective = ParetoObjective(targets) if len(targets) > 1 else targets[0].to_objective()
        self.campaign = BayBECampaign(space, objective)

    def propose(self, history: Campaign, n: int, batch: int) -> list[Recipe]:
        from baybe.utils.random import set_random_seed

        set_random_seed(self.seed * 1000 + batch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = self.campaign.recommend(batch_size=n)
        return self._as_run(frame.to_dict(orient="records"), n)

    def _tell(self, recipes: list[Recipe], values: list[dict[str, float | None]]) -> None:
        rows = [
            {**{k: _plain(v) for k, v in r.items()}, **{k: (math.nan if v is None else v) for k, v in told.items()}}
            for r, told in zip(recipes, values)
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.campaign.add_measurements(pd.DataFrame(rows), numerical_measurements_must_be_within_tolerance=False)


def _ax_constraint(c) -> str:
    """A :class:`~optimize.constraints.LinearConstraint` in Ax's syntax: space-separated terms, ``2*x`` one token."""
    tokens: list[str] = []
    for k, (name, a) in enumerate(c.coefs):
        term = name if abs(a) == 1 else f"{abs(a):g}*{name}"
        if k == 0:
            tokens.append(term if a > 0 else f"-{abs(a):g}*{name}")
        else:
            tokens += ["+" if a > 0 else "-", term]
    return " ".join([*tokens, c.op, f"{c.rhs:g}"])


def _plain(v: Any) -> Any:
    """numpy scalars -> Python values (Ax validates parameter types)."""
    return v.item() if isinstance(v, np.generic) else v


register(AxStrategy)
register(BayBEStrategy)
