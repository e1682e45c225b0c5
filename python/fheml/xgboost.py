"""XGBoost's scikit-learn models on encrypted data (optional extra: ``pip install fheml[xgboost]``).

``XGBClassifier`` and ``XGBRegressor`` take the installed XGBoost's parameters plus ``n_bits``
(bits of each feature's input grid, 7 by default). The trees are read from the fitted booster's own JSON dump:
splits go left when ``x < threshold`` (XGBoost's rule, thresholds as its float32 values), the
base score is what XGBoost adds to its margin, and the link (sigmoid, softmax, exp) runs on the
client. Inputs must be finite: a model trained with missing values still runs, but NaN inputs
are refused rather than sent down XGBoost's default directions.
"""
from __future__ import annotations

import json

import numpy as np

try:
    import xgboost as _xgb
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("fheml.xgboost needs XGBoost: pip install 'fheml[xgboost]'") from e

from fheml._trees import FlatTrees, add_nested_tree, float32_equivalent
from fheml.sklearn import TreeClassifier, TreeRegressor, tree_estimator

# 7 input bits by default (6 for scikit-learn's trees): the library places its thresholds on
# feature values of the training data (histogram cut points), where a 6-bit grid sends more
# rows the other way (bench/README.md, trees: -0.9 points on breast cancer at 6 bits, +0.1 at 7).
_N_BITS = 7

__all__ = ["XGBClassifier", "XGBRegressor"]

_IDENTITY = ("reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror",
             "reg:quantileerror", "reg:squaredlogerror", "binary:logitraw")
_EXP = ("count:poisson", "reg:gamma", "reg:tweedie")


def _flat_trees(model, X: np.ndarray) -> FlatTrees:
    booster = model.get_booster()
    config = json.loads(booster.save_config())
    learner = config["learner"]
    if learner["gradient_booster"]["name"] != "gbtree":
        raise ValueError(f"XGBoost booster {learner['gradient_booster']['name']!r}: only 'gbtree' "
                         "is supported (gblinear is a linear model, dart weights its trees)")
    objective = learner["objective"]["name"]
    classes = getattr(model, "classes_", None)
    K = 1
    if objective == "binary:logistic":
        link = "sigmoid"
    elif objective in ("multi:softprob", "multi:softmax"):
        link, K = "softmax", len(classes)
    elif objective in _IDENTITY:
        link = "identity"
    elif objective in _EXP:
        link = "exp"
    else:
        raise ValueError(f"XGBoost objective {objective!r} is not supported")
    parallel = int(learner["gradient_booster"]["gbtree_model_param"]["num_parallel_tree"])
    names = booster.feature_names
    index = {name: i for i, name in enumerate(names)} if names else None
    flat = FlatTrees(model.n_features_in_, K, "<", "sum", link)
    for t, dump in enumerate(booster.get_dump(dump_format="json")):
        k = (t // parallel) % K

        def read(node, k=k):
            if "leaf" in node:
                v = np.zeros(K)
                v[k] = node["leaf"]
                return ("leaf", v)
            split = node["split"]
            f = index[split] if index is not None else int(str(split).lstrip("f"))
            children = {c["nodeid"]: c for c in node["children"]}
            # XGBoost compares float32(x) with its float32 threshold.
            return ("split", f, float(float32_equivalent(np.float32(node["split_condition"]), "<")),
                    children[node["yes"]], children[node["no"]])

        add_nested_tree(flat, json.loads(dump), read)
    flat.set_raw_output(lambda rows: model.predict(rows, output_margin=True), X)
    return flat


class _XGBoostTrees:
    def _flat_trees(self, model, X):
        return _flat_trees(model, X)


@tree_estimator(_xgb.XGBClassifier, n_bits_default=_N_BITS)
class XGBClassifier(_XGBoostTrees, TreeClassifier):
    pass


@tree_estimator(_xgb.XGBRegressor, n_bits_default=_N_BITS)
class XGBRegressor(_XGBoostTrees, TreeRegressor):
    pass
