"""LightGBM's scikit-learn models on encrypted data (optional extra: ``pip install fheml[lightgbm]``).

``LGBMClassifier`` and ``LGBMRegressor`` take the installed LightGBM's parameters plus ``n_bits``
(bits of each feature's input grid, 7 by default). The trees are read from the fitted booster's own dump
(``dump_model``): numerical splits go left when ``x <= threshold``; categorical splits, linear
trees and zero-as-missing splits are refused with a message. NaN inputs are refused rather than
sent down LightGBM's default directions.
"""
from __future__ import annotations

import numpy as np

try:
    import lightgbm as _lgb
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("fheml.lightgbm needs LightGBM: pip install 'fheml[lightgbm]'") from e

from fheml._trees import FlatTrees, add_nested_tree
from fheml.sklearn import TreeClassifier, TreeRegressor, tree_estimator

# 7 input bits by default (6 for scikit-learn's trees): the library places its thresholds on
# feature values of the training data (histogram cut points), where a 6-bit grid sends more
# rows the other way (bench/README.md, trees: -0.9 points on breast cancer at 6 bits, +0.1 at 7).
_N_BITS = 7

__all__ = ["LGBMClassifier", "LGBMRegressor"]

_IDENTITY = ("regression", "regression_l1", "huber", "fair", "quantile", "mape")
_EXP = ("poisson", "gamma", "tweedie")


def _flat_trees(model, X: np.ndarray) -> FlatTrees:
    dump = model.booster_.dump_model()
    objective = str(dump["objective"]).split()
    name = objective[0] if objective else ""
    K = int(dump["num_tree_per_iteration"])
    if name in ("binary", "cross_entropy"):
        if any(part.startswith("sigmoid:") and float(part.split(":")[1]) != 1.0
               for part in objective[1:]):
            raise ValueError(f"LightGBM objective {dump['objective']!r}: only sigmoid:1 is "
                             "supported")
        link = "sigmoid"
    elif name == "multiclass":
        link = "softmax"
    elif name in _IDENTITY:
        link = "identity"
    elif name in _EXP:
        link = "exp"
    else:
        raise ValueError(f"LightGBM objective {dump['objective']!r} is not supported")
    if dump.get("pandas_categorical"):
        raise ValueError("LightGBM model fitted with pandas categorical columns: categorical "
                         "features are not supported (one-hot encode them)")
    if model.get_params().get("linear_tree"):
        raise ValueError("LightGBM linear trees are not supported")
    flat = FlatTrees(model.n_features_in_, K, "<=",
                     "mean" if dump.get("average_output") else "sum", link)
    for info in dump["tree_info"]:
        k = int(info["tree_index"]) % K

        def read(node, k=k):
            if "split_index" not in node:
                v = np.zeros(K)
                v[k] = node["leaf_value"]
                return ("leaf", v)
            if node["decision_type"] != "<=":
                raise ValueError("LightGBM categorical splits are not supported (one-hot encode "
                                 "the categories, or fit with categorical_feature=[])")
            if node.get("missing_type") == "Zero":
                raise ValueError("LightGBM splits that treat zeros as missing "
                                 "(zero_as_missing=True) are not supported")
            return ("split", int(node["split_feature"]), float(node["threshold"]),
                    node["left_child"], node["right_child"])

        add_nested_tree(flat, info["tree_structure"], read)
    flat.set_raw_output(lambda rows: model.predict(rows, raw_score=True), X)
    return flat


class _LightGBMTrees:
    def _flat_trees(self, model, X):
        return _flat_trees(model, X)


@tree_estimator(_lgb.LGBMClassifier, n_bits_default=_N_BITS)
class LGBMClassifier(_LightGBMTrees, TreeClassifier):
    pass


@tree_estimator(_lgb.LGBMRegressor, n_bits_default=_N_BITS)
class LGBMRegressor(_LightGBMTrees, TreeRegressor):
    pass
