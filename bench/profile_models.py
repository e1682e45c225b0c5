"""Whole models at both security profiles (issue 15): what "ind-cpa-d" costs.

Each model is fitted once on breast cancer (70/30 split, random_state 0, standardized) and
compiled twice from the same training rows: `profile="standard"` (128-bit keys, p_error 2^-40
per bootstrap) and `profile="ind-cpa-d"` (132-bit keys, every bootstrap and output at most
2^-64: for deployments where decrypted results may reach the server). Per profile: the
parameters chosen, bootstraps per row and their width, evaluation keys as sent, key generation
time, encrypt + run + decrypt per row on one thread (median over `--rows` single-row calls,
each compared with `disable`: trees and linear models are exact; a network's approximate
rounding may read a neighbouring entry near a tie), and the accuracy of `simulate` on the whole test split (the
noise model at that profile's budget; `disable` is the same circuit for both).

    .venv/bin/python bench/profile_models.py [--rows 5] [--out bench/results/profile-models-DATE.json]
    .venv/bin/python bench/profile_models.py --table bench/results/profile-models-DATE.json

Prints a Markdown table (bench/README.md quotes it) and writes the numbers as JSON. The
network row needs torch (`pip install 'fheml[torch]'`); without it the row is skipped.
"""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
import warnings

import numpy as np

import fheml
from _common import breast_cancer_split, write_results  # noqa: E402  (bench/ on sys.path)
from fheml import sklearn as fsk

PROFILES = ("standard", "ind-cpa-d")
MODELS = [
    ("LogisticRegression", lambda: fsk.LogisticRegression()),
    ("DT depth 4", lambda: fsk.DecisionTreeClassifier(max_depth=4, random_state=0)),
    ("RF 50 x depth 4", lambda: fsk.RandomForestClassifier(n_estimators=50, max_depth=4,
                                                           random_state=0)),
    ("GB 50 x depth 3", lambda: fsk.GradientBoostingClassifier(n_estimators=50, max_depth=3,
                                                               random_state=0)),
    ("NeuralNetClassifier 30-30-30-2", lambda: fsk.NeuralNetClassifier(
        hidden_layer_sizes=(30, 30), random_state=1)),
]


def measure(model, X_train, X_test, y_test, profile: str, rows: int) -> dict:
    model.compile(X_train, threads=1, profile=profile)
    circuit = model.fhe_circuit
    start = time.perf_counter()
    circuit.keygen()
    keygen_s = time.perf_counter() - start
    times, equal = [], True
    for r in range(rows):
        row = X_test[r:r + 1]
        start = time.perf_counter()
        encrypted = model.predict(row, fhe="execute")
        times.append(time.perf_counter() - start)
        equal &= bool(np.array_equal(encrypted, model.predict(row, fhe="disable")))
    s = circuit.statistics()
    return {
        "profile": s["profile"], "security_bits": s["security_bits"],
        "log2_p_error": s["log2_p_error"], "global_p_error": s["global_p_error"],
        "parameters": s["parameters"], "lwe_dimension": s["lwe_dimension"],
        "polynomial_size": s["polynomial_size"], "bootstraps": s["bootstraps"],
        "max_lookup_bits": s["max_lookup_bits"], "evaluation_key_bytes": s["evaluation_key_bytes"],
        "keygen_s": keygen_s, "seconds_per_row": statistics.median(times),
        "execute_equals_disable": equal,
        "disable_accuracy": float(np.mean(model.predict(X_test, fhe="disable") == y_test)),
        "simulate_accuracy": float(np.mean(model.predict(X_test, fhe="simulate") == y_test)),
    }


HEADER = ("| model | profile | parameters (n, N) | bootstraps (bits) | eval. keys sent | keygen s "
          "| ms/row 1 thread | time ratio | keys ratio | acc. disable / simulate | "
          "execute == disable |\n" + "|---" * 11 + "|")


def table_row(r: dict, results: list[dict]) -> str:
    """One Markdown row; the ratios are to the same model's standard profile."""
    base = next(b for b in results if b["model"] == r["model"])
    lookups = r["bootstraps"] > 0
    return (f"| {r['model']} | {r['profile']} ({r['security_bits']} bits, "
            f"2^{r['log2_p_error']:.0f}) | "
            f"{r['lwe_dimension'] if lookups else '-'}, {r['polynomial_size']} | "
            f"{r['bootstraps']} ({r['max_lookup_bits']}) | "
            f"{r['evaluation_key_bytes'] / 2**20:.1f} MiB | {r['keygen_s']:.2f} | "
            f"{1e3 * r['seconds_per_row']:.4g} | "
            f"{r['seconds_per_row'] / base['seconds_per_row']:.2f} | "
            + (f"{r['evaluation_key_bytes'] / base['evaluation_key_bytes']:.2f}" if lookups
               else "-")
            + f" | {r['disable_accuracy']:.4f} / {r['simulate_accuracy']:.4f} | "
            f"{'yes' if r['execute_equals_disable'] else 'no'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=5, help="rows timed per model and profile")
    parser.add_argument("--out",
                        default=f"bench/results/profile-models-{datetime.date.today()}.json")
    parser.add_argument("--table", help="print the table of a results JSON and exit")
    args = parser.parse_args()
    if args.table:
        with open(args.table) as f:
            results = json.load(f)["results"]
        print(HEADER)
        for r in results:
            print(table_row(r, results))
        return
    # Test rows a little past the training range are clipped, the same in both profiles.
    warnings.simplefilter("ignore", fheml.InputRangeWarning)
    X_train, X_test, y_train, y_test = breast_cancer_split()
    print(HEADER)
    results = []
    for name, make in MODELS:
        try:
            model = make().fit(X_train, y_train)
        except ImportError as e:  # the network row needs torch
            print(f"skipped {name}: {e}")
            continue
        for profile in PROFILES:
            results.append({"model": name,
                            **measure(model, X_train, X_test, y_test, profile, args.rows)})
            print(table_row(results[-1], results), flush=True)
    write_results(args.out, results, rows_timed=args.rows)


if __name__ == "__main__":
    main()
