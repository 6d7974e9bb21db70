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
import re
from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from typing import Any, Sequence

import numpy as np

_FIELDS = ("left", "right", "feature", "threshold", "value")
NUMPY_MAX_PAIRS = 100_000  # (tree, row) pairs routed in NumPy; more go to scikit-learn's compiled loop
# Node arrays of an XGBoost tree's JSON that a forest does not keep, followed by a comma (so never an object's last
# member): cut from the text before parsing, which is then 0.5 ms a member instead of 1.4 (100 trees).
_UNUSED_ARRAYS = re.compile(
    rb'"(?:base_weights|categories|categories_nodes|categories_segments|categories_sizes|default_left|loss_changes'
    rb'|parents|split_type|sum_hessian)":\[[^\[\]{}"]*\],'
)


def _joined(trees: Sequence[dict[str, Any]], keys: Sequence[str]) -> tuple[list[np.ndarray], np.ndarray]:
    """The lists ``keys`` of every tree in ``trees``, each joined into one array, and the length of each tree's
    first list (``T``)."""
    sizes = np.fromiter((len(t[keys[0]]) for t in trees), dtype=np.intp, count=len(trees))
    joined = []
    for key in keys:
        values = np.asarray(list(chain.from_iterable(t[key] for t in trees)))
        lengths = np.fromiter((len(t[key]) for t in trees), dtype=np.intp, count=len(trees))
        if not np.array_equal(lengths, sizes):
            raise ValueError("a tree's node arrays differ in length; the model file is damaged")
        joined.append(values)
    return joined, sizes


