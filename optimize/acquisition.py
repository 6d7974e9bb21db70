"""Batch suggestions by multi-objective Bayesian optimization over the mixed search space.

The categorical inputs have few valid combinations (7 for the seed campaign once ``addition`` is
dropped without carbonate), so rather than relaxing them we enumerate them:

1. score ``raw_samples_per_combo`` Sobol points of the continuous inputs under every combination;
2. polish the best ``restarts`` of them by a compass search on the grid of the inputs' steps (moves of 8, 4,
   2, 1 steps, at most ``maxiter`` rounds), categories and condition-fixed values (``k_ratio`` = 0 without
   carbonate) held fixed: no gradients, so every model mix (gradient boosting included) is polished alike;
3. round to the configured steps, drop near-duplicates of measured, pending or already chosen recipes,
   keep the best; add it to the pending set and repeat for the next recipe (sequential greedy).

The acquisition (``acquisition.kind``) is ``portfolio`` by default: the first half of each batch by qLogEHVI against
the posterior-mean front (pending recipes believed at their means; qLogNEHVI with ``acquisition.exploit``), the rest
by random Chebyshev scalarizations of an upper confidence bound (:mod:`optimize.explore`), which explores where the
models are unsure; or qLogEHVI, qLogNEHVI or qLogNParEGO for the whole batch. All run on the per-target surrogates
of ``FittedModels.acquisition_surrogates`` (``models.explore_with``'s GP, or the cross-validation winner when it is
unset), with minimized targets negated and a ``target`` objective scored as minus its distance from the goal.
Shapes: ``X`` is ``b x q x d`` for the acquisition, ``n x d`` elsewhere; ``d`` = number of inputs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from botorch.acquisition.multi_objective.logei import (
    qLogExpectedHypervolumeImprovement,
    qLogNoisyExpectedHypervolumeImprovement,
)
from botorch.acquisition.multi_objective.objective import GenericMCMultiOutputObjective
from botorch.acquisition.multi_objective.parego import qLogNParEGO
from botorch.sampling import SobolQMCNormalSampler
from botorch.utils.multi_objective.box_decompositions.non_dominated import FastNondominatedPartitioning
from botorch.utils.multi_objective.pareto import is_non_dominated
from botorch.utils.sampling import sample_simplex
from torch import Tensor
from torch.quasirandom import SobolEngine

from optimize.config import CampaignConfig, CategoricalInput, ContinuousInput
from optimize.constraints import EncodedConstraints
from optimize.kernels import use_prebuilt_kernel
from optimize.models import FittedModels

_EVAL_CHUNK = 512
_FIRST_STRIDE = 8  # the local search's first move, in steps
CONSTRAINT_ETA = 0.1  # sigmoid temperature of outcome constraints, in units of the target's scale


@dataclass(frozen=True)
class Combo:
    """One valid assignment of the categorical inputs plus the continuous values it fixes.

    ``fixed`` maps feature index -> encoded value (categorical codes and condition-set values).
    """

    fixed: dict[int, float]


def enumerate_combos(config: CampaignConfig, encoder) -> list[Combo]:
    """All valid categorical combinations under the config's conditions, without repeats."""
    cats = [inp for inp in config.inputs if isinstance(inp, CategoricalInput)]
    names = encoder.names
    combos: dict[tuple, Combo] = {}
    for values in itertools.product(*(inp.choices for inp in cats)):
        recipe = dict(zip((c.name for c in cats), values))
        fixed: dict[int, float] = {}
        for cond in config.applicable_conditions(recipe):
            for name in cond.inactive:
                recipe[name] = None
            for name, v in cond.set.items():
                fixed[names.index(name)] = encoder.scale(name, v)
        for c in cats:
            feat = encoder.features[names.index(c.name)]
            v = recipe[c.name]
            fixed[names.index(c.name)] = float(feat.not_applicable if v is None else feat.choices.index(v))
        key = tuple(sorted(fixed.items()))
        combos.setdefault(key, Combo(fixed))
    return list(combos.values())


