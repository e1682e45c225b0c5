"""fheml.xgboost and fheml.lightgbm: the fitted booster's own trees, run encrypted.

Margins of fheml's clear circuit equal the library's own raw prediction on the grid values
(up to the rounding of leaf values), and the three modes agree."""
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")
from fheml.lightgbm import LGBMClassifier, LGBMRegressor  # noqa: E402
from fheml.xgboost import XGBClassifier, XGBRegressor  # noqa: E402

CASES = [
    (XGBClassifier, load_breast_cancer, {"n_estimators": 30, "max_depth": 3},
     lambda m, X: m.predict(X, output_margin=True)),
    (XGBClassifier, load_wine, {"n_estimators": 20, "max_depth": 3},
     lambda m, X: m.predict(X, output_margin=True)),
    (XGBRegressor, load_diabetes, {"n_estimators": 30, "max_depth": 3},
     lambda m, X: m.predict(X, output_margin=True)),
    (LGBMClassifier, load_breast_cancer,
     {"n_estimators": 30, "max_depth": 3, "num_leaves": 8, "verbose": -1},
     lambda m, X: m.predict(X, raw_score=True)),
    (LGBMClassifier, load_iris,
     {"n_estimators": 20, "max_depth": 3, "num_leaves": 8, "verbose": -1},
     lambda m, X: m.predict(X, raw_score=True)),
    (LGBMRegressor, load_diabetes,
     {"n_estimators": 30, "max_depth": 3, "num_leaves": 8, "verbose": -1},
     lambda m, X: m.predict(X, raw_score=True)),
]
IDS = ["xgb-cancer", "xgb-wine", "xgb-diabetes", "lgbm-cancer", "lgbm-iris", "lgbm-diabetes"]


@pytest.mark.parametrize("ours,loader,kw,margin", CASES, ids=IDS)
def test_margins_equal_the_library_on_the_grid(ours, loader, kw, margin):
    X, y = loader(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    model = ours(random_state=0, **kw).fit(X_train, y_train)
    # The grid values the circuit computes on, from the client's own levels.
    lo, hi = X_train.min(axis=0), X_train.max(axis=0)
    grid = lo + model.quantize_input(X_test) * (hi - lo) / 127  # 7 bits: the default here
    theirs = np.asarray(margin(model.sklearn_model_, grid)).reshape(len(X_test), -1)
    raw = lambda fhe: model.fhe_circuit.decision_function(np.ascontiguousarray(X_test), fhe)  # noqa
    ours_ = raw("disable")
    trees = model.fhe_circuit.tree_statistics()["trees"]
    spread = np.abs(theirs).max()
    # Leaf rounding: half a step per tree, a step being at most spread / 2^(leaf_bits - 1).
    assert np.abs(ours_ - theirs).max() <= trees * spread / 2 ** 7
    # Accuracy (R2) tracks the float model: within 1 point (0.01) on average over four splits.
    gaps = []
    for seed in (0, 1, 2, 3):
        Xa, Xb, ya, yb = train_test_split(X, y, test_size=0.3, random_state=seed)
        m = ours(random_state=0, **kw).fit(Xa, ya)
        if hasattr(m, "classes_"):
            gaps.append(m.score(Xb, yb) - m.sklearn_model_.score(Xb, yb))
        else:
            gaps.append(r2_score(yb, m.predict(Xb)) - r2_score(yb, m.sklearn_model_.predict(Xb)))
    assert np.mean(gaps) >= -0.01, gaps
    model.compile(X_train)
    np.testing.assert_array_equal(raw("simulate"), raw("disable"))
    stats = model.fhe_circuit.tree_statistics()
    assert 2 * stats["lookups"] <= stats["concrete_ml_bootstraps"]


@pytest.mark.parametrize("ours", [XGBClassifier, LGBMClassifier], ids=["xgb", "lgbm"])
def test_execute_equals_disable(ours):
    X, y = load_breast_cancer(return_X_y=True)
    kw = {"verbose": -1} if ours is LGBMClassifier else {}
    model = ours(n_estimators=3, max_depth=2, random_state=0, **kw).fit(X, y).compile(X)
    q = model.quantize_input(X[:3])
    np.testing.assert_array_equal(model.fhe_circuit.run_integers(q, "execute"),
                                  model.fhe_circuit.run_integers(q, "disable"))


def test_feature_names_parameters_and_refusals():
    X, y = load_iris(return_X_y=True)
    frame = pd.DataFrame(X, columns=["sepal length", "sepal width", "petal length", "petal width"])
    named = XGBClassifier(n_estimators=5, max_depth=2).fit(frame, y)
    plain = XGBClassifier(n_estimators=5, max_depth=2).fit(X, y)
    np.testing.assert_array_equal(named.predict_proba(frame), plain.predict_proba(X))
    # The installed libraries' parameters, plus n_bits; extra keyword arguments pass through.
    assert "max_depth" in XGBClassifier().get_params() and XGBClassifier().n_bits == 7
    assert LGBMClassifier(verbose=-1, min_data_in_leaf=5).get_params()["min_data_in_leaf"] == 5
    with pytest.raises(ValueError, match="gblinear"):
        XGBRegressor(booster="gblinear", n_estimators=3).fit(X, y)
    codes = np.column_stack([X[:, 0], y])  # a category column LightGBM splits on by sets
    fitted = lgb.LGBMClassifier(n_estimators=5, verbose=-1, min_child_samples=2).fit(
        codes, y, categorical_feature=[1])
    with pytest.raises(ValueError, match="categorical splits"):
        LGBMClassifier.from_sklearn_model(fitted, codes)
    with pytest.raises(ValueError, match="NaN"):
        bad = X[:2].copy()
        bad[0, 0] = np.nan
        plain.predict(bad)
