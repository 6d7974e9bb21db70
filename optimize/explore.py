"""The exploring half of ``acquisition.kind: portfolio``: random Chebyshev scalarizations of an optimistic
estimate (``acquisition.explore: ucb``, the default) or of a posterior sample (``thompson``).

Each recipe is chosen under its own random scalarization (ParEGO's idea; Paria et al., "A flexible framework
for multi-objective Bayesian optimization using random scalarizations", UAI 2019, with both estimates), on a
discrete candidate set:

1. draw fresh candidates: Sobol points of the continuous inputs under every categorical combination
   (``4 x raw_samples_per_combo`` each, on the steps), or the untried rows of a lookup table;
2. estimate every target over all candidates (``N x m'``): ``ucb`` takes each target's posterior mean moved
   ``acquisition.explore_beta`` posterior standard deviations in its better direction (towards the goal for a
   ``target`` objective, never past it), its variance widened by a short-range doubt about the model
   (``acquisition.explore_doubt``, :func:`discrepancy_variance`: nothing at a tried recipe, most far from all
   of them); ``thompson`` draws one function sample of every target's model (a GP's joint posterior, one member
   of a gradient-boosting ensemble), seeded per pick;
3. scale each objective between its reference point and the best posterior mean so far, weigh them by random
   weights (uniform on the simplex, seeded per pick) and take the candidate whose worst weighted objective
   (augmented Chebyshev) is best; a candidate that breaks an outcome constraint or is likely to fail (under the
   posterior mean for ``ucb``, in the sample for ``thompson``) is taken only if every one does.

Why: on the virtual lab, a batch built by qLogEHVI alone refines the region its first good data point leads to
(carbonate-free or pure-iodide recipes near 600 C) and 3-4 seeds in 10 never find the internal K2CO3 recipes
that double PLQY. Random weights sometimes put nearly all the weight on one target, and the estimate is
optimistic where the models are unsure: together they send part of every batch to the regions that could
still hold the front. The optimistic estimate is optimistic on every target at once, where a sample rarely is
on four; it left fewer seeds behind on both public tables (benchmarks/README.md, "An optimistic explorer").
The doubt keeps the untried middle of an input uncertain where a fit saw only its ends: 69 % of 500 virtual-lab
runs reach 80 % of the best hypervolume after 32 experiments with it, 63 % without (benchmarks/README.md,
"Doubt at short range on 500 seeds").
While some categorical input has a choice that no measured or pending recipe has, a batch's first exploring recipe
is the best of the candidates that make such a choice (:func:`untried_choices`): one recipe per batch, until every
choice was tried once, as a chemist tries each solvent before settling on one. On `direct_arylation` (12 ligands, 4
bases, 4 solvents; 8 random rows try about 6 ligands) the 13 runs of 100 that ended below 80 % spent 8-19 of their 24
picks on one ligand, and 12 of them tried no recipe of the front; with the rule 93 runs reach 80 % after 32
experiments, not 87 (benchmarks/README.md, "A choice nobody has tried"). A space whose first recipes cover every
choice, as the virtual lab's do, is unaffected.
Costs no gradients and no polish: one estimate over N candidates per recipe.
Shapes: candidates ``N x d`` (encoded), estimates ``N x m'`` (model outputs), objectives ``N x m``.
"""

from __future__ import annotations

from typing import Callable

import torch
from botorch.utils.sampling import sample_simplex
from torch import Tensor
from torch.quasirandom import SobolEngine

from optimize.config import CampaignConfig
from optimize.models import FittedModels

CANDIDATES_PER_RAW_SAMPLE = 4  # candidates per combination = this x acquisition.raw_samples_per_combo
AUGMENTATION = 0.05  # weight of the weighted sum added to the Chebyshev term (ParEGO's rho)


