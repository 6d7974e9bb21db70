"""Boosted-tree ensembles that are saved and loaded as JSON arrays, never refit or unpickled.

XGBoost fits the trees (:mod:`surrogate.gbm`); a :class:`Forest` keeps what prediction needs: per member
its start value, and per tree its nodes (children, split feature, threshold, value). Loading checks the arrays,
which is instant where refitting the ensemble cost 2.7 s of a suggestion. Prediction routes every (tree, row)
pair at once in NumPy when there are few of them (the recipes of a suggestion, a plot: no scikit-learn import,
which is 0.7-1.1 s of a fresh ``kiln suggest``), and with scikit-learn's compiled ``predict_stages`` on
``Tree`` objects rebuilt from the same arrays (its own ``__setstate__``, fed numbers from JSON) when there are
many (an acquisition's candidate pools: 10x faster there). Both sum the same leaves, so the predictions are
XGBoost's up to float32 rounding of its sums, except for a row exactly on a split threshold (midway between two
measured values, common on a grid of recipes): XGBoost sends it right (``x < t`` goes left), scikit-learn and
this forest left (``x <= t``, the float32 feature against the float64 threshold), as
:func:`surrogate.gbm.predict_booster` does during tuning. Files written by earlier versions (trees from
scikit-learn's ``GradientBoostingRegressor``) load unchanged.
Shapes: features ``n x p``; predictions ``M x n`` (one row per member).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Sequence

import numpy as np

_FIELDS = ("left", "right", "feature", "threshold", "value")
NUMPY_MAX_PAIRS = 100_000  # (tree, row) pairs routed in NumPy; more go to scikit-learn's compiled loop


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


def _checked(doc: dict[str, Any], n_features: int) -> dict[str, np.ndarray]:
    """One tree's node arrays (from lists or arrays), refused by name if they do not make a tree."""
    tree = {
        "left": np.asarray(doc["left"], dtype=np.intp),
        "right": np.asarray(doc["right"], dtype=np.intp),
        "feature": np.asarray(doc["feature"], dtype=np.intp),
        "threshold": np.asarray(doc["threshold"], dtype=np.float64),
        "value": np.asarray(doc["value"], dtype=np.float64).reshape(-1),
    }
    count = len(tree["left"])
    if count == 0 or any(len(tree[f]) != count for f in _FIELDS):
        raise ValueError("a tree's node arrays are empty or differ in length; the model file is damaged")
    left, right, feature = tree["left"], tree["right"], tree["feature"]
    inner = left >= 0
    if (
        (left >= count).any()
        or (right >= count).any()
        or (right[inner] < 0).any()
        or (feature[inner] < 0).any()
        or (feature[inner] >= n_features).any()
    ):
        raise ValueError("a tree points past its nodes or features; the model file is damaged")
    return tree


def _depth(left: np.ndarray, right: np.ndarray) -> int:
    depth, level, frontier = 0, 0, [0]
    while frontier:
        depth = level
        frontier = [c for i in frontier if left[i] >= 0 for c in (left[i], right[i])]
        level += 1
        if level > len(left):
            raise ValueError("a tree's nodes form a cycle; the model file is damaged")
    return depth


@dataclass(frozen=True)
class _Packed:
    """Every tree's nodes in one set of arrays (``N`` nodes in all, ``T`` trees): a leaf is its own child and
    splits on feature 0, so that routing a row ``depth`` times from its tree's root ends on its leaf."""

    left: np.ndarray  # N
    right: np.ndarray  # N
    feature: np.ndarray  # N
    threshold: np.ndarray  # N
    value: np.ndarray  # N
    roots: np.ndarray  # T, the root node of each tree, members' trees in order
    first_tree: np.ndarray  # M, the index of each member's first tree
    depth: int


@dataclass(frozen=True)
class _Stage:
    """What ``predict_stages`` reads of an estimator: its ``tree_``."""

    tree_: Any


