"""Boosted-tree ensembles that are saved and loaded as JSON arrays, never refit or unpickled.

XGBoost fits the trees (:mod:`surrogate.gbm`); a :class:`Forest` keeps what prediction needs: per member
its start value, and per tree its nodes (children, split feature, threshold, value). Loading rebuilds
scikit-learn's ``Tree`` objects from those arrays (its own ``__setstate__``, fed numbers from JSON), which is
instant where refitting the ensemble cost 2.7 s of a suggestion; prediction runs scikit-learn's compiled
``predict_stages`` (no XGBoost needed to predict), so the predictions are XGBoost's up to float32 rounding of
its sums, except for a row exactly on a split threshold (midway between two measured values, common on a
grid of recipes): XGBoost sends it right (``x < t`` goes left), scikit-learn and this forest left (``x <= t``),
as :func:`surrogate.gbm.predict_booster` does during tuning. Files written by earlier versions (trees from
scikit-learn's ``GradientBoostingRegressor``) load unchanged.
Shapes: features ``n x p``; predictions ``M x n`` (one row per member).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any, Sequence

import numpy as np
from sklearn.ensemble._gradient_boosting import predict_stages
from sklearn.tree._tree import Tree

_FIELDS = ("left", "right", "feature", "threshold", "value")


@dataclass(frozen=True)
class _Stage:
    """What ``predict_stages`` reads of an estimator: its ``tree_``."""

    tree_: Tree


def _tree_arrays(tree: Tree) -> dict[str, list]:
    return {
        "left": tree.children_left.tolist(),
        "right": tree.children_right.tolist(),
        "feature": tree.feature.tolist(),
        "threshold": tree.threshold.tolist(),
        "value": tree.value.reshape(-1).tolist(),
    }


def _xgboost_tree_arrays(tree: dict[str, Any]) -> dict[str, np.ndarray]:
    """The node arrays of one tree of an XGBoost model's JSON (``save_raw("json")``), in scikit-learn's terms:
    leaves hold their value (learning rate included) and no feature (-2), splits their float32 threshold."""
    left = np.asarray(tree["left_children"], dtype=np.intp)
    cond = np.asarray(tree["split_conditions"], dtype=np.float32).astype(np.float64)
    leaf = left < 0
    return {
        "left": left,
        "right": np.asarray(tree["right_children"], dtype=np.intp),
        "feature": np.where(leaf, -2, np.asarray(tree["split_indices"], dtype=np.intp)),
        "threshold": np.where(leaf, -2.0, cond),
        "value": np.where(leaf, cond, 0.0),
    }


@cache
def _node_dtype() -> np.dtype:
    return Tree(1, np.ones(1, dtype=np.intp), 1).__getstate__()["nodes"].dtype


def _tree(doc: dict[str, Any], n_features: int) -> Tree:
    """A scikit-learn regression ``Tree`` from its node arrays (lists or arrays; the prediction-relevant fields,
    the rest 0)."""
    left, right = np.asarray(doc["left"], dtype=np.intp), np.asarray(doc["right"], dtype=np.intp)
    feature = np.asarray(doc["feature"], dtype=np.intp)
    count = len(left)
    if any(len(doc[f]) != count for f in _FIELDS):
        raise ValueError("a tree's node arrays differ in length; the model file is damaged")
    if count and ((left >= count).any() or (right >= count).any() or (feature[left >= 0] >= n_features).any()):
        raise ValueError("a tree points past its nodes or features; the model file is damaged")
    nodes = np.zeros(count, dtype=_node_dtype())
    nodes["left_child"], nodes["right_child"] = left, right
    nodes["feature"], nodes["threshold"] = feature, doc["threshold"]
    values = np.asarray(doc["value"], dtype=np.float64).reshape(count, 1, 1)
    tree = Tree(n_features, np.ones(1, dtype=np.intp), 1)
    tree.__setstate__({"max_depth": _depth(left, right), "node_count": count, "nodes": nodes, "values": values})
    return tree


def _depth(left: np.ndarray, right: np.ndarray) -> int:
    depth, level, frontier = 0, 0, [0]
    while frontier:
        depth = level
        frontier = [c for i in frontier if left[i] >= 0 for c in (left[i], right[i])]
        level += 1
    return depth


@dataclass(frozen=True)
class Forest:
    """``M`` boosted members: member ``i`` predicts ``start[i] + learning_rate * sum_k tree_ik(x)``."""

    stages: tuple[np.ndarray, ...]  # per member, a K x 1 object array of stages (predict_stages' layout)
    start: np.ndarray  # M
    learning_rate: float
    n_features: int

    @classmethod
    def from_boosters(cls, boosters: Sequence[Any], n_features: int) -> Forest:
        """From fitted XGBoost boosters (squared error, one output, numeric splits): the leaf values already carry
        the learning rate, so the forest's is 1."""
        stages, start = [], []
        for booster in boosters:
            learner = json.loads(booster.save_raw(raw_format="json"))["learner"]
            start.append(float(learner["learner_model_param"]["base_score"].strip("[]")))
            trees = learner["gradient_booster"]["model"]["trees"]
            column = np.empty((len(trees), 1), dtype=object)
            for k, tree in enumerate(trees):
                column[k, 0] = _Stage(_tree(_xgboost_tree_arrays(tree), n_features))
            stages.append(column)
        return cls(tuple(stages), np.asarray(start, dtype=np.float64), 1.0, n_features)

    @property
    def n_members(self) -> int:
        return len(self.start)

    def predict(self, F: np.ndarray, members: Sequence[int] | None = None) -> np.ndarray:
        """Predictions of every member (or of ``members``) at each row of ``F`` (``n x p``): ``M x n``."""
        X = np.ascontiguousarray(F, dtype=np.float32)  # as scikit-learn's trees see them
        which = range(self.n_members) if members is None else members
        out = np.zeros((len(which), len(X)))
        for row, i in enumerate(which):
            column = np.full((len(X), 1), self.start[i])
            predict_stages(self.stages[i], X, self.learning_rate, column)
            out[row] = column[:, 0]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start.tolist(),
            "learning_rate": self.learning_rate,
            "n_features": self.n_features,
            "trees": [[_tree_arrays(s.tree_) for s in member[:, 0]] for member in self.stages],
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Forest:
        p = int(doc["n_features"])
        stages = []
        for member in doc["trees"]:
            column = np.empty((len(member), 1), dtype=object)
            for k, tree in enumerate(member):
                column[k, 0] = _Stage(_tree(tree, p))
            stages.append(column)
        start = np.asarray(doc["start"], dtype=np.float64)
        if len(start) != len(stages):
            raise ValueError("Forest: a start value per member is needed; the model file is damaged")
        return cls(tuple(stages), start, float(doc["learning_rate"]), p)