def explore_batch(
    config: CampaignConfig,
    fitted: FittedModels,
    X_baseline: Tensor,
    X_pending: Tensor,
    X_avoid: Tensor,
    n: int,
    seed: int,
    candidates: Callable[[int], Tensor],
    doubt: bool = True,
) -> tuple[Tensor, Tensor]:
    """``n`` recipes (``n x d``) and the scalarized value each was chosen with (``n``).

    Args:
        X_baseline: ``b x d`` recipes whose posterior means (with the pending ones') set each objective's scale.
        X_pending: ``p x d`` suggestions not yet measured.
        X_avoid: ``a x d`` recipes never to propose again (measured and pending).
        candidates: ``pick -> C x d`` candidate recipes for the ``pick``-th recipe.
        doubt: widen ``ucb`` by ``acquisition.explore_doubt``; off for the rows of a finite table, each a grid step
            or more from the tried ones, where the doubt is alike everywhere and only blunts the models'
            own uncertainty (it lost seeds on both public tables; with the process kernel and log-scale fits it is
            level over 100 seeds of each of the three: benchmarks/README.md, "Lazy pool picks").
    """
    from optimize.acquisition import objective_values, outcome_constraints

    settings = config.acquisition
    objectives = objective_values(config)
    constraints = outcome_constraints(config, fitted)
    surrogates = fitted.acquisition_surrogates()
    ref = torch.tensor([t.objective_reference for t in config.targets], dtype=torch.double)
    model = fitted.botorch_model()
    d = X_baseline.shape[-1]
    scale_sq = None  # per output (m'), the doubt's variance far from every known recipe: 0 after the targets
    if doubt and settings.explore == "ucb" and settings.explore_doubt > 0:
        scale_sq = torch.tensor(
            [(settings.explore_doubt * s.outcome_scale()) ** 2 for s in surrogates[: len(ref)]]
            + [0.0] * (len(surrogates) - len(ref)),
            dtype=torch.double,
        )
    chosen: list[Tensor] = []
    values: list[float] = []
    for pick in range(n):
        believed = torch.cat([X_baseline, X_pending.reshape(-1, d), *[c.unsqueeze(0) for c in chosen]])
        scale = _scale(model, objectives, constraints, believed, ref)
        X = candidates(pick)
        taken = torch.cat([X_avoid.reshape(-1, d), *[c.unsqueeze(0) for c in chosen]])
        X = X[~_matches(X, taken)] if len(taken) else X
        if pick == 0:  # a batch's first exploring recipe makes a choice no recipe has, while there is one
            new_level = untried_choices(fitted.encoder, X, taken)
            X = X[new_level] if new_level.any() else X
        if len(X) == 0:
            raise RuntimeError("every candidate duplicates a measured or pending recipe; widen the search space")
        if settings.explore == "ucb":
            extra = None
            if scale_sq is not None and len(taken):
                left = discrepancy_variance(fitted.encoder, X, taken, settings.explore_doubt_length)
                extra = left.unsqueeze(-1) * scale_sq.unsqueeze(0)  # N x m'
            Z, Z_ok = optimistic(config, model, X, settings.explore_beta, extra)
        else:
            generator = torch.Generator().manual_seed(seed * 7919 + pick)
            Z = Z_ok = torch.stack([s.sample(X, generator) for s in surrogates], dim=-1)
        w = sample_simplex(len(ref), dtype=torch.double, seed=seed * 7919 + pick).squeeze(0)
        z = (objectives(Z) - ref) / scale * w
        value = z.min(dim=-1).values + AUGMENTATION * z.sum(dim=-1)
        ok = torch.ones(len(X), dtype=torch.bool)
        for c in constraints:
            ok &= c(Z_ok) <= 0
        k = int(torch.argmax(torch.where(ok, value, value - value.abs().max() - 1e9)))
        chosen.append(X[k])
        values.append(float(value[k]))
    return torch.stack(chosen), torch.tensor(values)


def untried_choices(encoder, X: Tensor, tried: Tensor) -> Tensor:
    """Which candidates (``N x d``) set some categorical input to a choice that no recipe of ``tried`` (``t x d``)
    has: ``N`` booleans."""
    out = torch.zeros(len(X), dtype=torch.bool)
    for j in encoder.cat_dims:
        seen = set(tried[:, j].round().long().tolist())
        missing = [c for c in range(len(encoder.features[j].choices)) if c not in seen]
        if missing:
            out |= torch.isin(X[:, j].round().long(), torch.tensor(missing))
    return out