@dataclass(frozen=True)
class Proposal:
    """Chosen recipes (``n x d`` encoded) and the acquisition value of each when it was chosen."""

    X: Tensor
    acquisition_values: np.ndarray
    strategy: str


def _steps(config: CampaignConfig, encoder) -> dict[int, float]:
    out = {}
    for inp in config.inputs:
        if isinstance(inp, ContinuousInput) and inp.step:
            out[encoder.names.index(inp.name)] = inp.step / (inp.upper - inp.lower)
    return out


def _round(X: Tensor, steps: dict[int, float], encoder) -> Tensor:
    """Round continuous features to their steps (in raw units, anchored at the lower bound). ``n x d``.

    A value outside ``[0, 1]`` is a condition's "off" value (e.g. ``k_ratio`` 0 below its range) and stays."""
    X = X.clone()
    for j, s in steps.items():
        inside = (X[:, j] >= 0.0) & (X[:, j] <= 1.0)
        X[:, j] = torch.where(inside, (torch.round(X[:, j] / s) * s).clamp(0.0, 1.0), X[:, j])
    return X


def combo_points(base: Tensor, combos: list[Combo], encoder) -> Tensor:
    """The continuous points ``base`` (``k x c``, one column per continuous feature) under every combination:
    ``(len(combos) * k) x d``, combination-major."""
    d = len(encoder.features)
    parts = []
    for combo in combos:
        X = torch.zeros(len(base), d, dtype=torch.double)
        X[:, encoder.cont_dims] = base
        for j, v in combo.fixed.items():
            X[:, j] = v
        parts.append(X)
    return torch.cat(parts)


def _duplicates(X: Tensor, others: Tensor, cont_dims: list[int], cat_dims: list[int], tol: float) -> Tensor:
    """Which rows of ``X`` (``n x d``) match a row of ``others`` (``m x d``): same categories, continuous within
    ``tol``; ``n`` booleans."""
    if others.numel() == 0:
        return torch.zeros(len(X), dtype=torch.bool)
    A, B = X.unsqueeze(1), others.unsqueeze(0)  # n x 1 x d, 1 x m x d
    same_cat = (
        (A[..., cat_dims] == B[..., cat_dims]).all(dim=-1)
        if cat_dims
        else torch.ones(len(X), len(others), dtype=torch.bool)
    )
    close = (A[..., cont_dims] - B[..., cont_dims]).abs().amax(dim=-1) <= tol
    return (same_cat & close).any(dim=-1)


def _evaluate(acqf, X: Tensor) -> Tensor:
    """Acquisition values of ``X`` (``n x d``) as ``n`` points with q = 1, in chunks."""
    with torch.no_grad():
        return torch.cat([acqf(X[i : i + _EVAL_CHUNK].unsqueeze(-2)) for i in range(0, len(X), _EVAL_CHUNK)])


def _lazy_argmax(acqf, X: Tensor, bound: Tensor) -> tuple[int, Tensor]:
    """The row of ``X`` (``n x d``) with the highest acquisition value, given upper bounds on those values
    (``bound``, ``n``; ``inf`` where there is none), and the bounds tightened by every value computed (``n``).

    Rows are evaluated best bound first, ``_EVAL_CHUNK`` at a time, until the best value found is at least the next
    bound: no row left can beat it, so the row is the one a full evaluation picks (lazy greedy, Minoux 1978).
    """
    bound = bound.clone()
    order = torch.argsort(bound, descending=True, stable=True)
    best = None
    for start in range(0, len(order), _EVAL_CHUNK):
        rows = order[start : start + _EVAL_CHUNK]
        bound[rows] = _evaluate(acqf, X[rows])
        top = rows[torch.argmax(bound[rows])]
        best = top if best is None or bound[top] > bound[best] else best
        rest = start + _EVAL_CHUNK
        if rest >= len(order) or bound[best] >= bound[order[rest]]:
            break
    return int(best), bound


