#!/usr/bin/env python3
"""Writes examples/data/breast_cancer_boosting.trees: the tree file examples/tree_ensemble.cpp
loads (a C++ user's way in without Python).

A scikit-learn GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0) is
trained on tests/data/sklearn/breast_cancer_train.csv (the standardized rows the C++ tests use)
and written in fheml's text form by fheml's own reader of scikit-learn trees. Run once, by hand,
from the repository root with fheml installed (`.venv/bin/python scripts/export_tree_example.py`);
the output is checked in.
"""
import sys
from pathlib import Path

import numpy as np
import sklearn
from sklearn.ensemble import GradientBoostingClassifier

from fheml.sklearn import GradientBoostingClassifier as FheGradientBoosting

ROOT = Path(__file__).resolve().parents[1]


def load(name):
    data = np.loadtxt(ROOT / "tests" / "data" / "sklearn" / name, delimiter=",")
    return data[:, :-1], data[:, -1].astype(int)


def main(out=ROOT / "examples" / "data" / "breast_cancer_boosting.trees"):
    X, y = load("breast_cancer_train.csv")
    X_test, y_test = load("breast_cancer_test.csv")
    fitted = GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0).fit(X, y)
    text = FheGradientBoosting.from_sklearn_model(fitted, X).fhe_circuit.to_text()
    accuracy = fitted.score(X_test, y_test)
    header = (f"# GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0) from "
              f"scikit-learn {sklearn.__version__},\n# trained on "
              f"tests/data/sklearn/breast_cancer_train.csv by scripts/export_tree_example.py;\n"
              f"# float accuracy on breast_cancer_test.csv: {accuracy:.4f}\n")
    Path(out).write_text(header + text)
    print(f"wrote {out} (float test accuracy {accuracy:.4f})")


if __name__ == "__main__":
    main(*sys.argv[1:])
