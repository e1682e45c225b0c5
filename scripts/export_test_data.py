#!/usr/bin/env python3
"""Export the scikit-learn data sets and float MLPs that the C++ tests and benchmarks use.

Why: the accuracy tests (tests/compiler/accuracy_test.cpp) and the benchmarks need real data
and a trained float model, but must not need Python at run time. This script is run once, by
hand, and its output is checked in; rerunning it with the same scikit-learn version rewrites
the same files.

What it writes, into tests/data/sklearn/ (or the directory given as the first argument), for
each data set NAME in {digits, breast_cancer}:

  NAME_train.csv  one row per training sample: the standardized features (StandardScaler fitted
                  on the training split), then the integer class label last; `%.6g`, no header.
  NAME_test.csv   the same for the test split (scaled with the training statistics), so the C++
                  side needs no scaler.
  NAME_mlp.json   the MLPClassifier trained on the rounded training features:
                    "coefs"          one matrix per layer, as lists [in][out] (sklearn coefs_)
                    "intercepts"     one vector per layer (sklearn intercepts_)
                    "activation"     hidden activation ("relu"); the output layer is linear
                                     logits (argmax = the predicted class index)
                    "classes"        sklearn classes_ (the label of each output index)
                    "n_features", "n_classes", "n_train", "n_test"
                    "test_accuracy"  sklearn predict() on the exported (rounded) test rows
                    "test_predictions"  those predictions, one per test row
                    "sklearn_version", "numpy_version"

Splits: stratified train_test_split(test_size=0.25, random_state=0). Models:
MLPClassifier(hidden_layer_sizes=(64,) for digits, (32,) for breast_cancer, activation="relu",
max_iter=500, random_state=0).

Usage: python3 scripts/export_test_data.py [OUTPUT_DIR]
Needs scikit-learn and numpy (`pip install scikit-learn numpy`); they are not project
dependencies.
"""

import json
import os
import sys
import warnings

try:
    import numpy as np
    import sklearn
    from sklearn.datasets import load_breast_cancer, load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler
except ImportError as error:
    sys.exit(f"{error}: install the exporter's dependencies with `pip install scikit-learn numpy`")

FLOAT_FORMAT = "%.6g"

DATASETS = {
    "digits": (load_digits, (64,)),
    "breast_cancer": (load_breast_cancer, (32,)),
}


def rounded(features):
    """The features exactly as the C++ side reads them back from the CSV."""
    return np.array([[float(FLOAT_FORMAT % v) for v in row] for row in features])


def write_csv(path, features, labels):
    with open(path, "w", encoding="ascii", newline="\n") as f:
        for row, label in zip(features, labels):
            f.write(",".join(FLOAT_FORMAT % v for v in row))
            f.write(f",{int(label)}\n")


def export(name, loader, hidden, out_dir):
    x, y = loader(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=0, stratify=y
    )
    scaler = StandardScaler().fit(x_train)
    x_train = rounded(scaler.transform(x_train))
    x_test = rounded(scaler.transform(x_test))

    model = MLPClassifier(
        hidden_layer_sizes=hidden, activation="relu", max_iter=500, random_state=0
    )
    with warnings.catch_warnings():
        # A non-converged model is still a deterministic, valid fixture; say so, do not fail.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_train, y_train)
    if model.n_iter_ >= model.max_iter:
        print(f"{name}: note: MLP stopped at max_iter={model.max_iter} before converging")

    predictions = model.predict(x_test)
    accuracy = float(np.mean(predictions == y_test))

    write_csv(os.path.join(out_dir, f"{name}_train.csv"), x_train, y_train)
    write_csv(os.path.join(out_dir, f"{name}_test.csv"), x_test, y_test)
    mlp = {
        "dataset": name,
        "hidden_layer_sizes": list(hidden),
        "activation": model.activation,
        "out_activation": model.out_activation_,
        "classes": [int(c) for c in model.classes_],
        "n_features": int(x_train.shape[1]),
        "n_classes": int(len(model.classes_)),
        "n_train": int(x_train.shape[0]),
        "n_test": int(x_test.shape[0]),
        "coefs": [w.tolist() for w in model.coefs_],
        "intercepts": [b.tolist() for b in model.intercepts_],
        "test_accuracy": accuracy,
        "test_predictions": [int(p) for p in predictions],
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
    }
    with open(os.path.join(out_dir, f"{name}_mlp.json"), "w", encoding="ascii") as f:
        json.dump(mlp, f)
        f.write("\n")
    print(
        f"{name}: train {x_train.shape}, test {x_test.shape}, hidden {hidden}, "
        f"iterations {model.n_iter_}, test accuracy {100 * accuracy:.2f}%"
    )


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "tests", "data", "sklearn")
    os.makedirs(out_dir, exist_ok=True)
    for name, (loader, hidden) in DATASETS.items():
        export(name, loader, hidden, out_dir)


if __name__ == "__main__":
    main()
