"""fheml.sklearn against scikit-learn: equality of the three modes, accuracy on shipped data
sets, scikit-learn conventions and refused inputs."""
import inspect
import pickle

import numpy as np
import pandas as pd
import pytest
import sklearn.linear_model as lm
import sklearn.svm as svm
from sklearn.base import clone
from sklearn.datasets import (load_breast_cancer, load_diabetes, load_digits, load_iris,
                              load_wine)
from sklearn.exceptions import NotFittedError
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import fheml
from fheml import sklearn as fsk

# Every estimator with its scikit-learn twin, the data set it is tested on and the
# hyper-parameters that make the float model a sensible one there.
CLASSIFIERS = [
    (fsk.LogisticRegression, lm.LogisticRegression, {"max_iter": 1000}),
    (fsk.LinearSVC, svm.LinearSVC, {}),
    (fsk.SGDClassifier, lm.SGDClassifier, {"random_state": 0}),
    (fsk.SGDClassifier, lm.SGDClassifier, {"loss": "log_loss", "random_state": 0}),
    (fsk.SGDClassifier, lm.SGDClassifier, {"loss": "modified_huber", "random_state": 0}),
]
REGRESSORS = [
    (fsk.LinearRegression, lm.LinearRegression, {}),
    (fsk.Ridge, lm.Ridge, {}),
    (fsk.Lasso, lm.Lasso, {"alpha": 0.1}),
    (fsk.ElasticNet, lm.ElasticNet, {"alpha": 0.01}),
    (fsk.LinearSVR, svm.LinearSVR, {"C": 10.0, "max_iter": 10000}),
    (fsk.SGDRegressor, lm.SGDRegressor, {"random_state": 0}),
    (fsk.PoissonRegressor, lm.PoissonRegressor, {"alpha": 0.01}),
    (fsk.GammaRegressor, lm.GammaRegressor, {"alpha": 0.01}),
    (fsk.TweedieRegressor, lm.TweedieRegressor, {"power": 1.5, "alpha": 0.01}),
    (fsk.TweedieRegressor, lm.TweedieRegressor, {"power": 0.0}),
]
ALL = CLASSIFIERS + REGRESSORS


def _ids(cases):
    return [f"{ours.__name__}{'-' + kw['loss'] if 'loss' in kw else ''}"
            f"{'-power' + str(kw['power']) if 'power' in kw else ''}" for ours, _, kw in cases]


def _split(X, y):
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


@pytest.fixture(scope="module")
def cancer():
    return _split(*load_breast_cancer(return_X_y=True))


@pytest.fixture(scope="module")
def iris():
    return _split(*load_iris(return_X_y=True))


@pytest.fixture(scope="module")
def diabetes():
    return _split(*load_diabetes(return_X_y=True))


def test_version():
    assert fheml.__version__ == "0.1.0"


@pytest.mark.parametrize("ours, theirs", sorted({(o, t) for o, t, _ in ALL}, key=str))
def test_parameters_mirror_sklearn(ours, theirs):
    mine = inspect.signature(ours).parameters
    sk = inspect.signature(theirs).parameters
    assert list(mine)[0] == "n_bits" and mine["n_bits"].default == 8
    assert set(mine) - {"n_bits"} == set(sk)
    assert all(mine[k].default == sk[k].default for k in sk)
    with pytest.raises(TypeError, match="unexpected parameters"):
        ours(n_bit=8)


@pytest.mark.parametrize("ours, theirs, kw", CLASSIFIERS, ids=_ids(CLASSIFIERS))
@pytest.mark.parametrize("data", ["cancer", "iris"])
def test_classifier_modes_agree_and_track_float(ours, theirs, kw, data, request):
    X_train, X_test, y_train, y_test = request.getfixturevalue(data)
    model = ours(n_bits=8, **kw).fit(X_train, y_train)
    float_model = theirs(**kw).fit(X_train, y_train)
    model.compile(X_train)
    clear = model.decision_function(X_test, fhe="disable")
    # No bootstrap in a linear circuit: encrypted and simulated results are the clear ones.
    np.testing.assert_array_equal(model.decision_function(X_test, fhe="execute"), clear)
    np.testing.assert_array_equal(model.decision_function(X_test, fhe="simulate"), clear)
    np.testing.assert_array_equal(model.classes_, float_model.classes_)
    predicted = model.predict(X_test, fhe="execute")
    agreement = np.mean(predicted == float_model.predict(X_test))
    assert agreement >= 0.95, agreement
    expected = float_model.decision_function(X_test)
    assert clear.shape == expected.shape
    # 8-bit inputs and weights: the scores within 2% of their spread on every row.
    assert np.max(np.abs(clear - expected)) < 0.02 * np.ptp(expected)
    if hasattr(float_model, "predict_proba"):
        proba = model.predict_proba(X_test, fhe="execute")
        assert proba.shape == (len(X_test), len(model.classes_))
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        assert np.mean(np.abs(proba - float_model.predict_proba(X_test))) < 0.01
    else:
        assert not hasattr(model, "predict_proba")


