"""Tree ensembles for fheml.sklearn, fheml.xgboost and fheml.lightgbm (not public).

Adapters read a fitted model's own trees (scikit-learn's ``tree_`` arrays and HistGradientBoosting
predictors, XGBoost's and LightGBM's JSON dumps) into flat arrays, which the C++ builder
``fheml._core.TreeEnsemble`` compiles. No conversion library sits in between. Every adapter's
result is checked against the library's own raw prediction on calibration rows before use, so a
format it misreads is an error, never a silently wrong model.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fheml import _core

# Rows of one encrypted call are capped by memory: each row is F * (2^n_bits - 1) input
# ciphertexts of 16 KiB (N = 2048) once expanded.
_EXECUTE_BYTES = 256 << 20
_CIPHERTEXT_BYTES = 16 << 10


@dataclass
class FlatTrees:
    """A tree ensemble as the C++ builder takes it (docstring of fheml._core.TreeEnsemble)."""

    features: int
    outputs: int
    split: str  # "<=" or "<"
    aggregation: str  # "sum" or "mean"
    link: str
    base_score: np.ndarray = None
    # The library's output before its link (check_reproduces compares with it); None: the
    # scikit-learn method raw_output() names.
    raw_output: object = None
    tree_offsets: list = field(default_factory=lambda: [0])
    feature: list = field(default_factory=list)
    threshold: list = field(default_factory=list)
    left: list = field(default_factory=list)
    right: list = field(default_factory=list)
    value: list = field(default_factory=list)

    def set_raw_output(self, raw_predict, X: np.ndarray) -> None:
        """The library's raw output (before its link): checks the trees against it and takes
        the base score from it."""
        self.raw_output = raw_predict
        self.base_score = base_from(raw_predict, self, X)

    def add_tree(self, feature, threshold, left, right, value) -> None:
        """One tree: per node its feature (-1: leaf), threshold, children (indices within the
        tree) and leaf values [outputs]."""
        n = len(feature)
        self.feature.extend(int(f) for f in feature)
        self.threshold.extend(float(t) for t in threshold)
        self.left.extend(int(c) for c in left)
        self.right.extend(int(c) for c in right)
        self.value.extend(np.asarray(value, dtype=np.float64).reshape(n, self.outputs))
        self.tree_offsets.append(self.tree_offsets[-1] + n)

    def arrays(self) -> dict:
        i64 = lambda v: np.ascontiguousarray(v, dtype=np.int64)  # noqa: E731
        return dict(
            features=self.features, tree_offsets=i64(self.tree_offsets), feature=i64(self.feature),
            threshold=np.ascontiguousarray(self.threshold, dtype=np.float64),
            left=i64(self.left), right=i64(self.right),
            value=np.ascontiguousarray(np.array(self.value, dtype=np.float64).reshape(
                -1, self.outputs)),
            split=self.split, aggregation=self.aggregation,
            base_score=np.ascontiguousarray(
                np.zeros(self.outputs) if self.base_score is None else self.base_score,
                dtype=np.float64),
            link=self.link)


def float32_equivalent(threshold, rule: str) -> np.ndarray:
    """Thresholds t' such that ``x rule t'`` on a float64 x holds exactly when
    ``float32(x) rule t`` does: what a library that casts its inputs to float32 (scikit-learn's
    decision trees, XGBoost) decides, as the float64 comparison fheml's grid is mapped with.
    float32(x) rounds to nearest, ties to even, so the boundary is the midpoint between two
    neighbouring float32 values, on one side or the other of it by the parity of the first."""
    t = np.asarray(threshold, dtype=np.float64)
    f32 = np.float32
    if rule == "<=":  # float32(x) <= t  <=>  float32(x) <= u, u the largest float32 <= t
        u = t.astype(f32)
        u = np.where(u.astype(np.float64) > t, np.nextafter(u, f32(-np.inf)), u)
        above = np.nextafter(u, f32(np.inf))
        mid = (u.astype(np.float64) + above.astype(np.float64)) / 2
        even = (u.view(np.uint32) & 1) == 0  # mid rounds to u: left at mid
        return np.where(even, mid, np.nextafter(mid, -np.inf))
    # float32(x) < t  <=>  float32(x) < u, u the smallest float32 >= t
    u = t.astype(f32)
    u = np.where(u.astype(np.float64) < t, np.nextafter(u, f32(np.inf)), u)
    below = np.nextafter(u, f32(-np.inf))
    mid = (below.astype(np.float64) + u.astype(np.float64)) / 2
    even = (u.view(np.uint32) & 1) == 0  # mid rounds to u: right at mid
    return np.where(even, mid, np.nextafter(mid, np.inf))


def sklearn_tree(flat: FlatTrees, tree, value: np.ndarray, scale: float = 1.0) -> None:
    """Adds a fitted sklearn.tree._tree.Tree; `value` [nodes, outputs] are its node values.
    Its thresholds are taken as float64 thresholds on the inputs (scikit-learn compares
    float32(x) with them)."""
    leaf = tree.children_left < 0
    threshold = float32_equivalent(np.where(leaf, 0.0, tree.threshold), "<=")
    flat.add_tree(np.where(leaf, -1, tree.feature), np.where(leaf, 0.0, threshold),
                  np.where(leaf, -1, tree.children_left), np.where(leaf, -1, tree.children_right),
                  value * scale)


def classifier_values(tree, binary: bool) -> np.ndarray:
    """A classification tree's leaf probabilities (scikit-learn normalizes the class counts or
    fractions it stores): [nodes, classes], or the positive class only when binary."""
    v = tree.value[:, 0, :].astype(np.float64)
    sums = v.sum(axis=1, keepdims=True)
    p = np.divide(v, sums, out=np.zeros_like(v), where=sums > 0)
    return p[:, 1:2] if binary else p


def refuse_multi_output(model) -> None:
    if getattr(model, "n_outputs_", 1) != 1 and hasattr(model, "classes_"):
        raise ValueError(f"{type(model).__name__} with {model.n_outputs_} targets: multi-output "
                         "classification is not supported (fit one model per target)")


def from_sklearn(model, X: np.ndarray) -> FlatTrees:
    """Flat trees of a fitted scikit-learn tree model (decision tree, forest, extra trees,
    gradient boosting, histogram gradient boosting)."""
    from sklearn import ensemble, tree as sktree

    name = type(model).__name__
    F = model.n_features_in_
    refuse_multi_output(model)
    if isinstance(model, (sktree.BaseDecisionTree, ensemble.RandomForestClassifier,
                          ensemble.RandomForestRegressor, ensemble.ExtraTreesClassifier,
                          ensemble.ExtraTreesRegressor)):
        trees = model.estimators_ if hasattr(model, "estimators_") else [model]
        classifier = hasattr(model, "classes_")
        if classifier:
            binary = len(model.classes_) == 2
            flat = FlatTrees(F, 1 if binary else len(model.classes_), "<=",
                             "mean", "probability")
            for t in trees:
                sklearn_tree(flat, t.tree_, classifier_values(t.tree_, binary))
        else:
            flat = FlatTrees(F, model.n_outputs_, "<=", "mean", "identity",
                             )
            for t in trees:
                sklearn_tree(flat, t.tree_, t.tree_.value[:, :, 0])
        return flat
    if isinstance(model, (ensemble.GradientBoostingClassifier,
                          ensemble.GradientBoostingRegressor)):
        if model.init not in (None, "zero"):
            raise ValueError(f"{name} with init={model.init!r}: only the default (a constant "
                             "prior) or 'zero' are supported")
        stages, K = model.estimators_.shape
        link = "identity"
        if hasattr(model, "classes_"):
            link = "sigmoid" if K == 1 else "softmax"
        flat = FlatTrees(F, K, "<=", "sum", link)
        for stage in range(stages):
            for k in range(K):
                t = model.estimators_[stage, k].tree_
                v = np.zeros((t.node_count, K))
                v[:, k] = t.value[:, 0, 0]
                sklearn_tree(flat, t, v, scale=model.learning_rate)
        flat.set_raw_output(raw_output(model, link), X)
        return flat
    if isinstance(model, (ensemble.HistGradientBoostingClassifier,
                          ensemble.HistGradientBoostingRegressor)):
        if getattr(model, "is_categorical_", None) is not None and np.any(model.is_categorical_):
            raise ValueError(f"{name} with categorical features: not supported (one-hot encode "
                             "the categories, or fit with categorical_features=None)")
        K = len(model._predictors[0])
        link = "identity"
        if hasattr(model, "classes_"):
            link = "sigmoid" if K == 1 else "softmax"
        elif getattr(model, "loss", "") in ("poisson", "gamma"):
            link = "exp"
        flat = FlatTrees(F, K, "<=", "sum", link)
        for iteration in model._predictors:
            for k, predictor in enumerate(iteration):
                nodes = predictor.nodes
                if np.any(nodes["is_categorical"][nodes["is_leaf"] == 0]):
                    raise ValueError(f"{name} with categorical splits: not supported (one-hot "
                                     "encode the categories, or fit with categorical_features=None)")
                leaf = nodes["is_leaf"].astype(bool)
                v = np.zeros((len(nodes), K))
                v[:, k] = nodes["value"]
                flat.add_tree(np.where(leaf, -1, nodes["feature_idx"]),
                              np.where(leaf, 0.0, nodes["num_threshold"]),
                              np.where(leaf, -1, nodes["left"]), np.where(leaf, -1, nodes["right"]),
                              v)
        flat.set_raw_output(raw_output(model, link), X)
        return flat
    raise ValueError(f"{name} is not a tree model fheml reads")


def raw_output(model, link: str):
    """The library's output before its link, from public methods only."""
    if hasattr(model, "decision_function"):
        return model.decision_function
    if link == "exp":
        return lambda X: np.log(model.predict(X))
    if link == "probability":
        proba = model.predict_proba
        return (lambda X: proba(X)[:, 1:]) if len(model.classes_) == 2 else proba
    return model.predict


