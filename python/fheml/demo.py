"""python -m fheml.demo: a first encrypted prediction on two scikit-learn data sets.

Breast cancer (classification, LogisticRegression) and diabetes (regression, Ridge): each model
is trained in the clear, quantized to 8 bits, compiled, and every test row is encrypted, run on
ciphertexts and decrypted. Prints the float, quantized and FHE scores, the latency per sample
and the key and ciphertext sizes; exits with 1 if any encrypted result differs from the clear
quantized one.
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


def _run(name: str, model, X, y, metric: str, threads: int) -> bool:
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    model, float_model = model.fit_benchmark(X_train, y_train)
    model.compile(X_train, threads=threads)
    model.fhe_circuit.keygen()
    clear = model.predict(X_test, fhe="disable")
    # Three encrypted passes over the test rows (fresh encryptions each time): the median time,
    # and every pass checked against the clear quantized model.
    times, same = [], len(X_test)
    for _ in range(3):
        start = time.perf_counter()
        encrypted = model.predict(X_test, fhe="execute")
        times.append((time.perf_counter() - start) / len(X_test) * 1e3)
        same = min(same, int(np.sum(encrypted == clear)))
    per_row_ms = sorted(times)[1]
    score = (lambda p: np.mean(p == y_test)) if metric == "accuracy" else (
        lambda p: 1 - np.sum((y_test - p) ** 2) / np.sum((y_test - y_test.mean()) ** 2))
    stats = model.fhe_circuit.statistics()
    print(f"{name}: {type(model).__name__}(n_bits={model.n_bits}), {X.shape[1]} features, "
          f"{len(X_test)} test rows")
    print(f"  {metric:>8}: float {score(float_model.predict(X_test)):.4f}   quantized "
          f"{score(clear):.4f}   FHE {score(encrypted):.4f}")
    print(f"  FHE == clear quantized on {same} of {len(X_test)} rows (each of 3 passes)")
    print(f"  latency: {per_row_ms:.3f} ms per row (median of 3 passes; encrypt + run + decrypt, "
          f"{'all cores' if threads == 0 else f'{threads} thread(s)'})")
    print(f"  keys: secret key {stats['secret_key_bits']} bits (stays with the client), "
          f"evaluation keys {_size(stats['evaluation_key_bytes'])}; per row: "
          f"{_size(stats['input_bytes'])} up, {_size(stats['output_bytes'])} down; "
          f"{stats['bootstraps']} bootstraps, N = {stats['polynomial_size']}")
    return same == len(X_test)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fheml.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=0, help="cores for execute (0: all)")
    args = parser.parse_args(argv)
    ok = _run("breast cancer", fsk.LogisticRegression(n_bits=8), *load_breast_cancer(return_X_y=True),
              "accuracy", args.threads)
    ok &= _run("diabetes", fsk.Ridge(n_bits=8, alpha=1.0), *load_diabetes(return_X_y=True), "R2",
               args.threads)
    if not ok:
        print("error: an encrypted result differs from the clear quantized one", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