def _acqf_builder(config: CampaignConfig, fitted: FittedModels, X_baseline: Tensor, seed: int):
    """``build(X_pending, step) -> acquisition function`` for the configured kind.

    - ``qlognehvi``: noisy EHVI, integrating over the uncertain baseline front (a box decomposition
      per MC sample: most accurate, slowest);
    - ``qlogehvi``: EHVI against the front of the posterior means at the measured and pending recipes
      (pending ones "believed" at their predicted means): one box decomposition per step;
    - ``qlognparego``: a random Chebyshev scalarization per step (cheapest, least directed);
    - ``portfolio``: ``acquisition.exploit`` (``qlogehvi`` or ``qlognehvi``) for the half of each batch it chooses
      (:mod:`optimize.explore` the rest).
    """
    use_prebuilt_kernel()  # never BoTorch's compile at first use (optimize.kernels)
    settings = config.acquisition
    model = fitted.botorch_model()
    objectives = objective_values(config)
    objective = GenericMCMultiOutputObjective(lambda Z, X=None: objectives(Z))
    ref = torch.tensor([t.objective_reference for t in config.targets], dtype=torch.double)
    m = len(config.targets)
    constraints = outcome_constraints(config, fitted)
    shared = {"constraints": constraints or None, "eta": CONSTRAINT_ETA} if constraints else {}

    def sampler(step: int) -> SobolQMCNormalSampler:
        return SobolQMCNormalSampler(sample_shape=torch.Size([settings.mc_samples]), seed=seed + step)

    kind = settings.greedy_kind
    if kind == "qlogehvi":  # also the portfolio's exploiting half, and its furnace batches

        def front(X: Tensor) -> Tensor:
            """Objective values (``k x m``) of the posterior means at ``X`` that meet every constraint."""
            with torch.no_grad():
                mean = model.marginals(X)[0]
            ok = torch.ones(len(mean), dtype=torch.bool)
            for c in constraints:
                ok &= c(mean) <= 0
            return objectives(mean)[ok]

        Y_base = front(X_baseline)

        def believed(pending: Tensor | None) -> Tensor:
            """The front to improve on (``k x m``): baseline means, plus pending recipes believed at
            their predicted means (Kriging believer); the reference point while nothing is feasible."""
            Y = Y_base if pending is None else torch.cat([Y_base, front(pending)])
            return Y if len(Y) else ref.unsqueeze(0)

        def build(pending: Tensor | None, step: int):
            Y = believed(pending)
            partitioning = FastNondominatedPartitioning(ref_point=ref, Y=Y[is_non_dominated(Y)])
            return qLogExpectedHypervolumeImprovement(
                model=model,
                ref_point=ref.tolist(),
                partitioning=partitioning,
                sampler=sampler(step),
                objective=objective,
                **shared,
            )

    elif kind == "qlognehvi":

        def build(pending: Tensor | None, step: int):
            return qLogNoisyExpectedHypervolumeImprovement(
                model=model,
                ref_point=ref.tolist(),
                X_baseline=X_baseline,
                sampler=sampler(step),
                objective=objective,
                X_pending=pending,
                prune_baseline=True,
                cache_root=False,
                **shared,
            )

    else:

        def build(pending: Tensor | None, step: int):
            weights = sample_simplex(m, dtype=torch.double, seed=seed + 7919 * step).squeeze(0)
            return qLogNParEGO(
                model=model,
                X_baseline=X_baseline,
                scalarization_weights=weights,
                sampler=sampler(step),
                objective=objective,
                X_pending=pending,
                prune_baseline=True,
                cache_root=False,
                **shared,
            )

    return build


