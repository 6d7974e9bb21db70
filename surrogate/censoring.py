"""Censored observations ("PLQY < 10 %") turned into values a Gaussian process can train on.

Method (one expectation step of a Tobit-style EM, documented in the README):

1. fit the model on the uncensored rows only;
2. for a row known only to satisfy ``y < c`` (or ``y > c``), replace ``y`` by the mean of the
   model's predictive normal N(mu, sigma^2) truncated to ``y < c`` (``y > c``),
   ``mu - sigma * phi(a) / Phi(a)`` with ``a = (c - mu) / sigma``, clipped to the physical bounds;
3. refit on all rows.

With fewer than two uncensored rows there is no model to ask; the value becomes the midpoint of
the censoring interval when a physical bound closes it (``< 10`` with bound 0 -> 5), else the bound.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

CENSORED = ("<", ">")


def censored_mask(qualifiers: Sequence[str]) -> np.ndarray:
    """Boolean ``n`` mask of rows whose qualifier is ``<`` or ``>``."""
    return np.array([q in CENSORED for q in qualifiers], dtype=bool)


def truncated_normal_mean(
    bound: np.ndarray, qualifiers: Sequence[str], mu: np.ndarray, sigma: np.ndarray
) -> np.ndarray:
    """Mean of N(mu, sigma^2) given ``y < bound`` (qualifier ``<``) or ``y > bound`` (``>``). Shapes ``n``."""
    sigma = np.maximum(sigma, 1e-12)
    a = (bound - mu) / sigma
    below = np.array([q == "<" for q in qualifiers])
    # log-space ratios keep far tails finite
    from scipy.stats import norm  # here: scipy.stats takes a second to import, and only fits need it

    upper_tail = np.exp(norm.logpdf(a) - norm.logcdf(a))  # phi/Phi, for y < bound
    lower_tail = np.exp(norm.logpdf(a) - norm.logsf(a))  # phi/(1-Phi), for y > bound
    return np.where(below, mu - sigma * upper_tail, mu + sigma * lower_tail)


def fallback_values(
    bound: np.ndarray, qualifiers: Sequence[str], lower: float | None, upper: float | None
) -> np.ndarray:
    """Midpoint of the censoring interval closed by a physical bound, else the bound itself."""
    out = bound.astype(float).copy()
    for i, q in enumerate(qualifiers):
        if q == "<" and lower is not None and math.isfinite(lower):
            out[i] = 0.5 * (lower + bound[i])
        elif q == ">" and upper is not None and math.isfinite(upper):
            out[i] = 0.5 * (upper + bound[i])
    return out


def clip_to_interval(
    values: np.ndarray, bound: np.ndarray, qualifiers: Sequence[str], lower: float | None, upper: float | None
) -> np.ndarray:
    """Keep imputed values on the censored side of ``bound`` and inside the physical bounds."""
    lo = -np.inf if lower is None else lower
    hi = np.inf if upper is None else upper
    out = values.copy()
    for i, q in enumerate(qualifiers):
        if q == "<":
            out[i] = min(max(out[i], lo), bound[i])
        elif q == ">":
            out[i] = max(min(out[i], hi), bound[i])
    return out