def optimistic(
    config: CampaignConfig, model, X: Tensor, beta: float, doubt: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Per candidate (``N x d``) and output of ``model`` (a :class:`~surrogate.joint.JointModel`): the upper
    confidence bound (``N x m'``), each target's posterior mean moved ``beta`` posterior standard deviations
    (noise-free) in its better direction, towards the goal for a ``target`` objective but never past it; and the
    posterior means (``N x m'``), on which constraints and the chance of success (an output after the targets)
    are judged. ``doubt`` (``N x m'``), when given, is added to the posterior variances before the bound is taken
    (see :func:`discrepancy_variance`)."""
    with torch.no_grad():
        mean, var = model.marginals(X)
    if doubt is not None:
        var = var + doubt
    reach = beta * var.clamp_min(0.0).sqrt()
    bound = mean.clone()
    for j, target in enumerate(config.targets):
        if target.direction == "maximize":
            bound[:, j] += reach[:, j]
        elif target.direction == "minimize":
            bound[:, j] -= reach[:, j]
        else:
            bound[:, j] += torch.clamp(target.goal - mean[:, j], -reach[:, j], reach[:, j])
    return bound, mean


def discrepancy_variance(encoder, X: Tensor, X_known: Tensor, length_scale: float) -> Tensor:
    """How far each candidate is from every known recipe, as a variance in [0, 1] (``N``): the posterior variance
    at ``X`` (``N x d``) of a unit-variance squared-exponential GP on the continuous inputs (unit-scaled, one
    ``length_scale`` for all), independent between categorical combinations, conditioned on ``X_known``
    (``k x d``: measured, pending and chosen recipes; a 1e-4 nugget keeps repeats harmless). 0 at a known recipe,
    1 under a combination never tried or a few length-scales from every recipe tried under it.

    The explorer adds it (times ``acquisition.explore_doubt`` times each target's scale, squared) to each target's
    posterior variance: a discrepancy the fitted GP cannot see. Its length-scales are fitted on a few recipes, and
    where it saw an input only at both ends of its range, with alike results, it fits a flat response and is as
    sure about the middle as about the ends (the virtual lab's dose trap: ratio 0.1 and 3 alike, 87 % PLQY at 1
    that the fit predicts at 51 +- 4 %). The discrepancy keeps the untried middle uncertain, and it is small next
    to what was tried, so the explorer's optimism goes to untried recipes near good ones rather than to every
    corner (as shorter fitted length-scales did: benchmarks/README.md)."""
    cont, cat = encoder.cont_dims, encoder.cat_dims

    def kernel(A: Tensor, B: Tensor) -> Tensor:  # len(A) x len(B)
        same = (A[:, None, cat] == B[None, :, cat]).all(-1) if cat else torch.ones(len(A), len(B), dtype=torch.bool)
        sq = (A[:, None, cont] - B[None, :, cont]).pow(2).sum(-1)
        return torch.exp(-0.5 * sq / length_scale**2) * same

    K = kernel(X_known, X_known) + 1e-4 * torch.eye(len(X_known), dtype=torch.double)
    V = torch.linalg.solve_triangular(torch.linalg.cholesky(K), kernel(X, X_known).T, upper=False)  # k x N
    return (1.0 - V.pow(2).sum(0)).clamp_min(0.0)


def _scale(model, objectives, constraints, X: Tensor, ref: Tensor) -> Tensor:
    """Per objective (``m``), the span from the reference point to the best posterior mean at ``X`` among the
    recipes that beat the reference on every objective and meet the constraints (1 while there is none)."""
    with torch.no_grad():
        mean = model.marginals(X)[0]
    ok = torch.ones(len(mean), dtype=torch.bool)
    for c in constraints:
        ok &= c(mean) <= 0
    Y = objectives(mean)[ok]
    Y = Y[(Y > ref).all(dim=-1)]
    return (Y.max(dim=0).values - ref).clamp_min(1e-9) if len(Y) else torch.ones_like(ref)


def _matches(X: Tensor, others: Tensor, tol: float = 1e-9) -> Tensor:
    """Rows of ``X`` (``N x d``) equal to a row of ``others`` (``M x d``): ``N`` booleans."""
    return (torch.cdist(X, others, p=float("inf")) <= tol).any(dim=-1)


def sobol_candidates(config: CampaignConfig, encoder, combos, n_per_combo: int, seed: int):
    """``step -> C x d``: fresh Sobol points of the continuous inputs under every combination, on the steps,
    without repeats; one scrambled sequence continued from step to step."""
    from optimize.acquisition import _round, _steps, combo_points
    from optimize.constraints import EncodedConstraints

    engine = SobolEngine(dimension=len(encoder.cont_dims), scramble=True, seed=seed)
    steps = _steps(config, encoder)
    cons = EncodedConstraints(config.linear_constraints, encoder)

    def draw(step: int) -> Tensor:
        base = engine.draw(n_per_combo).to(torch.double)
        X = cons.repair(_round(combo_points(base, combos, encoder), steps, encoder))
        return torch.unique(X[cons.feasible(X)], dim=0)  # only recipes that satisfy the linear constraints

    return draw