def objective_values(config: CampaignConfig):
    """``Z -> objectives``: model outputs ``... x m'`` (targets in config order first) to ``... x m``
    quantities to maximize: the value, its negative, or minus the distance from a goal."""
    targets = config.targets

    def objectives(Z: Tensor) -> Tensor:
        return torch.stack([t.objective(Z[..., j]) for j, t in enumerate(targets)], dim=-1)

    return objectives


def outcome_constraints(config: CampaignConfig, fitted: FittedModels) -> list:
    """BoTorch constraint callables: posterior samples ``... x m'`` -> ``...``, feasible where <= 0.

    One per bound of ``config.outcome_constraints``, in units of the target's scale floor so that
    one ``eta`` suits every target; plus ``P(success) >= 0.5`` on the feasibility output (the last
    one) when some synthesis failed. The acquisition weighs each sample's improvement by its
    (smoothed) feasibility, so the expectation is the improvement times the probability of
    meeting every constraint.
    """
    from optimize.models import scale_floor

    index = {name: j for j, name in enumerate(fitted.surrogates)}
    targets = {t.name: t for t in config.targets}
    out = []
    for oc in config.outcome_constraints:
        j, s = index[oc.target], scale_floor(targets[oc.target]) or 1.0
        if oc.min is not None:
            out.append(lambda Z, j=j, v=oc.min, s=s: (v - Z[..., j]) / s)
        if oc.max is not None:
            out.append(lambda Z, j=j, v=oc.max, s=s: (Z[..., j] - v) / s)
    if fitted.feasibility is not None:
        j = len(fitted.surrogates)
        out.append(lambda Z, j=j: (0.5 - Z[..., j]) / 0.5)
    return out


def suggest_recipes(
    campaign, fitted: FittedModels, n: int, seed: int, pool: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, Proposal]:
    """``n`` new recipes for a campaign (a frame of inputs in raw units) and the proposal behind them.

    The campaign's experiments are the baseline (the prior campaign's recipes while it has none, so
    a new lab's first batch is already chosen by the models) and its pending suggestions are
    excluded. ``pool`` (a frame of input columns) restricts the choice to those recipes, e.g. a
    lookup table.
    """
    config = campaign.config
    enc = fitted.encoder
    inputs = list(config.input_names)
    d = len(inputs)

    def encode(frame: pd.DataFrame) -> Tensor:
        return enc.encode(frame[inputs]) if len(frame) else torch.zeros(0, d, dtype=torch.double)

    X_pool = encode(pool) if pool is not None else None
    X_measured = encode(campaign.experiments)
    X_baseline = encode(campaign.prior.experiments) if len(X_measured) == 0 and campaign.prior is not None else None
    proposal = propose(config, fitted, X_measured, encode(campaign.pending), n, seed, X_pool, X_baseline)
    return recipes_frame(config, enc, proposal.X), proposal