def traverse(flat: FlatTrees, X: np.ndarray) -> np.ndarray:
    """The flat trees' aggregate without base score [N, outputs], in float (numpy)."""
    out = np.zeros((len(X), flat.outputs))
    feature, threshold = np.asarray(flat.feature), np.asarray(flat.threshold)
    left, right = np.asarray(flat.left), np.asarray(flat.right)
    value = np.array(flat.value).reshape(-1, flat.outputs)
    for t in range(len(flat.tree_offsets) - 1):
        base = flat.tree_offsets[t]
        node = np.zeros(len(X), dtype=np.int64)
        while True:
            f = feature[base + node]
            inner = f >= 0
            if not inner.any():
                break
            x = X[np.arange(len(X)), np.where(inner, f, 0)]
            th = threshold[base + node]
            go_left = x <= th if flat.split == "<=" else x < th
            node = np.where(inner, np.where(go_left, left[base + node], right[base + node]), node)
        out += value[base + node]
    if flat.aggregation == "mean":
        out /= len(flat.tree_offsets) - 1
    return out


def base_from(raw_predict, flat: FlatTrees, X: np.ndarray) -> np.ndarray:
    """The constant the library adds to its trees (prior, base score), from its raw prediction
    on calibration rows: refused when it is not constant (an estimator-based init)."""
    rows = X[: min(len(X), 64)]
    raw = np.asarray(raw_predict(rows), dtype=np.float64).reshape(len(rows), -1)
    if raw.shape[1] != flat.outputs:
        raise ValueError(f"raw prediction has {raw.shape[1]} columns, the trees {flat.outputs}")
    base = raw - traverse(flat, rows)
    scale = max(1.0, float(np.abs(raw).max()))
    if np.abs(base - base[0]).max() > 1e-6 * scale:
        raise ValueError("the model's raw prediction is not its trees plus a constant: this "
                         "model (init estimator, linear trees or dart weights) is not supported")
    return base[0].copy()


