"""Encode recipes (rows of named inputs) as model features and back.

Continuous inputs are scaled to ``[0, 1]`` by their declared bounds. Categorical inputs become an
integer code ``0 .. k-1`` (for a categorical kernel), with ``k`` meaning "does not apply" (an empty
cell, e.g. ``addition`` when no carbonate is used).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    import torch


@dataclass(frozen=True)
class ContinuousFeature:
    name: str
    lower: float
    upper: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lower) and math.isfinite(self.upper) and self.lower < self.upper):
            raise ValueError(f"feature {self.name!r}: need finite lower < upper, got [{self.lower}, {self.upper}]")


@dataclass(frozen=True)
class CategoricalFeature:
    name: str
    choices: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.choices) < 1 or len(set(self.choices)) != len(self.choices):
            raise ValueError(f"feature {self.name!r}: choices must be unique and non-empty")

    @property
    def not_applicable(self) -> int:
        """The code of an empty cell."""
        return len(self.choices)


Feature = ContinuousFeature | CategoricalFeature


@dataclass(frozen=True)
class Encoder:
    """Maps a DataFrame with one column per feature to a ``n x d`` double tensor and back."""

    features: tuple[Feature, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def cat_dims(self) -> list[int]:
        return [i for i, f in enumerate(self.features) if isinstance(f, CategoricalFeature)]

    @property
    def cont_dims(self) -> list[int]:
        return [i for i, f in enumerate(self.features) if isinstance(f, ContinuousFeature)]

    def encode(self, rows: pd.DataFrame) -> torch.Tensor:
        """``rows`` (n rows, a column per feature) -> ``n x d`` tensor.

        Raises:
            ValueError: a continuous value is missing or a category is unknown.
        """
        import numpy as np
        import torch

        out = np.empty((len(rows), len(self.features)), dtype=np.float64)
        for j, f in enumerate(self.features):
            col = rows[f.name]
            if isinstance(f, ContinuousFeature):
                v = col.to_numpy(dtype=np.float64)
                if not np.isfinite(v).all():
                    raise ValueError(f"feature {f.name!r}: missing or non-finite values")
                out[:, j] = (v - f.lower) / (f.upper - f.lower)
            else:
                index = {c: k for k, c in enumerate(f.choices)}
                codes = []
                for value in col:
                    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
                        codes.append(f.not_applicable)
                    elif value in index:
                        codes.append(index[value])
                    else:
                        raise ValueError(f"feature {f.name!r}: unknown category {value!r}, expected one of {f.choices}")
                out[:, j] = codes
        return torch.from_numpy(out)

    def decode(self, X: torch.Tensor) -> list[dict[str, float | str | None]]:
        """``n x d`` tensor -> n recipes (``None`` for a categorical that does not apply)."""
        recipes = []
        for x in X.detach().cpu().tolist():
            recipe: dict[str, float | str | None] = {}
            for f, v in zip(self.features, x):
                if isinstance(f, ContinuousFeature):
                    recipe[f.name] = f.lower + v * (f.upper - f.lower)
                else:
                    code = int(round(v))
                    recipe[f.name] = None if code == f.not_applicable else f.choices[code]
            recipes.append(recipe)
        return recipes

    def scale(self, name: str, value: float) -> float:
        """A raw continuous value -> its ``[0, 1]`` feature value."""
        f = self.features[self.names.index(name)]
        assert isinstance(f, ContinuousFeature)
        return (value - f.lower) / (f.upper - f.lower)

