"""fheml.sklearn.NeuralNetClassifier / NeuralNetRegressor: networks trained for FHE
(quantization-aware, torch underneath), with the estimators' conventions."""
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier as SkMLP
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.preprocessing import StandardScaler

pytest.importorskip("torch")
from fheml.sklearn import NeuralNetClassifier, NeuralNetRegressor  # noqa: E402


def _split(loader):
    X, y = loader(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0)
    scaler = StandardScaler().fit(Xtr)
    return scaler.transform(Xtr), scaler.transform(Xte), ytr, yte


def _float_accuracy(Xtr, Xte, ytr, yte, hidden):
    return SkMLP(hidden_layer_sizes=hidden, max_iter=1000, random_state=0).fit(Xtr, ytr).score(Xte, yte)


@pytest.mark.parametrize("loader, hidden", [(load_breast_cancer, (30, 30)),
                                            (load_digits, (64,))])
def test_4_bit_network_close_to_float(loader, hidden):
    Xtr, Xte, ytr, yte = _split(loader)
    models = [NeuralNetClassifier(hidden_layer_sizes=hidden, random_state=seed).fit(Xtr, ytr)
              for seed in (1, 2, 3)]
    float_acc = _float_accuracy(Xtr, Xte, ytr, yte, hidden)
    # 4-bit activations and weights, 4-bit lookups: on average over 3 seeds within 2.5 points
    # of scikit-learn's float MLP of the same shape here (the target, against the same
    # network trained in float, is 1 point: bench/README.md "Networks", measured over 5 splits x
    # 4 seeds). One seed alone spreads over +-3 test rows of breast cancer's 171 (0.94-0.98 for
    # (30, 30) here, mean 1.6 points below this float MLP; digits: 0.1 above, 2026-12-03).
    scores = [m.score(Xte, yte) for m in models]
    assert np.mean(scores) >= float_acc - 0.025, (scores, float_acc)
    model = models[0]
    stats = model.fhe_circuit.statistics()
    assert stats["bootstraps"] == sum(hidden) and stats["polynomial_size"] == 2048
    assert "max lookup bits 4" in model.fhe_circuit.report()


def test_qat_within_a_point_of_the_same_network_trained_in_float():
    # Issue 12's target for the built-in network: within 1 point of the float network. The
    # reference is the same network, seeds and schedule without fake quantization; the mean runs
    # over 5 splits x 2 seeds because one split's 171 test rows move a seed's score by +-3 rows
    # (0.58 points each). Measured 2026-12-03: 0.70 points (96.32% vs 97.02%; 5 x 4 seeds: 0.32).
    import torch

    from fheml import _qat
    X, y = load_breast_cancer(return_X_y=True)
    d = NeuralNetClassifier()
    qat, same = [], []
    for split in range(5):
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=split)
        scaler = StandardScaler().fit(Xtr)
        Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
        for seed in (1, 2):
            qat.append(NeuralNetClassifier(hidden_layer_sizes=(30, 30), random_state=seed)
                       .fit(Xtr, ytr).score(Xte, yte))
            net, _ = _qat.train(Xtr, ytr, (30, 30), 2, True, 4, 4, 4, d.max_epochs, d.lr,
                                d.batch_size, d.weight_decay, seed, fake_quantization=False)
            with torch.no_grad():
                logits = net(torch.tensor(Xte, dtype=torch.float32)).numpy()
            same.append(np.mean(logits.argmax(1) == yte))
    assert np.mean(same) - np.mean(qat) <= 0.01, (np.mean(qat), np.mean(same))


def test_encrypted_equals_clear_pickle_clone_grid_search():
    Xtr, Xte, ytr, yte = _split(load_breast_cancer)
    model = NeuralNetClassifier(hidden_layer_sizes=(8,), n_bits=3, max_epochs=30,
                                random_state=0).fit(Xtr, ytr)
    model.compile(Xtr, rounding_method="exact")
    np.testing.assert_array_equal(model.predict_proba(Xte[:2], fhe="execute"),
                                  model.predict_proba(Xte[:2]))
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict_proba(Xte), model.predict_proba(Xte))
    assert clone(model).get_params() == model.get_params()
    grid = GridSearchCV(NeuralNetClassifier(max_epochs=10, random_state=0),
                        {"hidden_layer_sizes": [(4,), (8,)], "n_bits": [3, 4]}, cv=2)
    grid.fit(Xtr, ytr)
    assert grid.best_params_["n_bits"] in (3, 4)


def test_regressor():
    X, y = load_diabetes(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(StandardScaler().fit_transform(X), y, test_size=0.3,
                                          random_state=0)
    model = NeuralNetRegressor(hidden_layer_sizes=(16,), max_epochs=100, lr=0.01,
                               random_state=0).fit(Xtr, ytr)
    assert model.predict(Xte).shape == (len(Xte),)
    with pytest.warns(Warning):  # scikit-learn's ConvergenceWarning
        float_r2 = SkMLPRegressor(hidden_layer_sizes=(16,), max_iter=2000, random_state=0).fit(Xtr, ytr).score(Xte, yte)
    assert model.score(Xte, yte) >= float_r2 - 0.05, (model.score(Xte, yte), float_r2)


def test_bad_parameters():
    Xtr, _, ytr, _ = _split(load_breast_cancer)
    for bad, message in [({"n_bits": 1}, "n_bits"), ({"n_bits": "4"}, "n_bits"),
                         ({"rounding_bits": 2}, "rounding_bits"),
                         ({"hidden_layer_sizes": ()}, "hidden_layer_sizes"),
                         ({"max_epochs": 0}, "max_epochs"), ({"lr": -1.0}, "lr")]:
        with pytest.raises(ValueError, match=message):
            NeuralNetClassifier(**bad).fit(Xtr, ytr)
    with pytest.raises(ValueError, match="single class"):
        NeuralNetClassifier(max_epochs=1).fit(Xtr, np.zeros(len(Xtr)))
    with pytest.raises(ValueError, match="needs a compiled model"):
        NeuralNetClassifier(max_epochs=1, hidden_layer_sizes=(2,)).fit(Xtr, ytr).predict(
            Xtr, fhe="execute")
