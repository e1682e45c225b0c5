"""Security levels through the Python API: 128 bits by default, 132 on request (issue 15)."""
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from fheml import sklearn as fsk


def test_a_132_bit_tree_meets_it_and_computes_the_same():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    model = fsk.DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    model.compile(X)
    assert model.fhe_circuit.statistics()["security_bits"] == 128
    assert "security: 128 bits" in model.fhe_circuit.report()
    model.compile(X, security_level=132)
    assert model.fhe_circuit.statistics()["security_bits"] == 132
    assert "security: 132 bits" in model.fhe_circuit.report()
    np.testing.assert_array_equal(model.predict(X[:4], fhe="execute"), model.predict(X[:4]))
