"""python -m fheml.demo: a first encrypted prediction on two scikit-learn data sets.

Breast cancer (classification, LogisticRegression) and diabetes (regression, Ridge): each model
is trained in the clear, quantized to 8 bits, compiled, and every test row is encrypted, run on
ciphertexts and decrypted. Then a tree ensemble (GradientBoostingClassifier, 20 trees) on breast
cancer, whose leaves are bootstrapped: its first 40 test rows run encrypted. Prints the float,
quantized and FHE scores, the latency per sample and the key and ciphertext sizes; exits with 1
if any encrypted result differs from the clear quantized one.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from fheml import sklearn as fsk


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def _run(name: str, model, X, y, metric: str, threads: int, rows: int | None = None,
         passes: int = 3) -> bool:
    """Every test row (or the first `rows`) encrypted `passes` times."""
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    model, float_model = model.fit_benchmark(X_train, y_train)
    model.compile(X_train, threads=threads)
    model.fhe_circuit.keygen()
    clear = model.predict(X_test, fhe="disable")
    n = len(X_test) if rows is None else min(rows, len(X_test))
    # Encrypted passes over the test rows (fresh encryptions each time): the median time, and
    # every pass checked against the clear quantized model.
    times, same = [], n
    for _ in range(passes):
        start = time.perf_counter()
        encrypted = model.predict(X_test[:n], fhe="execute")
        times.append((time.perf_counter() - start) / n * 1e3)
        same = min(same, int(np.sum(encrypted == clear[:n])))
    per_row_ms = sorted(times)[len(times) // 2]

    def score(p, truth=y_test):
        if metric == "accuracy":
            return np.mean(p == truth)
        return 1 - np.sum((truth - p) ** 2) / np.sum((truth - truth.mean()) ** 2)

    stats = model.fhe_circuit.statistics()
    print(f"{name}: {type(model).__name__}(n_bits={model.n_bits}), {X.shape[1]} features, "
          f"{len(X_test)} test rows")
    fhe = (f"FHE {score(encrypted):.4f}" if n == len(X_test) else
           f"(first {n} rows: quantized {score(clear[:n], y_test[:n]):.4f}   "
           f"FHE {score(encrypted, y_test[:n]):.4f})")
    print(f"  {metric:>8}: float {score(float_model.predict(X_test)):.4f}   quantized "
          f"{score(clear):.4f}   {fhe}")
    print(f"  FHE == clear quantized on {same} of {n} rows (each of {passes} pass"
          f"{'es' if passes > 1 else ''})")
    median = f"median of {passes} passes; " if passes > 1 else ""
    print(f"  latency: {per_row_ms:.3f} ms per row ({median}encrypt + run + decrypt, "
          f"{'all cores' if threads == 0 else f'{threads} thread(s)'})")
    print(f"  keys: secret key {stats['secret_key_bits']} bits (stays with the client), "
          f"evaluation keys {_size(stats['evaluation_key_bytes'])}; per row: "
          f"{_size(stats['input_bytes'])} up, {_size(stats['output_bytes'])} down; "
          f"{stats['bootstraps']} bootstraps, N = {stats['polynomial_size']}")
    return same == n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fheml.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=0, help="cores for execute (0: all)")
    args = parser.parse_args(argv)
    ok = _run("breast cancer", fsk.LogisticRegression(n_bits=8), *load_breast_cancer(return_X_y=True),
              "accuracy", args.threads)
    ok &= _run("diabetes", fsk.Ridge(n_bits=8, alpha=1.0), *load_diabetes(return_X_y=True), "R2",
               args.threads)
    trees = fsk.GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0)
    ok &= _run("breast cancer", trees, *load_breast_cancer(return_X_y=True), "accuracy",
               args.threads, rows=40, passes=1)
    tree_stats = trees.fhe_circuit.tree_statistics()
    print(f"  trees: {tree_stats['trees']} trees, {tree_stats['internal_nodes']} splits (none "
          f"bootstrapped), {tree_stats['leaves']} leaves; {tree_stats['lookups']} bootstraps of "
          f"{tree_stats['lookup_bits']} bits per row (Concrete ML's scheme: "
          f"{tree_stats['concrete_ml_bootstraps']})")
    if not ok:
        print("error: an encrypted result differs from the clear quantized one", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