@pytest.mark.parametrize("ours, theirs, kw", REGRESSORS, ids=_ids(REGRESSORS))
def test_regressor_modes_agree_and_track_float(ours, theirs, kw, diabetes):
    X_train, X_test, y_train, y_test = diabetes
    model = ours(n_bits=8, **kw).fit(X_train, y_train)
    float_model = theirs(**kw).fit(X_train, y_train)
    model.compile(X_train)
    clear = model.predict(X_test, fhe="disable")
    np.testing.assert_array_equal(model.predict(X_test, fhe="execute"), clear)
    np.testing.assert_array_equal(model.predict(X_test, fhe="simulate"), clear)
    expected = float_model.predict(X_test)
    assert clear.shape == expected.shape
    # 8-bit inputs and weights: within 2% of the target's spread on every row.
    assert np.max(np.abs(clear - expected)) < 0.02 * np.ptp(y_train)
    assert abs(r2_score(y_test, clear) - r2_score(y_test, expected)) < 0.01


# Targets of the issue: LogisticRegression at n_bits=8 within 0.5 point of float (encrypted
# predictions on the whole test split), R2 within 0.01 for LinearRegression and Ridge.
@pytest.mark.parametrize("loader", [load_breast_cancer, load_iris, load_wine, load_digits])
def test_logistic_regression_accuracy_target(loader):
    X_train, X_test, y_train, y_test = _split(*loader(return_X_y=True))
    model, float_model = fsk.LogisticRegression(n_bits=8, max_iter=2000).fit_benchmark(
        X_train, y_train)
    model.compile(X_train)
    fhe_accuracy = np.mean(model.predict(X_test, fhe="execute") == y_test)
    float_accuracy = np.mean(float_model.predict(X_test) == y_test)
    assert fhe_accuracy >= float_accuracy - 0.005, (fhe_accuracy, float_accuracy)


@pytest.mark.parametrize("ours", [fsk.LinearRegression, fsk.Ridge])
def test_regression_r2_target(ours, diabetes):
    X_train, X_test, y_train, y_test = diabetes
    model, float_model = ours(n_bits=8).fit_benchmark(X_train, y_train)
    model.compile(X_train)
    fhe_r2 = r2_score(y_test, model.predict(X_test, fhe="execute"))
    assert abs(fhe_r2 - r2_score(y_test, float_model.predict(X_test))) < 0.01


def test_n_bits_per_role_and_fewer_bits_cost_accuracy(cancer):
    X_train, X_test, y_train, y_test = cancer
    roles = {"model_inputs": 3, "op_weights": 2}
    coarse = fsk.LinearRegression(n_bits=roles).fit(X_train, y_train)
    fine = fsk.LinearRegression(n_bits=8).fit(X_train, y_train)
    exact = lm.LinearRegression().fit(X_train, y_train).predict(X_test)
    err = lambda m: np.mean(np.abs(m.predict(X_test) - exact))
    assert err(fine) * 4 < err(coarse)


def test_client_steps_compose(iris):
    X_train, X_test, y_train, _ = iris
    model = fsk.LogisticRegression(n_bits=8).fit(X_train, y_train).compile(X_train)
    q = model.quantize_input(X_test)
    assert q.dtype == np.int64 and q.shape == X_test.shape
    # 8 bits over the training range, and up to one range beyond either end unclipped.
    assert q.min() >= -255 and q.max() <= 510
    assert np.mean((q >= 0) & (q <= 255)) > 0.95
    q_out = model.fhe_circuit.run_integers(q, "execute")
    d = model.dequantize_output(q_out)
    np.testing.assert_array_equal(d, model.decision_function(X_test))
    np.testing.assert_array_equal(model.post_processing(d), model.predict_proba(X_test))


def test_from_sklearn_model_equals_fit(cancer):
    X_train, X_test, y_train, _ = cancer
    float_model = lm.LogisticRegression(C=0.5).fit(X_train, y_train)
    wrapped = fsk.LogisticRegression.from_sklearn_model(float_model, X_train, n_bits=7)
    fitted = fsk.LogisticRegression(n_bits=7, C=0.5).fit(X_train, y_train)
    assert wrapped.get_params() == fitted.get_params()
    np.testing.assert_array_equal(wrapped.decision_function(X_test),
                                  fitted.decision_function(X_test))
    with pytest.raises(ValueError, match="takes a fitted LogisticRegression, found Ridge"):
        fsk.LogisticRegression.from_sklearn_model(lm.Ridge().fit(X_train, y_train), X_train)
    with pytest.raises(ValueError, match="needs X"):
        fsk.LogisticRegression.from_sklearn_model(float_model, None)
    with pytest.raises(NotFittedError):
        fsk.LogisticRegression.from_sklearn_model(lm.LogisticRegression(), X_train)


