"""Encode recipes (rows of named inputs) as model features and back.

Continuous inputs are scaled to ``[0, 1]`` by their declared bounds. Categorical inputs become an
integer code ``0 .. k-1`` (for a categorical kernel), with ``k`` meaning "does not apply" (an empty
cell, e.g. ``addition`` when no carbonate is used) and ``k+1 ..`` for ``extra`` categories: ones the
models may be asked about (``kiln predict``) but the optimizer never proposes, e.g. an untried
carbonate that physical descriptors can still place (see :mod:`surrogate.features`).
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
    extra: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        known = self.choices + self.extra
        if len(self.choices) < 1 or len(set(known)) != len(known):
            raise ValueError(f"feature {self.name!r}: choices (and extra categories) must be unique and non-empty")

    @property
    def not_applicable(self) -> int:
        """The code of an empty cell."""
        return len(self.choices)

    @property
    def n_codes(self) -> int:
        """Number of distinct codes: choices, "does not apply", extra categories."""
        return len(self.choices) + 1 + len(self.extra)

    def code(self, value: str | None) -> int:
        """The integer code of a category (``None``/empty = does not apply)."""
        if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
            return self.not_applicable
        if value in self.choices:
            return self.choices.index(value)
        if value in self.extra:
            return len(self.choices) + 1 + self.extra.index(value)
        raise ValueError(
            f"feature {self.name!r}: unknown category {value!r}, expected one of {self.choices + self.extra}"
        )

    def category(self, code: int) -> str | None:
        """Inverse of :meth:`code`."""
        if code < len(self.choices):
            return self.choices[code]
        if code == self.not_applicable:
            return None
        return self.extra[code - len(self.choices) - 1]


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
                out[:, j] = [f.code(value) for value in col]
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
                    recipe[f.name] = f.category(int(round(v)))
            recipes.append(recipe)
        return recipes

    def to_json(self) -> list[dict]:
        return [
            {"name": f.name, "lower": f.lower, "upper": f.upper}
            if isinstance(f, ContinuousFeature)
            else {"name": f.name, "choices": list(f.choices), "extra": list(f.extra)}
            for f in self.features
        ]

    @classmethod
    def from_json(cls, doc: list[dict]) -> Encoder:
        return cls(
            tuple(
                CategoricalFeature(d["name"], tuple(d["choices"]), tuple(d.get("extra", ())))
                if "choices" in d
                else ContinuousFeature(d["name"], float(d["lower"]), float(d["upper"]))
                for d in doc
            )
        )

    def scale(self, name: str, value: float) -> float:
        """A raw continuous value -> its ``[0, 1]`` feature value."""
        f = self.features[self.names.index(name)]
        assert isinstance(f, ContinuousFeature)
        return (value - f.lower) / (f.upper - f.lower)