def propose(
    config: CampaignConfig,
    fitted: FittedModels,
    X_measured: Tensor,
    X_pending: Tensor,
    n: int,
    seed: int,
    X_pool: Tensor | None = None,
    X_baseline: Tensor | None = None,
) -> Proposal:
    """Propose ``n`` recipes (encoded, ``n x d``).

    Args:
        X_measured: ``m x d`` encoded experiments (never repeated; the acquisition baseline).
        X_pending: ``p x d`` encoded suggestions not yet measured (treated as pending points).
        X_pool: ``k x d`` allowed recipes (a discrete candidate set), or ``None`` for the whole space.
        X_baseline: ``b x d`` recipes whose predicted outcomes are the front to improve on, if not
            ``X_measured`` (a prior campaign's recipes before this one has any).
    """
    encoder = fitted.encoder
    settings = config.acquisition
    baseline = X_measured if X_baseline is None else X_baseline
    if X_pool is not None:
        return _propose_from_pool(config, fitted, X_measured, X_pending, X_pool, n, seed, baseline)
    if len(fitted.surrogates) < len(config.targets) or len(baseline) == 0:
        return _sobol_design(config, encoder, X_measured, X_pending, n, seed)
    combos = enumerate_combos(config, encoder)
    build = _acqf_builder(config, fitted, baseline, seed)
    search = _Search(config, fitted, X_measured, X_pending, seed)
    if settings.kind == "portfolio" and settings.furnace is None:
        n_ehvi = greedy_share(settings.kind, n)
        X1, v1 = search.greedy(build, combos, n_ehvi)
        X2, v2 = _explore(
            config,
            fitted,
            combos,
            baseline,
            torch.cat([X_pending.reshape(-1, X1.shape[-1]), X1]),
            X_measured,
            n - n_ehvi,
            seed,
        )
        return Proposal(torch.cat([X1, X2]), np.concatenate([v1, v2]), settings.kind)
    furnace = settings.furnace
    if furnace is None:
        X, values = search.greedy(build, combos, n)
        return Proposal(X, values, settings.kind)
    # Furnace batches: build a greedy batch from each of the best first-recipe values of the shared
    # input and keep the batch whose joint (q-batch) acquisition value is highest.
    j = encoder.names.index(furnace.input)
    taken = torch.cat([X_measured, X_pending.reshape(-1, X_measured.shape[-1])])
    pool, _ = search.ranked(build(X_pending if len(X_pending) else None, 0), combos, taken, step=0)
    starts: list[float] = []
    for v in pool[:, j].tolist():
        if v not in starts:
            starts.append(v)
        if len(starts) == furnace.candidates:
            break
    best = None
    for v in starts:
        X, values = search.greedy(build, combos, n, shared=(j, v, furnace.max_distinct))
        with torch.no_grad():
            joint = float(build(X_pending if len(X_pending) else None, 0)(X.unsqueeze(0)))
        if best is None or joint > best[0]:
            best = (joint, X, values)
    return Proposal(best[1], best[2], settings.kind)


