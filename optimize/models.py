"""Fit the campaign's surrogates: one Gaussian process per target, each on the rows where it was measured."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from optimize.campaign import Campaign
from optimize.config import CampaignConfig, CategoricalInput, Target
from optimize.validation import qualifier_column
from surrogate.encoding import CategoricalFeature, ContinuousFeature, Encoder

SCALE_FLOOR_FRACTION = 0.2  # outcome scale floor: a fifth of the target's physical span


def encoder_for(config: CampaignConfig) -> Encoder:
    """The feature encoder of a campaign's search space."""
    feats = []
    for inp in config.inputs:
        if isinstance(inp, CategoricalInput):
            feats.append(CategoricalFeature(inp.name, inp.choices))
        else:
            feats.append(ContinuousFeature(inp.name, inp.lower, inp.upper))
    return Encoder(tuple(feats))


def scale_floor(target: Target) -> float:
    """Smallest outcome scale the GP may assume, from the declared bounds (or the reference point)."""
    if target.lower is not None and target.upper is not None:
        span = target.upper - target.lower
    elif target.lower is not None:
        span = abs(target.reference - target.lower)
    elif target.upper is not None:
        span = abs(target.upper - target.reference)
    else:
        span = abs(target.reference)
    return SCALE_FLOOR_FRACTION * span if span > 0 and math.isfinite(span) else 0.0


@dataclass(frozen=True)
class FittedModels:
    """A surrogate per target (in config order), the encoder, and the data version they were fit on."""

    encoder: Encoder
    surrogates: dict  # target name -> surrogate.gp.GPSurrogate
    data_version: str

    def predict(self, recipes: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per target: predictive mean and std (``n`` each) at ``recipes`` (a row per recipe)."""
        X = self.encoder.encode(recipes)
        return {name: s.predict(X) for name, s in self.surrogates.items()}

    def botorch_model(self):
        """A ``ModelListGP`` with one output per target, in config order."""
        from surrogate.gp import model_list

        return model_list(list(self.surrogates.values()))


def fit_models(campaign: Campaign) -> FittedModels:
    """Fit one GP per target that has at least one measured row.

    Raises:
        surrogate.errors.SurrogateFitError: a fit failed even after retries (names the target).
    """
    from surrogate.gp import GPSurrogate

    config = campaign.config
    encoder = encoder_for(config)
    surrogates = {}
    for t in config.targets:
        rows = campaign.measured(t.name)
        if rows.empty:
            continue
        X = encoder.encode(rows)
        s = GPSurrogate(
            cat_dims=encoder.cat_dims, scale_floor=scale_floor(t), lower=t.lower, upper=t.upper, name=t.name
        )
        surrogates[t.name] = s.fit(X, rows[t.name].to_numpy(float), list(rows[qualifier_column(t.name)]))
    return FittedModels(encoder, surrogates, campaign.version)