def check_reproduces(flat: FlatTrees, raw_predict, X: np.ndarray, what: str) -> None:
    """Refuses trees that do not reproduce the library's raw prediction on the rows X."""
    rows = X[: min(len(X), 256)]
    expected = np.asarray(raw_predict(rows), dtype=np.float64).reshape(len(rows), -1)
    base = np.zeros(flat.outputs) if flat.base_score is None else flat.base_score
    ours = traverse(flat, rows) + np.asarray(base).reshape(1, -1)
    scale = max(1.0, float(np.abs(expected).max()))
    worst = float(np.abs(ours - expected).max())
    if worst > 1e-5 * scale:
        raise ValueError(f"fheml read {what}'s trees wrong (raw prediction off by {worst:.3g} on "
                         "calibration rows): please report this model")


def tree_n_bits(n_bits) -> tuple[int, int]:
    """n_bits of a tree model: an int (the input grid's bits) or a dict with model_inputs and
    model_outputs (the leaf values' bits, 8 by default)."""
    if isinstance(n_bits, (bool, np.bool_)):
        raise ValueError(f"n_bits must be an int or a dict, found {n_bits!r}")
    if isinstance(n_bits, (int, np.integer)):
        roles = {"model_inputs": int(n_bits)}
    elif isinstance(n_bits, dict):
        unknown = set(n_bits) - {"model_inputs", "model_outputs"}
        if unknown:
            raise ValueError(f"n_bits: unknown roles {sorted(unknown)} for a tree model (roles: "
                             "model_inputs, model_outputs)")
        roles = {}
        for k, v in n_bits.items():
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"n_bits[{k!r}] must be an int, found {v!r}")
            roles[k] = int(v)
    else:
        raise ValueError(f"n_bits must be an int or a dict, found {type(n_bits).__name__}")
    inputs = roles.get("model_inputs", 6)  # a dict without it: scikit-learn trees' default
    leaves = roles.get("model_outputs", 8)
    if not 1 <= inputs <= 10:
        raise ValueError(f"n_bits (model_inputs) of a tree model must be in 1..10, found {inputs}")
    if not 3 <= leaves <= 24:
        raise ValueError(f"n_bits model_outputs (leaf values) must be in 3..24, found {leaves}")
    return inputs, leaves