class _Search:
    """Sequential greedy search over the combinations (raw Sobol scoring, local-search polish, rounding)."""

    def __init__(
        self, config: CampaignConfig, fitted: FittedModels, X_measured: Tensor, X_pending: Tensor, seed: int
    ) -> None:
        self.config, self.encoder = config, fitted.encoder
        self.X_measured, self.X_pending, self.seed = X_measured, X_pending, seed
        self.steps = _steps(config, self.encoder)
        # one scrambled Sobol sequence per proposal, continued step after step (re-seeding it at every
        # step lowered the virtual-lab hypervolume after 32 experiments in 3 of 10 seeds, e.g. 0.92 -> 0.29)
        self.sobol = SobolEngine(dimension=len(self.encoder.cont_dims), scramble=True, seed=seed)
        # the local search's step per continuous feature: the configured step, else 1/64 of the range
        self.cons = EncodedConstraints(config.linear_constraints, self.encoder)
        # the local search moves the free inputs; an equality's dependent input follows (see optimize/constraints.py)
        self.search_steps = {
            j: self.steps.get(j, 1 / 64) for j in self.encoder.cont_dims if j not in self.cons.dependent
        }
        self.n_raw = config.acquisition.raw_samples_per_combo

    def ranked(self, acqf, combos: list[Combo], avoid: Tensor, step: int) -> tuple[Tensor, Tensor]:
        """Candidates (``k x d``, on the steps) and their values, best first, not duplicating ``avoid``."""
        settings, enc = self.config.acquisition, self.encoder
        cont_dims, cat_dims = enc.cont_dims, enc.cat_dims
        # 1. score Sobol points of the continuous inputs under every combination (already on the steps)
        base = self.sobol.draw(self.n_raw).to(torch.double)
        X_raw = self.cons.repair(_round(combo_points(base, combos, enc), self.steps, enc))
        combo_of = torch.arange(len(combos)).repeat_interleave(len(base))
        if self.cons:  # linear constraints: only recipes that satisfy them
            ok = self.cons.feasible(X_raw)
            X_raw, combo_of = X_raw[ok], combo_of[ok]
            if len(X_raw) == 0:
                return X_raw, torch.zeros(0, dtype=torch.double)
        v_raw = _evaluate(acqf, X_raw)
        # 2. polish the best starts by a local search on the steps (categories and condition values fixed)
        top = torch.argsort(v_raw, descending=True)[: settings.restarts]
        starts = [combos[i] for i in combo_of[top].tolist()]
        moved = _local_search(acqf, X_raw[top], starts, self.search_steps, settings.maxiter, self.cons)
        polished = self.cons.repair(_round(moved, self.steps, enc))
        polished = polished[self.cons.feasible(polished)]
        pool, pool_v = torch.cat([polished, X_raw]), torch.cat([_evaluate(acqf, polished), v_raw])
        # 3. drop candidates that duplicate a measured, pending or chosen recipe
        order = torch.argsort(pool_v, descending=True)
        keep = order[~_duplicates(pool[order], avoid, cont_dims, cat_dims, settings.duplicate_tolerance)]
        return pool[keep], pool_v[keep]

    def greedy(
        self, build, combos: list[Combo], n: int, shared: tuple[int, float, int] | None = None
    ) -> tuple[Tensor, np.ndarray]:
        """``n`` recipes (``n x d``) chosen one at a time, each believed pending for the next.

        ``shared = (j, v, k)``: feature ``j`` starts at value ``v`` and takes at most ``k`` distinct
        values in the batch (furnace batches).
        """
        d = len(self.encoder.features)
        chosen: list[Tensor] = []
        values: list[float] = []
        for step in range(n):
            pending = (
                torch.cat([self.X_pending, *[c.unsqueeze(0) for c in chosen]])
                if (len(self.X_pending) or chosen)
                else None
            )
            avoid = torch.cat([self.X_measured, self.X_pending.reshape(-1, d), *[c.unsqueeze(0) for c in chosen]])
            step_combos = combos
            if shared is not None:
                j, v, k = shared
                used = list(dict.fromkeys([v, *(float(c[j]) for c in chosen)]))
                if len(used) >= k or step == 0:
                    step_combos = [Combo({**c.fixed, j: u}) for c in combos for u in (used if step else [v])]
            pool, pool_v = self.ranked(build(pending, step), step_combos, avoid, step)
            if len(pool) == 0:
                raise RuntimeError(
                    "every candidate duplicates a measured or pending recipe or breaks a constraint; widen the search "
                    "space"
                )
            chosen.append(pool[0])
            values.append(float(pool_v[0]))
        return torch.stack(chosen), np.array(values)


def greedy_share(kind: str, n: int) -> int:
    """How many of ``n`` recipes the greedy acquisition picks: the first half for ``portfolio`` (exploit),
    the rest by random scalarizations (explore); all of them for every other kind."""
    return (n + 1) // 2 if kind == "portfolio" else n


def _explore(config, fitted, combos, X_baseline: Tensor, X_pending: Tensor, X_measured: Tensor, n: int, seed: int):
    """``n`` recipes (``n x d``) by random scalarizations (see :mod:`optimize.explore`) on fresh Sobol candidates,
    and their scalarized values."""
    from optimize.explore import CANDIDATES_PER_RAW_SAMPLE, explore_batch, sobol_candidates

    if n == 0:
        return torch.zeros(0, X_measured.shape[-1], dtype=torch.double), np.zeros(0)
    per_combo = CANDIDATES_PER_RAW_SAMPLE * config.acquisition.raw_samples_per_combo
    draw = sobol_candidates(config, fitted.encoder, combos, per_combo, seed + 1)
    X, values = explore_batch(config, fitted, X_baseline, X_pending, torch.cat([X_measured, X_pending]), n, seed, draw)
    return X, values.numpy()