def _xgboost_nodes(trees: Sequence[dict[str, Any]]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The nodes of the trees of an XGBoost model's JSON (``save_raw("json")``), in scikit-learn's terms: leaves
    hold their value (learning rate included) and no feature (-2), splits their float32 threshold; and the nodes
    per tree."""
    (left, right, split, cond), sizes = _joined(
        trees, ("left_children", "right_children", "split_indices", "split_conditions")
    )
    left = left.astype(np.intp)
    cond = cond.astype(np.float32).astype(np.float64)
    leaf = left < 0
    nodes = {
        "left": left,
        "right": right.astype(np.intp),
        "feature": np.where(leaf, -2, split.astype(np.intp)),
        "threshold": np.where(leaf, -2.0, cond),
        "value": np.where(leaf, cond, 0.0),
    }
    return nodes, sizes


def _checked(nodes: dict[str, np.ndarray], sizes: np.ndarray, n_features: int) -> dict[str, np.ndarray]:
    """Every tree's node arrays, joined (``N`` each; ``sizes``: nodes per tree), as the forest keeps them; refused
    by name if they do not make trees: a split's children are later nodes of its own tree (so no cycles) and its
    feature is one of the ``n_features``."""
    tree = {
        "left": np.asarray(nodes["left"], dtype=np.intp).reshape(-1),
        "right": np.asarray(nodes["right"], dtype=np.intp).reshape(-1),
        "feature": np.asarray(nodes["feature"], dtype=np.intp).reshape(-1),
        "threshold": np.asarray(nodes["threshold"], dtype=np.float64).reshape(-1),
        "value": np.asarray(nodes["value"], dtype=np.float64).reshape(-1),
    }
    count = int(sizes.sum())
    if len(sizes) == 0 or (sizes <= 0).any() or any(len(tree[f]) != count for f in _FIELDS):
        raise ValueError("a tree's node arrays are empty or differ in length; the model file is damaged")
    own = np.arange(count) - np.repeat(np.cumsum(sizes) - sizes, sizes)  # each node's index in its tree
    size = np.repeat(sizes, sizes)
    left, right, feature = tree["left"], tree["right"], tree["feature"]
    inner = left >= 0
    if (
        (left[inner] >= size[inner]).any()
        or (right[inner] >= size[inner]).any()
        or (left[inner] <= own[inner]).any()
        or (right[inner] <= own[inner]).any()
        or (feature[inner] < 0).any()
        or (feature[inner] >= n_features).any()
    ):
        raise ValueError(
            "a tree points past its nodes, back to an earlier node or past its features; the model file is damaged"
        )
    return tree


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
    depths: np.ndarray  # T, each tree's depth

    @property
    def depth(self) -> int:
        return int(self.depths.max())


@dataclass(frozen=True)
class _Stage:
    """What ``predict_stages`` reads of an estimator: its ``tree_``."""

    tree_: Any


@dataclass(frozen=True, eq=False)
class Forest:
    """``M`` boosted members: member ``i`` predicts ``start[i] + learning_rate * sum_k tree_ik(x)``.

    The nodes of every tree, members' trees in order, are kept joined: ``nodes`` maps each of ``left``, ``right``
    (children numbered within their tree, -1 at a leaf), ``feature`` (-2 at a leaf), ``threshold`` and ``value``
    to an array of ``N``; ``tree_sizes`` (``T``) counts each tree's nodes and ``member_sizes`` (``M``) each
    member's trees. Built from the (checked) arrays at once, not tree by tree: 16,000 trees of a model selection's
    folds cost 0.8 s as per-tree arrays."""

    nodes: dict[str, np.ndarray]
    tree_sizes: np.ndarray  # T
    member_sizes: np.ndarray  # M
    start: np.ndarray  # M
    learning_rate: float
    n_features: int

    def __post_init__(self) -> None:
        if len(self.start) != len(self.member_sizes) or (self.member_sizes <= 0).any():
            raise ValueError("Forest: a start value and a tree per member are needed; the model file is damaged")
        if self.member_sizes.sum() != len(self.tree_sizes):
            raise ValueError("Forest: the members' trees do not add up; the model file is damaged")

    @classmethod
    def from_boosters(cls, boosters: Sequence[Any], n_features: int) -> Forest:
        """From fitted XGBoost boosters (squared error, one output, numeric splits): the leaf values already carry
        the learning rate, so the forest's is 1."""
        trees, start = [], []
        for booster in boosters:
            learner = json.loads(_UNUSED_ARRAYS.sub(b"", booster.save_raw(raw_format="json")))["learner"]
            start.append(float(learner["learner_model_param"]["base_score"].strip("[]")))
            trees.append(learner["gradient_booster"]["model"]["trees"])
        nodes, sizes = _xgboost_nodes(list(chain.from_iterable(trees)))
        members = np.asarray([len(m) for m in trees], dtype=np.intp)
        return cls(
            _checked(nodes, sizes, n_features), sizes, members, np.asarray(start, dtype=np.float64), 1.0, n_features
        )

    @property
    def n_members(self) -> int:
        return len(self.start)

    def predict(self, F: np.ndarray, members: Sequence[int] | None = None) -> np.ndarray:
        """Predictions of every member (or of ``members``) at each row of ``F`` (``n x p``): ``M x n``."""
        X = np.ascontiguousarray(F, dtype=np.float32)  # as scikit-learn's trees see them
        which = list(range(self.n_members)) if members is None else list(members)
        if len(X) * int(self.member_sizes[which].sum()) <= NUMPY_MAX_PAIRS:
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
        firsts = np.cumsum([0] + [int(self.member_sizes[i]) for i in which[:-1]])
        sums = np.add.reduceat(pk.value[node], firsts, axis=0)
        return self.start[which][:, None] + self.learning_rate * sums

    @cached_property
    def _packed(self) -> _Packed:
        nodes, sizes = self.nodes, self.tree_sizes
        roots = np.cumsum(sizes) - sizes  # T
        own = np.arange(len(nodes["left"]))
        offset = np.repeat(roots, sizes)
        leaf = nodes["left"] < 0
        left = np.where(leaf, own, nodes["left"] + offset)
        right = np.where(leaf, own, nodes["right"] + offset)
        level, frontier, depth = np.zeros(len(own), dtype=np.intp), roots, 0
        while True:  # from the roots down, every tree at once (children follow their parents: _checked)
            inner = frontier[~leaf[frontier]]
            if len(inner) == 0:
                break
            depth += 1
            frontier = np.concatenate([left[inner], right[inner]])
            level[frontier] = depth
        return _Packed(
            left=left,
            right=right,
            feature=np.where(leaf, 0, nodes["feature"]),
            threshold=np.where(leaf, np.inf, nodes["threshold"]),
            value=nodes["value"],
            roots=roots,
            first_tree=np.cumsum(self.member_sizes) - self.member_sizes,
            depths=np.maximum.reduceat(level, roots),
        )

    def _trees(self) -> list[list[tuple[int, int]]]:
        """Per member, per tree, the (first, last + 1) of its nodes in ``nodes``."""
        ends = np.cumsum(self.tree_sizes).tolist()
        spans = list(zip([0, *ends[:-1]], ends))
        firsts = np.cumsum(self.member_sizes).tolist()
        return [spans[a:b] for a, b in zip([0, *firsts[:-1]], firsts)]

    @cached_property
    def _stages(self) -> tuple[np.ndarray, ...]:
        """Per member, a ``K x 1`` object array of scikit-learn stages (``predict_stages``' layout)."""
        from sklearn.tree._tree import Tree

        node_dtype = Tree(1, np.ones(1, dtype=np.intp), 1).__getstate__()["nodes"].dtype
        depths, k = self._packed.depths, 0
        stages = []
        for member in self._trees():
            column = np.empty((len(member), 1), dtype=object)
            for row, (a, b) in enumerate(member):
                tree = {f: self.nodes[f][a:b] for f in _FIELDS}
                nodes = np.zeros(b - a, dtype=node_dtype)
                nodes["left_child"], nodes["right_child"] = tree["left"], tree["right"]
                nodes["feature"], nodes["threshold"] = tree["feature"], tree["threshold"]
                sk = Tree(self.n_features, np.ones(1, dtype=np.intp), 1)
                state = {"max_depth": int(depths[k]), "node_count": b - a, "nodes": nodes}
                sk.__setstate__({**state, "values": tree["value"].reshape(b - a, 1, 1).copy()})
                column[row, 0] = _Stage(sk)
                k += 1
            stages.append(column)
        return tuple(stages)

    def to_json(self) -> dict[str, Any]:
        lists = {f: self.nodes[f].tolist() for f in _FIELDS}
        return {
            "start": self.start.tolist(),
            "learning_rate": self.learning_rate,
            "n_features": self.n_features,
            "trees": [[{f: lists[f][a:b] for f in _FIELDS} for a, b in member] for member in self._trees()],
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Forest:
        p = int(doc["n_features"])
        members = doc["trees"]
        joined, sizes = _joined(list(chain.from_iterable(members)), _FIELDS)
        nodes = _checked(dict(zip(_FIELDS, joined)), sizes, p)
        member_sizes = np.asarray([len(m) for m in members], dtype=np.intp)
        return cls(
            nodes, sizes, member_sizes, np.asarray(doc["start"], dtype=np.float64), float(doc["learning_rate"]), p
        )
