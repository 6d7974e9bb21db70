"""Transfer from a prior campaign: one model learns this campaign's rows and a prior campaign's rows.

The wrapped *base* model (any surrogate whose featurizer was built with a continuous ``task`` input
last, see ``optimize.models.featurizer_for``) sees one more input than the campaign has: ``task`` = 0
for this campaign's rows and ``PRIOR`` = 0.25 for the prior's. It is fit on both sets of rows at once
and always predicts for this campaign (``task`` = 0). How much of the prior carries over is learned,
not assumed: a GP learns the ``task`` length-scale (long: the campaigns agree, short: they do not), a
tree ensemble whether to split on ``task``. The small distance 0.25 is the prior belief: under
BoTorch's default length-scale prior (mode 0.35-0.7 on unit-scaled inputs) it puts the correlation
of the two campaigns at about 0.8-0.95 until the data say otherwise. That is also what a new lab
with no rows of its own predicts with, so its first suggestions are already informed by the prior.
(One-hot task columns, sqrt(2) apart, would start near zero correlation instead.)

Cross-validation clones keep the prior rows and score on this campaign's held-out rows only.

Shapes: ``X`` is ``n x d`` (this campaign's encoded recipes); the base model sees ``n x (d + 1)``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from surrogate.base import Surrogate, as_tensor

THIS, PRIOR = 0.0, 0.25  # values of the task input (see the module docstring)


def with_task(X: Tensor, code: float) -> Tensor:
    """``... x d`` encoded recipes -> ``... x (d + 1)`` with the task code appended (differentiable in ``X``)."""
    return torch.cat([X, torch.full((*X.shape[:-1], 1), code, dtype=X.dtype)], dim=-1)


class TransferSurrogate(Surrogate):
    """``base`` fit on this campaign's rows plus ``prior_X`` (``k x d``), ``prior_y`` (``k``) and their
    censoring qualifiers; see the module docstring."""

    kind = "transfer"

    def __init__(
        self,
        base: Surrogate,
        prior_X: Tensor | np.ndarray,
        prior_y: Sequence[float],
        prior_qualifiers: Sequence[str] | None = None,
    ) -> None:
        super().__init__(
            base.featurizer,
            scale_floor=base.scale_floor,
            noise_floor=base.noise_floor,
            lower=base.lower,
            upper=base.upper,
            name=base.name,
            seed=base.seed,
        )
        self.base = base
        self.prior_X = as_tensor(prior_X)
        self.prior_y = np.asarray(prior_y, dtype=np.float64).reshape(-1)
        self.prior_qualifiers = list(prior_qualifiers) if prior_qualifiers is not None else [""] * len(self.prior_y)
        if self.prior_X.shape[0] != len(self.prior_y) or len(self.prior_qualifiers) != len(self.prior_y):
            raise ValueError(
                f"{self.name}: prior_X, prior_y and prior_qualifiers must have one row each per prior experiment"
            )

    @property
    def label(self) -> str:
        """The base model's label: transfer is a property of the campaign, not a competing model."""
        return self.base.label

    @property
    def input_names(self) -> tuple[str, ...]:
        return self.base.input_names[:-1]

    @property
    def params(self) -> Any:
        """The base model's tuned settings (gradient boosting), else ``None``."""
        return getattr(self.base, "params", None)

    def clone(self) -> TransferSurrogate:
        return TransferSurrogate(self.base.clone(), self.prior_X, self.prior_y, self.prior_qualifiers)

    def warm_start(self, previous: Surrogate) -> TransferSurrogate:
        if isinstance(previous, TransferSurrogate) and hasattr(self.base, "warm_start"):
            self.base.warm_start(previous.base)
        return self

    # ---- fitting: the base model's template handles censored values of both campaigns ----------
    def fit(
        self, X: Tensor | np.ndarray, y: Sequence[float] | np.ndarray, qualifiers: Sequence[str] | None = None
    ) -> TransferSurrogate:
        X = as_tensor(X).reshape(-1, self.prior_X.shape[-1])
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        q = list(qualifiers) if qualifiers is not None else [""] * len(y)
        self.base.fit(
            torch.cat([with_task(X, THIS), with_task(self.prior_X, PRIOR)]),
            np.concatenate([y, self.prior_y]),
            q + self.prior_qualifiers,
        )
        n = len(y)
        self.train_X_, self.train_y_, self.imputed_ = X, self.base.train_y_[:n], self.base.imputed_[:n]
        return self

    def _fit(self, X: Tensor, y: np.ndarray) -> None:
        self.fit(X, y)

    # ---- prediction: always for this campaign --------------------------------------------------
    def _predict(self, X: Tensor) -> tuple[np.ndarray, np.ndarray]:
        return self.base.predict(with_task(X, THIS))

    def mvn(self, X: Tensor):
        self._check_fitted()
        return self.base.mvn(with_task(X, THIS))

    def marginal(self, X: Tensor) -> tuple[Tensor, Tensor]:
        self._check_fitted()
        return self.base.marginal(with_task(X, THIS))

    def sample(self, X: Tensor, generator: torch.Generator) -> Tensor:
        self._check_fitted()
        return self.base.sample(with_task(X, THIS), generator)

    def hyperparameters(self) -> dict[str, float]:
        return self.base.hyperparameters()

    # ---- persistence ---------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "kind": self.kind,
            "base": self.base.to_json(),
            "prior_X": self.prior_X.tolist(),
            "prior_y": [float(v) for v in self.prior_y],
            "prior_qualifiers": self.prior_qualifiers,
            "train_X": self.train_X_.tolist(),
            "train_y": [float(v) for v in self.train_y_],
            "imputed": [bool(v) for v in self.imputed_],
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any], base: Surrogate) -> TransferSurrogate:
        """Rebuild around an already restored ``base`` (see :func:`surrogate.io.surrogate_from_json`)."""
        d = base.train_X_.shape[-1] - 1
        model = cls(
            base, as_tensor(doc["prior_X"]).reshape(len(doc["prior_y"]), d), doc["prior_y"], doc["prior_qualifiers"]
        )
        model.train_X_ = as_tensor(doc["train_X"]).reshape(len(doc["train_y"]), d)
        model.train_y_ = np.asarray(doc["train_y"], dtype=np.float64)
        model.imputed_ = np.asarray(doc["imputed"], dtype=bool)
        return model