def _propose_from_pool(
    config, fitted, X_measured: Tensor, X_pending: Tensor, X_pool: Tensor, n: int, seed: int, X_baseline: Tensor
) -> Proposal:
    """Sequential greedy choice among the rows of ``X_pool`` (``k x d``) not yet measured or pending."""
    encoder = fitted.encoder
    cont_dims, cat_dims = encoder.cont_dims, encoder.cat_dims
    tol = 1e-9  # a pool row is "taken" only if it is that very recipe
    d = X_pool.shape[-1]
    taken = torch.cat([X_measured, X_pending.reshape(-1, d)])
    free = (~_duplicates(X_pool, taken, cont_dims, cat_dims, tol)).nonzero().reshape(-1).tolist()
    if len(free) < n:
        raise ValueError(f"the candidate pool has {len(free)} untried recipes, fewer than the {n} asked for")
    if len(fitted.surrogates) < len(config.targets) or len(X_baseline) == 0:
        pick = torch.randperm(len(free), generator=torch.Generator().manual_seed(seed))[:n].tolist()
        return Proposal(X_pool[[free[i] for i in pick]], np.full(n, np.nan), "random-pool")
    kind = config.acquisition.kind
    n_greedy = greedy_share(kind, n)
    chosen, values = [], []
    build = _acqf_builder(config, fitted, X_baseline, seed)
    # qLogEHVI against a believed front: each pick joins the front, so with the same base samples no row's improvement
    # can rise from one step to the next (exactly for the hypervolume; qLogEHVI's smoothed one kept to it within 1e-9
    # in tests/test_acquisition.py), and a step's values bound the next's: the lazy greedy of _lazy_argmax.
    lazy = config.acquisition.greedy_kind == "qlogehvi"
    cand = list(free)
    bound = torch.full((len(cand),), torch.inf, dtype=torch.double)  # what the next step's values cannot exceed
    for step in range(n_greedy):
        pending = (
            torch.cat([X_pending, *[X_pool[i].unsqueeze(0) for i in chosen]]) if (len(X_pending) or chosen) else None
        )
        acqf = build(pending, 0 if lazy else step)
        k, v = _lazy_argmax(acqf, X_pool[cand], bound)
        chosen.append(cand.pop(k))
        values.append(float(v[k]))
        bound = torch.cat([v[:k], v[k + 1 :]]) if lazy else torch.full((len(cand),), torch.inf, dtype=torch.double)
    X = X_pool[chosen].reshape(-1, d)
    if n_greedy < n:
        from optimize.explore import explore_batch

        X_free = X_pool[[i for i in free if i not in chosen]]
        pending = torch.cat([X_pending.reshape(-1, d), X])
        X_ts, v_ts = explore_batch(
            config,
            fitted,
            X_baseline,
            pending,
            torch.cat([taken, X]),
            n - n_greedy,
            seed,
            lambda step: X_free,
            doubt=False,
        )
        X, values = torch.cat([X, X_ts]), [*values, *v_ts.tolist()]
    return Proposal(X, np.array(values), kind)


