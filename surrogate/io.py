"""Build surrogates by kind and restore fitted ones from JSON (no pickles anywhere)."""

from __future__ import annotations

from typing import Any

from surrogate.base import ConstantSurrogate, Surrogate
from surrogate.features import Featurizer


def surrogate_class(kind: str) -> type[Surrogate]:
    """The surrogate class of a kind name (``gp``, ``gbm``, ``constant``)."""
    from surrogate.gbm import GBMSurrogate
    from surrogate.gp import GPSurrogate

    classes = {c.kind: c for c in (GPSurrogate, GBMSurrogate, ConstantSurrogate)}
    if kind not in classes:
        raise ValueError(f"unknown surrogate kind {kind!r}; use one of {sorted(classes)}")
    return classes[kind]


def surrogate_from_json(doc: dict[str, Any]) -> Surrogate:
    """Inverse of :meth:`Surrogate.to_json`: the same predictions as the model that was saved."""
    import numpy as np

    from surrogate.base import as_tensor

    if doc["kind"] == "transfer":
        from surrogate.transfer import TransferSurrogate

        return TransferSurrogate.from_json(doc, surrogate_from_json(doc["base"]))

    cls = surrogate_class(doc["kind"])
    model = cls(Featurizer.from_json(doc["featurizer"]), **doc["settings"])
    X = as_tensor(doc["train_X"]).reshape(len(doc["train_y"]), -1)
    y = np.asarray(doc["train_y"], dtype=np.float64)
    model._load(X, y, doc["state"])
    model.train_X_, model.train_y_, model.imputed_ = X, y, np.asarray(doc["imputed"], dtype=bool)
    return model
