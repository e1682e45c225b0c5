"""fheml.sklearn.MLPClassifier / MLPRegressor: scikit-learn's MLPs on encrypted data, with the
conventions of the other estimators (fit, compile, predict(fhe=...), pickling, clone, search)."""
import pickle
import re
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fheml.sklearn import MLPClassifier, MLPRegressor


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0)
    scaler = StandardScaler().fit(Xtr)
    return scaler.transform(Xtr), scaler.transform(Xte), ytr, yte


def test_classifier_search_keeps_float_accuracy(cancer):
    Xtr, Xte, ytr, yte = cancer
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, sk = MLPClassifier(hidden_layer_sizes=(30, 30), random_state=0,
                                  max_iter=500).fit_benchmark(Xtr, ytr)
    assert not [w for w in caught if "agrees with the float network" in str(w.message)]
    # The search keeps the fastest candidate agreeing with the float network on 99% of the
    # calibration (training) rows. Held-out rows lie nearer the float network's boundary: over
    # 3 splits x 3 seeds of this network (2026-12-03) the pick agreed with it on 97.7-100% of
    # the 171 test rows (mean 99.0%) and scored -2.3 to +0.6 points from it (mean -0.4); this
    # split and seed is the worst of the nine (4 rows). One row of slack below that.
    assert (model.predict(Xte) == sk.predict(Xte)).mean() >= 0.97
    assert model.score(Xte, yte) >= sk.score(Xte, yte) - 0.03
    chosen = [t for t in model.precision_trials if t["chosen"]]
    assert len(chosen) == 1 and chosen[0]["agreement"] >= 0.99
    assert model.calibration_agreement == chosen[0]["agreement"]
    np.testing.assert_allclose(model.predict_proba(Xte).sum(axis=1), 1.0)
    model.compile(Xtr)
    assert (model.predict(Xte, fhe="simulate") == model.predict(Xte)).mean() >= 0.97
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict_proba(Xte), model.predict_proba(Xte))
    assert clone(model).get_params()["hidden_layer_sizes"] == (30, 30)


def test_classifier_encrypted_equals_clear_with_exact_rounding(cancer):
    Xtr, Xte, ytr, _ = cancer
    model = MLPClassifier(n_bits={"model_inputs": 8, "op_inputs": 3, "op_weights": 3,
                                  "model_outputs": 8}, hidden_layer_sizes=(6,), random_state=0,
                          max_iter=300).fit(Xtr, ytr)
    model.compile(Xtr, rounding_method="exact")
    np.testing.assert_array_equal(model.predict_proba(Xte[:2], fhe="execute"),
                                  model.predict_proba(Xte[:2]))


def test_a_fixed_n_bits_far_from_float_warns(cancer):
    Xtr, Xte, ytr, yte = cancer
    # 3-bit weights and activations: measured 2026-12-04, agreement 0.89 / 0.64 / 0.87 for
    # random_state 0 / 1 / 2 (accuracy 0.91 / 0.81 / 0.88; float 0.97, the search's pick 0.98).
    with pytest.warns(UserWarning, match="agrees with the float network only at 0.6"):
        model = MLPClassifier(n_bits={"model_inputs": 8, "op_inputs": 3, "op_weights": 3,
                                      "model_outputs": 8}, hidden_layer_sizes=(20, 20),
                              random_state=1, max_iter=1000).fit(Xtr, ytr)
    assert 0.5 < model.calibration_agreement < 0.7
    assert model.score(Xte, yte) < 0.9


def test_regressor_and_pipeline_grid_search():
    X, y = load_diabetes(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0)
    model = make_pipeline(StandardScaler(), MLPRegressor(n_bits=6, hidden_layer_sizes=(16,),
                                                         random_state=0, max_iter=2000))
    with pytest.warns(Warning):  # scikit-learn's ConvergenceWarning at this max_iter
        model.fit(Xtr, ytr)
    assert model.predict(Xte).shape == (len(Xte),)
    float_model = make_pipeline(model[0], model[1].sklearn_model_)
    assert float_model.score(Xte, yte) > 0.25
    assert model.score(Xte, yte) >= float_model.score(Xte, yte) - 0.03
    grid = GridSearchCV(MLPClassifier(n_bits=5, max_iter=200, random_state=0),
                        {"hidden_layer_sizes": [(4,), (8,)]}, cv=2)
    Xc, yc = load_breast_cancer(return_X_y=True)
    with pytest.warns(Warning):
        grid.fit(StandardScaler().fit_transform(Xc), yc)
    assert grid.best_params_["hidden_layer_sizes"] in [(4,), (8,)]


def test_bad_inputs(cancer):
    Xtr, Xte, ytr, _ = cancer
    with pytest.raises(ValueError, match="n_bits"):
        MLPClassifier(n_bits="eight").fit(Xtr, ytr)
    model = MLPClassifier(n_bits=4, hidden_layer_sizes=(4,), max_iter=50,
                          random_state=0)
    with pytest.warns(Warning):
        model.fit(Xtr, ytr)
    with pytest.raises(ValueError, match="features"):
        model.predict(Xte[:, :5])
    with pytest.raises(ValueError, match="needs a compiled model"):
        model.predict(Xte, fhe="execute")
    multilabel = SkMLPClassifier(hidden_layer_sizes=(4,), max_iter=50, random_state=0)
    with pytest.warns(Warning):
        multilabel.fit(Xtr, np.stack([ytr, 1 - ytr], axis=1))
    with pytest.raises(ValueError, match="multilabel"):
        MLPClassifier.from_sklearn_model(multilabel, Xtr)


def test_max_partitions_bounds_the_parameter_sets(cancer):
    Xtr, Xte, ytr, _ = cancer
    model = MLPClassifier(n_bits={"model_inputs": 8, "op_inputs": 3, "op_weights": 3,
                                  "model_outputs": 8}, hidden_layer_sizes=(20, 20),
                          random_state=0, max_iter=1000).fit(Xtr, ytr)
    # The first layer's lookups read 3 rounded bits, the second's 8: two sets by default
    # (the first layer's bootstraps cheaper), one set when asked. The 8-bit set reads tables of
    # N * 2^e on a small key (extended tables); the first layer's reads tables of its own N, at
    # least 8 times smaller: its bootstraps do not pay for the 8-bit precision.
    model.compile(Xtr)
    split = model.fhe_circuit.statistics()
    assert len(split["partitions"]) == 2 and split["bootstraps_per_partition"] == [20, 20]

    def table_size(p):
        extension = re.search(r"lut=N\*2\^(\d+)", p)
        log2_extension = int(extension.group(1)) if extension else 0
        return int(re.search(r" N=(\d+)", p).group(1)) << log2_extension

    size = [table_size(p) for p in split["partitions"]]
    assert size[0] * 8 <= size[1], split["partitions"]
    clear = model.predict_proba(Xte)
    model.compile(Xtr, max_partitions=1)
    one = model.fhe_circuit.statistics()
    assert len(one["partitions"]) == 1 and one["bootstraps_per_partition"] == [40]
    assert one["evaluation_key_bytes"] != split["evaluation_key_bytes"]
    np.testing.assert_array_equal(model.predict_proba(Xte), clear)  # same quantized circuit
    assert pickle.loads(pickle.dumps(model)).fhe_circuit.statistics()["partitions"] == \
        one["partitions"]
    for bad in (0, 9, 2.5, True, "3"):
        with pytest.raises(ValueError, match="max_partitions"):
            model.compile(Xtr, max_partitions=bad)
