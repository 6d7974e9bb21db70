"""Model features from encoded recipes: integer codes, one-hot, or physical descriptors.

An :class:`~surrogate.encoding.Encoder` turns recipes into ``n x d`` tensors with one column per input
(categoricals as integer codes). A :class:`Featurizer` maps that tensor to what a model sees:

- ``codes``: unchanged, for a GP with a categorical kernel on the code columns;
- ``onehot``: each categorical becomes ``k`` indicator columns ("does not apply" and categories the
  model has never been told about are all zeros);
- ``descriptors``: a categorical with a :class:`DescriptorTable` becomes its physical descriptors
  (e.g. a carbonate's cation radius and melting point, min-max scaled over the table), so a model can
  place a category it has no data for; categoricals without a table are one-hot.

The map keeps any leading batch dimensions: ``... x d`` -> ``... x d'``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping

import torch
from torch import Tensor

from surrogate.encoding import CategoricalFeature, ContinuousFeature, Encoder

Mode = Literal["codes", "onehot", "descriptors"]


@dataclass(frozen=True)
class DescriptorTable:
    """Physical descriptors of the categories of one categorical input.

    Args:
        names: descriptor names, e.g. ``("cation_radius_pm", "melting_point_c")``.
        values: category -> one value per descriptor (finite).
    """

    names: tuple[str, ...]
    values: Mapping[str, tuple[float, ...]]

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("a descriptor table needs at least one descriptor")
        for cat, vals in self.values.items():
            if len(vals) != len(self.names):
                raise ValueError(
                    f"descriptors of {cat!r}: {len(vals)} values for {len(self.names)} names {list(self.names)}"
                )
            if not all(torch.isfinite(torch.tensor(vals, dtype=torch.double))):
                raise ValueError(f"descriptors of {cat!r} must be finite numbers, got {list(vals)}")

    def scaled(self, feature: CategoricalFeature) -> Tensor:
        """``n_codes x m`` table indexed by the feature's codes, each descriptor min-max scaled to [0, 1].

        "Does not apply" maps to zeros; a category without descriptors is an error.
        """
        missing = [c for c in feature.choices + feature.extra if c not in self.values]
        if missing:
            raise ValueError(f"feature {feature.name!r}: no descriptors for {missing}")
        raw = torch.tensor([list(self.values[c]) for c in feature.choices + feature.extra], dtype=torch.double)
        lo, hi = raw.min(0).values, raw.max(0).values
        span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
        scaled = (raw - lo) / span
        k = len(feature.choices)
        na = torch.zeros(1, len(self.names), dtype=torch.double)
        return torch.cat([scaled[:k], na, scaled[k:]])


@dataclass(frozen=True)
class Featurizer:
    """Maps encoded recipes (``... x d``) to model features (``... x d'``); see the module docstring."""

    encoder: Encoder
    mode: Mode = "codes"
    descriptors: Mapping[str, DescriptorTable] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in ("codes", "onehot", "descriptors"):
            raise ValueError(f"unknown feature mode {self.mode!r}; use codes, onehot or descriptors")
        if self.mode == "descriptors" and not self.descriptors:
            raise ValueError("feature mode 'descriptors' needs at least one descriptor table")
        cats = {f.name: f for f in self.encoder.features if isinstance(f, CategoricalFeature)}
        for name, table in self.descriptors.items():
            if name not in cats:
                raise ValueError(f"descriptors given for {name!r}, which is not a categorical input {list(cats)}")
            table.scaled(cats[name])  # validates coverage

    @property
    def cat_dims(self) -> list[int]:
        """Columns of the output that hold categorical codes (only in ``codes`` mode)."""
        return self.encoder.cat_dims if self.mode == "codes" else []

    def _blocks(self) -> list[tuple[int, Tensor | None, list[str]]]:
        """Per input: (column, lookup table or None for pass-through, output names)."""
        out = []
        for j, f in enumerate(self.encoder.features):
            if isinstance(f, ContinuousFeature) or self.mode == "codes":
                out.append((j, None, [f.name]))
            elif self.mode == "descriptors" and f.name in self.descriptors:
                t = self.descriptors[f.name]
                out.append((j, t.scaled(f), [f"{f.name}.{n}" for n in t.names]))
            else:
                k = len(f.choices)
                eye = torch.cat(
                    [torch.eye(k, dtype=torch.double), torch.zeros(1 + len(f.extra), k, dtype=torch.double)]
                )
                out.append((j, eye, [f"{f.name}={c}" for c in f.choices]))
        return out

    @property
    def continuous_columns(self) -> list[int]:
        """Output columns that pass a continuous input through (what the process kernel's shared half sees)."""
        out, col = [], 0
        for j, _, names in self._blocks():
            if isinstance(self.encoder.features[j], ContinuousFeature):
                out.append(col)
            col += len(names)
        return out

    @property
    def names(self) -> list[str]:
        return [n for _, _, names in self._blocks() for n in names]

    def __call__(self, X: Tensor) -> Tensor:
        """``... x d`` encoded recipes -> ``... x d'`` features."""
        if self.mode == "codes":
            return X
        cols = []
        for j, table, _ in self._blocks():
            if table is None:
                cols.append(X[..., j : j + 1])
            else:
                cols.append(table[X[..., j].detach().round().long()])
        return torch.cat(cols, dim=-1)

    def to_json(self) -> dict:
        return {
            "encoder": self.encoder.to_json(),
            "mode": self.mode,
            "descriptors": {
                k: {"names": list(t.names), "values": {c: list(v) for c, v in t.values.items()}}
                for k, t in self.descriptors.items()
            },
        }

    @classmethod
    def from_json(cls, doc: dict) -> Featurizer:
        tables = {
            k: DescriptorTable(tuple(t["names"]), {c: tuple(float(x) for x in v) for c, v in t["values"].items()})
            for k, t in doc.get("descriptors", {}).items()
        }
        return cls(Encoder.from_json(doc["encoder"]), doc["mode"], tables)