def test_clone_pipeline_and_grid_search(cancer):
    X_train, X_test, y_train, y_test = cancer
    model = fsk.LogisticRegression(n_bits=6, C=0.5)
    twin = clone(model)
    assert twin.get_params() == model.get_params() and twin is not model
    assert twin.set_params(n_bits=4).n_bits == 4 and model.n_bits == 6
    X_raw, y = load_breast_cancer(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), fsk.LogisticRegression(n_bits=8, max_iter=1000))
    pipe.fit(X_raw[:400], y[:400])
    assert pipe.score(X_raw[400:], y[400:]) > 0.9
    search = GridSearchCV(fsk.LogisticRegression(max_iter=1000),
                          {"n_bits": [2, 8], "C": [0.1, 1.0]}, cv=3)
    search.fit(X_train, y_train)
    assert search.best_params_["n_bits"] == 8
    assert len(search.cv_results_["params"]) == 4
    best = search.best_estimator_.compile(X_train)
    np.testing.assert_array_equal(best.predict(X_test, fhe="execute"), best.predict(X_test))


def test_dataframes_lists_and_pickle(iris):
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = fsk.LogisticRegression(n_bits=8, max_iter=1000).fit(X, y)
    np.testing.assert_array_equal(model.feature_names_in_, X.columns)
    assert model.n_features_in_ == 4
    from_list = model.predict(X.values.tolist()[:10])
    np.testing.assert_array_equal(from_list, model.predict(X.iloc[:10]))
    model.compile(X)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(X, fhe="execute"), model.predict(X))
    with pytest.warns(UserWarning, match="feature names"):
        model.predict(X.values[:2])


def test_bad_inputs_raise_clear_errors(cancer):
    X_train, X_test, y_train, _ = cancer
    with pytest.raises(NotFittedError):
        fsk.Ridge().predict(X_test)
    model = fsk.LogisticRegression(n_bits=8).fit(X_train, y_train)
    with pytest.raises(ValueError, match="needs a compiled model: call compile"):
        model.predict(X_test, fhe="execute")
    model.compile(X_train)
    with pytest.raises(ValueError, match="fhe must be 'disable', 'simulate' or 'execute'"):
        model.predict(X_test, fhe="encrypt")
    with pytest.raises(ValueError, match="30 features"):
        model.predict(X_test[:, :5], fhe="execute")
    bad = X_test[:3].copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.predict(bad, fhe="execute")
    bad[1, 2] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        model.predict(bad)
    with pytest.raises(ValueError, match="n_bits.model_inputs must be in 2..16, found 40"):
        fsk.LogisticRegression(n_bits=40).fit(X_train, y_train)
    with pytest.raises(ValueError, match="n_bits.op_weights must be in 2..16, found 1"):
        fsk.LogisticRegression(n_bits={"op_weights": 1}).fit(X_train, y_train)
    with pytest.raises(ValueError, match="unknown role 'weights'"):
        fsk.LogisticRegression(n_bits={"weights": 8}).fit(X_train, y_train)
    with pytest.raises(ValueError, match="n_bits must be an int or a dict"):
        fsk.LogisticRegression(n_bits="8").fit(X_train, y_train)
    with pytest.raises(ValueError, match="not both"):
        model.compile(X_train, p_error=0.01, global_p_error=0.01)
    with pytest.raises(ValueError, match="threads"):
        model.compile(X_train, threads=-1)
    with pytest.raises(ValueError, match="columns"):
        model.dequantize_output(np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ValueError):
        model.fit(X_train[:10], y_train[:11])
    with pytest.raises(AttributeError):
        fsk.LinearSVC().fit(X_train, y_train).predict_proba(X_test)
    # Still usable after every refusal.
    assert model.predict(X_test[:2], fhe="execute").shape == (2,)


@pytest.mark.parametrize("estimator", [fsk.LogisticRegression(max_iter=500), fsk.Ridge()],
                         ids=lambda e: type(e).__name__)
def test_sklearn_estimator_checks(estimator):
    from sklearn.utils.estimator_checks import check_estimator
    expected = {
        # Quantization calibrates on the rows themselves (ranges, rounding feedback): a row
        # repeated twice and a row of weight 2 give the same float model, not the same grid.
        "check_sample_weight_equivalence_on_dense_data": "quantization sees rows, not weights",
    }
    if isinstance(estimator, fsk.Ridge):
        expected["check_non_transformer_estimators_n_iter"] = (
            "scikit-learn's Ridge has no n_iter_ with its default solver either")
    results = check_estimator(estimator, on_fail=None, expected_failed_checks=expected)
    failed = [f"{r['check_name']}: {r['exception']}" for r in results if r["status"] == "failed"]
    assert not failed
    assert len(results) > 50
