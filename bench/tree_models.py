"""End-to-end benchmark of fheml's tree models (issue 10's table).

For DT depth 4-6, RF 50 x depth 4, GB / HistGB 50 x depth 3 and XGB 50 x depth 3 on breast
cancer, wine and digits: accuracy of the float model and of fheml's circuit (the whole test
split in `disable`, which `execute` equals; the rows timed run encrypted and are checked
against it), bootstraps per row and their width, the count Concrete ML's scheme needs for the
same trees (one comparison per internal node, one equality per leaf: internal nodes + leaves),
latency per row (encrypt + run + decrypt, keys made beforehand) on 1 and 2 threads, and the
evaluation key size.

    .venv/bin/python bench/tree_models.py [--rows 2] [--out bench/results/tree-models-DATE.json]

Prints a Markdown table (bench/README.md quotes it) and writes the numbers as JSON. Needs
xgboost (`pip install 'fheml[xgboost]'`); without it the XGB rows are skipped.
"""
from __future__ import annotations

import argparse
import datetime
import statistics
import time

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.model_selection import train_test_split

from _common import write_results  # noqa: E402  (bench/ on sys.path)
from fheml import sklearn as fsk

try:
    from fheml.xgboost import XGBClassifier
except ImportError:
    XGBClassifier = None

LOADERS = {"breast_cancer": load_breast_cancer, "wine": load_wine, "digits": load_digits}
MODELS = [
    ("DT depth 4", lambda: fsk.DecisionTreeClassifier(max_depth=4, random_state=0)),
    ("DT depth 6", lambda: fsk.DecisionTreeClassifier(max_depth=6, random_state=0)),
    ("RF 50 x depth 4", lambda: fsk.RandomForestClassifier(n_estimators=50, max_depth=4,
                                                           random_state=0)),
    ("GB 50 x depth 3", lambda: fsk.GradientBoostingClassifier(n_estimators=50, max_depth=3,
                                                               random_state=0)),
    ("HistGB 50 x depth 3", lambda: fsk.HistGradientBoostingClassifier(max_iter=50, max_depth=3,
                                                                       random_state=0)),
    ("XGB 50 x depth 3", lambda: XGBClassifier(n_estimators=50, max_depth=3, random_state=0)),
]


def latency(model, X, threads: int, rows: int) -> tuple[float, bool]:
    """Median seconds per row over `rows` calls of one row, and whether each equals disable."""
    model.compile(X, threads=threads)
    model.fhe_circuit.keygen()
    times, equal = [], True
    for r in range(rows):
        row = X[r:r + 1]
        start = time.perf_counter()
        encrypted = model.predict_proba(row, fhe="execute")
        times.append(time.perf_counter() - start)
        equal &= bool(np.array_equal(encrypted, model.predict_proba(row, fhe="disable")))
    return statistics.median(times), equal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2, help="rows timed per model and thread count")
    parser.add_argument("--datasets", default=",".join(LOADERS))
    parser.add_argument("--out", default=f"bench/results/tree-models-{datetime.date.today()}.json")
    args = parser.parse_args()
    results = []
    header = ("| data set | model | float acc | FHE acc | bootstraps/row (bits) | Concrete ML "
              "scheme | ratio | s/row 1 thread | s/row 2 threads | eval. keys |")
    print(header)
    print("|---" * 10 + "|")
    for data in args.datasets.split(","):
        X, y = LOADERS[data](return_X_y=True)
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0,
                                                            stratify=y)
        for name, make in MODELS:
            if name.startswith("XGB") and XGBClassifier is None:
                continue
            model, float_model = make().fit_benchmark(X_train, y_train)
            stats = model.fhe_circuit.tree_statistics()
            row = {
                "dataset": data, "model": name, "n_bits": model.n_bits,
                "float_accuracy": float(float_model.score(X_test, y_test)),
                "fhe_accuracy": float(model.score(X_test, y_test)),
                "test_rows": len(X_test), **{f"tree_{k}": v for k, v in stats.items()},
            }
            for threads in (1, 2):
                seconds, equal = latency(model, X_test, threads, args.rows)
                row[f"seconds_per_row_{threads}_threads"] = seconds
                row[f"execute_equals_disable_{threads}_threads"] = equal
            s = model.fhe_circuit.statistics()
            row.update(bootstraps=s["bootstraps"], max_bit_width=s["max_bit_width"],
                       polynomial_size=s["polynomial_size"],
                       evaluation_key_bytes=s["evaluation_key_bytes"],
                       input_bytes=s["input_bytes"])
            results.append(row)
            print(f"| {data} | {name} | {row['float_accuracy']:.4f} | {row['fhe_accuracy']:.4f} | "
                  f"{stats['lookups']} ({stats['lookup_bits']}) | "
                  f"{stats['concrete_ml_bootstraps']} | "
                  f"{stats['lookups'] / stats['concrete_ml_bootstraps']:.2f} | "
                  f"{row['seconds_per_row_1_threads']:.3f} | {row['seconds_per_row_2_threads']:.3f} | "
                  f"{s['evaluation_key_bytes'] / 2**20:.1f} MiB |", flush=True)
    write_results(args.out, results, rows_timed=args.rows)


if __name__ == "__main__":
    main()