@dataclass(frozen=True)
class Forest:
    """``M`` boosted members: member ``i`` predicts ``start[i] + learning_rate * sum_k tree_ik(x)``."""

    trees: tuple[tuple[dict[str, np.ndarray], ...], ...]  # per member, per tree, its node arrays
    start: np.ndarray  # M
    learning_rate: float
    n_features: int

    def __post_init__(self) -> None:
        if len(self.start) != len(self.trees) or any(len(m) == 0 for m in self.trees):
            raise ValueError("Forest: a start value and a tree per member are needed; the model file is damaged")

    @classmethod
    def from_boosters(cls, boosters: Sequence[Any], n_features: int) -> Forest:
        """From fitted XGBoost boosters (squared error, one output, numeric splits): the leaf values already carry
        the learning rate, so the forest's is 1."""
        trees, start = [], []
        for booster in boosters:
            learner = json.loads(booster.save_raw(raw_format="json"))["learner"]
            start.append(float(learner["learner_model_param"]["base_score"].strip("[]")))
            member = learner["gradient_booster"]["model"]["trees"]
            trees.append(tuple(_checked(_xgboost_tree_arrays(t), n_features) for t in member))
        return cls(tuple(trees), np.asarray(start, dtype=np.float64), 1.0, n_features)

    @property
    def n_members(self) -> int:
        return len(self.start)

    def predict(self, F: np.ndarray, members: Sequence[int] | None = None) -> np.ndarray:
        """Predictions of every member (or of ``members``) at each row of ``F`` (``n x p``): ``M x n``."""
        X = np.ascontiguousarray(F, dtype=np.float32)  # as scikit-learn's trees see them
        which = list(range(self.n_members)) if members is None else list(members)
        if len(X) * sum(len(self.trees[i]) for i in which) <= NUMPY_MAX_PAIRS:
            return self._predict_numpy(X, which)
        from sklearn.ensemble._gradient_boosting import predict_stages

        out = np.zeros((len(which), len(X)))
        for row, i in enumerate(which):
            column = np.full((len(X), 1), self.start[i])
            predict_stages(self._stages[i], X, self.learning_rate, column)
            out[row] = column[:, 0]
        return out

    def _predict_numpy(self, X: np.ndarray, which: list[int]) -> np.ndarray:
        """``predict`` routing all (tree, row) pairs at once: ``len(which) x n``."""
        if not which:
            return np.zeros((0, len(X)))
        pk = self._packed
        bounds = np.append(pk.first_tree, len(pk.roots))
        trees = np.concatenate([np.arange(bounds[i], bounds[i + 1]) for i in which])
        node = np.repeat(pk.roots[trees][:, None], len(X), axis=1)  # T' x n
        x = X.astype(np.float64)
        rows = np.arange(len(X))
        for _ in range(pk.depth):
            go_left = x[rows, pk.feature[node]] <= pk.threshold[node]
            node = np.where(go_left, pk.left[node], pk.right[node])
        firsts = np.cumsum([0] + [len(self.trees[i]) for i in which[:-1]])
        sums = np.add.reduceat(pk.value[node], firsts, axis=0)
        return self.start[which][:, None] + self.learning_rate * sums

    @cached_property
    def _packed(self) -> _Packed:
        arrays: dict[str, list[np.ndarray]] = {f: [] for f in _FIELDS}
        roots, first_tree, offset, depth = [], [], 0, 0
        for member in self.trees:
            first_tree.append(len(roots))
            for tree in member:
                count, own = len(tree["left"]), offset + np.arange(len(tree["left"]))
                leaf = tree["left"] < 0
                arrays["left"].append(np.where(leaf, own, tree["left"] + offset))
                arrays["right"].append(np.where(leaf, own, tree["right"] + offset))
                arrays["feature"].append(np.where(leaf, 0, tree["feature"]))
                arrays["threshold"].append(np.where(leaf, np.inf, tree["threshold"]))
                arrays["value"].append(tree["value"])
                roots.append(offset)
                depth = max(depth, _depth(tree["left"], tree["right"]))
                offset += count
        joined = {f: np.concatenate(v) for f, v in arrays.items()}
        return _Packed(**joined, roots=np.asarray(roots), first_tree=np.asarray(first_tree), depth=depth)

    @cached_property
    def _stages(self) -> tuple[np.ndarray, ...]:
        """Per member, a ``K x 1`` object array of scikit-learn stages (``predict_stages``' layout)."""
        from sklearn.tree._tree import Tree

        node_dtype = Tree(1, np.ones(1, dtype=np.intp), 1).__getstate__()["nodes"].dtype
        stages = []
        for member in self.trees:
            column = np.empty((len(member), 1), dtype=object)
            for k, tree in enumerate(member):
                count = len(tree["left"])
                nodes = np.zeros(count, dtype=node_dtype)
                nodes["left_child"], nodes["right_child"] = tree["left"], tree["right"]
                nodes["feature"], nodes["threshold"] = tree["feature"], tree["threshold"]
                sk = Tree(self.n_features, np.ones(1, dtype=np.intp), 1)
                state = {"max_depth": _depth(tree["left"], tree["right"]), "node_count": count, "nodes": nodes}
                sk.__setstate__({**state, "values": tree["value"].reshape(count, 1, 1)})
                column[k, 0] = _Stage(sk)
            stages.append(column)
        return tuple(stages)

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start.tolist(),
            "learning_rate": self.learning_rate,
            "n_features": self.n_features,
            "trees": [[{f: tree[f].tolist() for f in _FIELDS} for tree in member] for member in self.trees],
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Forest:
        p = int(doc["n_features"])
        trees = tuple(tuple(_checked(tree, p) for tree in member) for member in doc["trees"])
        return cls(trees, np.asarray(doc["start"], dtype=np.float64), float(doc["learning_rate"]), p)