def _local_search(
    acqf, starts: Tensor, start_combos: list[Combo], steps: dict[int, float], max_rounds: int, cons=None
) -> Tensor:
    """Compass search on the grid of the configured steps from each start (``b x d``): each round tries every
    free continuous feature moved by +-``s`` steps (``s`` = 8 at first) and takes the best move if it improves,
    else halves ``s``; a start is done below one step or after ``max_rounds`` rounds. ``start_combos[i]`` holds
    the features start ``i`` keeps fixed.

    Needs no gradients, so it polishes alike whichever models won (gradient boosting included); a round is one
    batched evaluation of at most ``b x 6`` points (3 free features). L-BFGS-B took 3-5 s per recipe at 100
    experiments. A feature without a step moves by 1/64 of its range. With linear constraints (``cons``, an
    :class:`~optimize.constraints.EncodedConstraints`) each move sets the equalities' dependent features and a move
    that breaks a constraint is never taken.
    """
    X = starts.clone()
    value = _evaluate(acqf, X)
    free = [[j for j in range(X.shape[-1]) if j in steps and j not in combo.fixed] for combo in start_combos]
    stride = [float(_FIRST_STRIDE) if dims else 0.0 for dims in free]
    for _ in range(max_rounds):
        owner, moves = [], []
        for i, dims in enumerate(free):
            for j in dims if stride[i] >= 1 else ():
                for sign in (-1.0, 1.0):
                    x = X[i].clone()
                    x[j] = (x[j] + sign * stride[i] * steps[j]).clamp(0.0, 1.0)
                    owner.append(i)
                    moves.append(x)
        if not moves:
            break
        C, owner = torch.stack(moves), torch.tensor(owner)
        if cons:
            C = cons.repair(C)
            v = torch.where(cons.feasible(C), _evaluate(acqf, C), torch.tensor(-torch.inf, dtype=torch.double))
        else:
            v = _evaluate(acqf, C)
        for i in set(owner.tolist()):
            mine = (owner == i).nonzero().reshape(-1)
            best = mine[torch.argmax(v[mine])]
            if v[best] > value[i] + 1e-9:
                X[i], value[i] = C[best], v[best]
            else:
                stride[i] /= 2
    return X


def _sobol_design(
    config: CampaignConfig, encoder, X_measured: Tensor, X_pending: Tensor, n: int, seed: int
) -> Proposal:
    """Space-filling start for a campaign whose targets have no data yet: Sobol points, combos cycled."""
    combos = enumerate_combos(config, encoder)
    cont_dims = encoder.cont_dims
    d = len(encoder.features)
    cons = EncodedConstraints(config.linear_constraints, encoder)
    sobol = SobolEngine(dimension=len(cont_dims), scramble=True, seed=seed)
    perm = torch.randperm(len(combos), generator=torch.Generator().manual_seed(seed)).tolist()
    chosen: list[Tensor] = []
    for _ in range(64):  # with constraints, Sobol points that break one are skipped
        X = torch.zeros(n, d, dtype=torch.double)
        X[:, cont_dims] = sobol.draw(n).to(torch.double)
        for i in range(n):
            for j, v in combos[perm[(len(chosen) + i) % len(combos)]].fixed.items():
                X[i, j] = v
        X = cons.repair(_round(X, _steps(config, encoder), encoder))
        chosen += list(X[cons.feasible(X)])
        if len(chosen) >= n:
            break
    if len(chosen) < n:
        raise RuntimeError(f"only {len(chosen)} of {64 * n} Sobol recipes satisfy the constraints; relax them")
    return Proposal(torch.stack(chosen[:n]), np.full(n, np.nan), "sobol")


def recipes_frame(config: CampaignConfig, encoder, X: Tensor) -> pd.DataFrame:
    """Decode ``n x d`` features into a frame of recipes in raw units, values snapped to their steps (and
    to the value a condition sets, which may lie outside the range)."""
    rows = encoder.decode(X)
    frame = pd.DataFrame(rows, columns=list(config.input_names))
    for inp in config.inputs:
        if isinstance(inp, ContinuousInput):
            frame[inp.name] = inp.snap(frame[inp.name].astype(float))
        else:
            frame[inp.name] = frame[inp.name].fillna("")
    for i, recipe in enumerate(frame.to_dict(orient="records")):
        for cond in config.applicable_conditions(recipe):
            for name, v in cond.set.items():
                frame.loc[frame.index[i], name] = v
    if any(c.op == "==" for c in config.linear_constraints):  # snapping must not break an equality
        from optimize.constraints import dependents, solve_dependents

        solved = list(dependents(config.linear_constraints).values())
        for i, recipe in enumerate(frame.to_dict(orient="records")):
            exact = solve_dependents(config.linear_constraints, recipe)
            frame.loc[frame.index[i], solved] = [exact[n] for n in solved]
    return frame
