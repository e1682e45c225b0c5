"""End-to-end benchmark of fheml.sklearn's linear models (issue 4's targets).

Accuracy: LogisticRegression at n_bits=8 on breast cancer, iris, wine and digits, and
LinearRegression / Ridge (R2) on diabetes, each FHE model run with fhe="execute" on the whole
test split and compared with scikit-learn's float model; every one of the 12 estimators on its
data set. Latency: encrypt + run + decrypt per row of breast cancer (30 features) on one thread,
median of repetitions, for several rows per call.

    .venv/bin/python bench/linear_models.py [--out bench/results/linear-models-DATE.json]

Prints a Markdown table (bench/README.md quotes it) and writes the numbers as JSON.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time

import numpy as np
import sklearn.linear_model as lm
import sklearn.svm as svm
from sklearn.datasets import (load_breast_cancer, load_diabetes, load_digits, load_iris,
                              load_wine)
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from fheml import sklearn as fsk

LOADERS = {"breast_cancer": load_breast_cancer, "iris": load_iris, "wine": load_wine,
           "digits": load_digits, "diabetes": load_diabetes}

# (estimator, scikit-learn twin, data set, hyper-parameters)
CASES = [
    (fsk.LogisticRegression, lm.LogisticRegression, "breast_cancer", {"max_iter": 2000}),
    (fsk.LogisticRegression, lm.LogisticRegression, "iris", {"max_iter": 2000}),
    (fsk.LogisticRegression, lm.LogisticRegression, "wine", {"max_iter": 2000}),
    (fsk.LogisticRegression, lm.LogisticRegression, "digits", {"max_iter": 2000}),
    (fsk.LinearSVC, svm.LinearSVC, "breast_cancer", {}),
    (fsk.SGDClassifier, lm.SGDClassifier, "breast_cancer", {"random_state": 0}),
    (fsk.LinearRegression, lm.LinearRegression, "diabetes", {}),
    (fsk.Ridge, lm.Ridge, "diabetes", {}),
    (fsk.Lasso, lm.Lasso, "diabetes", {"alpha": 0.1}),
    (fsk.ElasticNet, lm.ElasticNet, "diabetes", {"alpha": 0.01}),
    (fsk.LinearSVR, svm.LinearSVR, "diabetes", {"C": 10.0, "max_iter": 10000}),
    (fsk.SGDRegressor, lm.SGDRegressor, "diabetes", {"random_state": 0}),
    (fsk.PoissonRegressor, lm.PoissonRegressor, "diabetes", {"alpha": 0.01}),
    (fsk.GammaRegressor, lm.GammaRegressor, "diabetes", {"alpha": 0.01}),
    (fsk.TweedieRegressor, lm.TweedieRegressor, "diabetes", {"power": 1.5, "alpha": 0.01}),
]


def split(name: str):
    X, y = LOADERS[name](return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def accuracy_rows(n_bits: int) -> list[dict]:
    rows = []
    for ours, theirs, data, kw in CASES:
        X_train, X_test, y_train, y_test = split(data)
        model = ours(n_bits=n_bits, **kw).fit(X_train, y_train).compile(X_train)
        float_model = theirs(**kw).fit(X_train, y_train)
        fhe = model.predict(X_test, fhe="execute")
        classifier = hasattr(float_model, "classes_")
        score = (lambda p: float(np.mean(p == y_test))) if classifier else (
            lambda p: float(r2_score(y_test, p)))
        rows.append({
            "model": ours.__name__, "dataset": data, "n_bits": n_bits,
            "metric": "accuracy" if classifier else "r2",
            "float": score(float_model.predict(X_test)), "fhe": score(fhe),
            "fhe_equals_disable": bool(np.array_equal(fhe, model.predict(X_test))),
            "test_rows": len(X_test), "features": X_test.shape[1],
        })
    return rows


def latency_rows(repetitions: int) -> list[dict]:
    X_train, X_test, y_train, _ = split("breast_cancer")
    X = np.vstack([X_train, X_test])
    model = fsk.LogisticRegression(n_bits=8, max_iter=2000).fit(X_train, y_train)
    model.compile(X_train, threads=1)
    model.fhe_circuit.keygen()
    rows = []
    for per_call in (1, 16, 64):
        n = 256
        samples = []
        for _ in range(repetitions):
            start = time.perf_counter()
            for i in range(0, n, per_call):
                model.predict_proba(X[i:i + per_call], fhe="execute")
            samples.append((time.perf_counter() - start) / n * 1e3)
        last = model.fhe_circuit.statistics()["last_run"]
        rows.append({
            "model": "LogisticRegression", "dataset": "breast_cancer", "features": X.shape[1],
            "threads": 1, "rows_per_call": per_call, "repetitions": repetitions,
            "median_ms_per_row": statistics.median(samples),
            "min_ms_per_row": min(samples), "max_ms_per_row": max(samples),
            "last_call_ms_per_row": {k: last[k] / last["samples"] * 1e3
                                     for k in ("encrypt_s", "run_s", "decrypt_s")},
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-bits", type=int, default=8)
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument("--out", default=None, help="JSON file to write")
    args = parser.parse_args()
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "accuracy": accuracy_rows(args.n_bits),
        "latency": latency_rows(args.repetitions),
    }
    print(f"| model | data set | metric | float | FHE (execute) | FHE - float | execute == disable |")
    print("|---|---|---|---|---|---|---|")
    for r in result["accuracy"]:
        print(f"| {r['model']} | {r['dataset']} | {r['metric']} | {r['float']:.4f} | "
              f"{r['fhe']:.4f} | {r['fhe'] - r['float']:+.4f} | {r['fhe_equals_disable']} |")
    print()
    print("| rows per call | median ms/row (1 thread) | min | max | encrypt / run / decrypt ms/row |")
    print("|---|---|---|---|---|")
    for r in result["latency"]:
        b = r["last_call_ms_per_row"]
        print(f"| {r['rows_per_call']} | {r['median_ms_per_row']:.3f} | {r['min_ms_per_row']:.3f} "
              f"| {r['max_ms_per_row']:.3f} | {b['encrypt_s']:.3f} / {b['run_s']:.3f} / "
              f"{b['decrypt_s']:.3f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