class TreeModelMixin:
    """What fheml.sklearn's _FheModel needs from a tree estimator: _adopt and _build, over the
    flat trees of the fitted model (kept for pickling) and each feature's calibrated range."""

    def _check_n_bits(self, n_bits) -> None:
        tree_n_bits(n_bits)

    def _flat_trees(self, model, X: np.ndarray) -> FlatTrees:
        return from_sklearn(model, X)


    def _adopt(self, model, X: np.ndarray) -> None:
        self.sklearn_model_ = model
        for name in ("classes_", "n_classes_", "n_outputs_", "feature_importances_"):
            try:
                value = getattr(model, name)
            except AttributeError:
                continue
            setattr(self, name, value)
        # A regressor fitted on y [N] predicts [N] (classifiers' outputs are per class).
        self._single_output = (not hasattr(model, "classes_")
                               and getattr(model, "n_outputs_", 1) == 1)
        flat = self._flat_trees(model, X)
        raw = flat.raw_output or raw_output(model, flat.link)
        check_reproduces(flat, raw, X, type(model).__name__)
        self._trees = flat.arrays()
        self._calibration = np.ascontiguousarray(np.vstack([X.min(axis=0), X.max(axis=0)]))
        self._compile_options = {"p_error": None, "global_p_error": None, "threads": 0,
                                 "out_of_range": "warn", "security_level": 128,
                                 "profile": "standard", "max_partitions": 3}
        self._compiled = False
        self._build()

    def _build(self) -> None:
        o = self._compile_options
        inputs, leaves = tree_n_bits(self.n_bits)
        self._fhe_model = _core.TreeEnsemble(
            **self._trees, calibration=self._calibration, n_bits=inputs, leaf_bits=leaves,
            p_error=o["p_error"], global_p_error=o["global_p_error"], threads=o["threads"],
            security_level=o.get("security_level", 128),
            profile=o.get("profile", "standard"), max_partitions=o.get("max_partitions", 3))

    def _execute_chunk(self) -> int:
        inputs, _ = tree_n_bits(self.n_bits)
        row = self.n_features_in_ * ((1 << inputs) - 1) * _CIPHERTEXT_BYTES
        return int(np.clip(_EXECUTE_BYTES // max(row, 1), 1, 16))

    def _link(self, n_outputs: int) -> str:
        return self._trees["link"] if hasattr(self, "_trees") else "probability"

    def _has_proba(self) -> bool:
        return True


def add_nested_tree(flat: FlatTrees, root, read) -> None:
    """Adds a tree given as nested nodes (XGBoost's and LightGBM's JSON dumps), numbered in
    preorder so that children follow their parent. read(node) -> ("leaf", values) or
    ("split", feature, threshold, left_node, right_node)."""
    feature, threshold, left, right, value = [], [], [], [], []
    pending = [(root, -1, False)]
    while pending:
        node, parent, is_left = pending.pop()
        index = len(feature)
        if parent >= 0:
            (left if is_left else right)[parent] = index
        kind = read(node)
        left.append(-1)
        right.append(-1)
        if kind[0] == "leaf":
            feature.append(-1)
            threshold.append(0.0)
            value.append(np.asarray(kind[1], dtype=np.float64))
        else:
            _, f, t, l_node, r_node = kind
            feature.append(f)
            threshold.append(t)
            value.append(np.zeros(flat.outputs))
            pending.append((r_node, index, False))
            pending.append((l_node, index, True))
    flat.add_tree(feature, threshold, left, right, np.array(value))
