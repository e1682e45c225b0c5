"""Encrypted batch inference on a Dask LocalCluster: 1 vs 2 worker processes (issue 14).

For a boosted tree ensemble (GB 50 x depth 3) and fheml's NeuralNetClassifier 30-30-30-2 on
breast cancer (70/30 split, standardized): rows per second of `predict_proba(X, fhe="execute",
client=dask_client)` on a LocalCluster of 1 and 2 worker processes (one thread each), against
the same rows run in this process on one thread; then one row at a time (fewer rows than
worker threads: split by bootstraps, stage by stage, across the workers), median of 3
latencies on 1 and 2 workers and in this process; what each worker receives once (circuit and
evaluation keys) and per row (request and reply bytes); the caller's own cost per row (encrypt
and decrypt); every tree result checked equal to the local run (a network's approximate rounding may
differ near ties: the share of equal rows is recorded). Then the projection for N machines
of C cores from these measured costs.

    .venv/bin/python bench/dask_models.py [--rows 32] [--out bench/results/distributed-DATE.json]

Needs dask (`pip install 'fheml[dask]'`) and torch for the network row.
"""
from __future__ import annotations

import argparse
import datetime
import time
import warnings

import numpy as np

import fheml
from _common import breast_cancer_split, write_results  # noqa: E402  (bench/ on sys.path)
from fheml import sklearn as fsk

MODELS = [
    ("GB 50 x depth 3", lambda: fsk.GradientBoostingClassifier(n_estimators=50, max_depth=3,
                                                               random_state=0)),
    ("NeuralNetClassifier 30-30-30-2", lambda: fsk.NeuralNetClassifier(
        hidden_layer_sizes=(30, 30), random_state=1)),
]


ONE_ROW_REPEATS = 3


def cluster_run(model, X: np.ndarray, workers: int, expected: np.ndarray, exact: bool) -> dict:
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0", silence_logs=40) as cluster, Client(cluster) as c:
        c.wait_for_workers(workers)
        model.predict_proba(X[:2], fhe="execute", client=c)  # ships circuit and keys, warms up
        start = time.perf_counter()
        proba = model.predict_proba(X, fhe="execute", client=c)
        seconds = time.perf_counter() - start
        # One row at a time: fewer rows than worker threads, so its bootstraps are split
        # stage by stage across the workers (the linear parts run here).
        one_row = []
        for i in range(ONE_ROW_REPEATS):
            start = time.perf_counter()
            p = model.predict_proba(X[i:i + 1], fhe="execute", client=c)
            one_row.append(time.perf_counter() - start)
            if exact and not np.array_equal(p, expected[i:i + 1]):
                raise SystemExit(f"{workers} workers: split row {i} differs from the local run")
    # Trees are exact: every row equals the local run. A network's approximate rounding reads a
    # neighbouring entry near a tie with a probability (other keys, other noise): most rows.
    same = float(np.mean(np.all(proba == expected, axis=1)))
    if exact and same < 1.0:
        raise SystemExit(f"{workers} workers: a row differs from the local encrypted run")
    return {"workers": workers, "seconds": seconds, "rows_per_second": len(X) / seconds,
            "rows_equal_to_local_run": same,
            "one_row_split_seconds_median": float(np.median(one_row))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--out", default=f"bench/results/distributed-{datetime.date.today()}.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore", fheml.InputRangeWarning)
    X_train, X_test, y_train, _ = breast_cancer_split()
    rows = X_test[:args.rows]
    results = []
    for name, make in MODELS:
        try:
            model = make().fit(X_train, y_train)
        except ImportError as e:
            print(f"skipped {name}: {e}")
            continue
        model.compile(X_train, threads=1)
        model.fhe_circuit.keygen()
        start = time.perf_counter()
        local = model.predict_proba(rows, fhe="execute")
        local_seconds = time.perf_counter() - start
        local_one_row = []
        for i in range(ONE_ROW_REPEATS):
            start = time.perf_counter()
            model.predict_proba(rows[i:i + 1], fhe="execute")
            local_one_row.append(time.perf_counter() - start)
        exact = not name.startswith("NeuralNet")
        runs = [cluster_run(model, rows, w, local, exact) for w in (1, 2)]
        # What travels, and the caller's share, measured with the model's own shipment client.
        shipment = model._shipment
        chunk = rows[:8]
        start = time.perf_counter()
        request = shipment.client.quantize_encrypt_serialize(chunk)
        encrypt_s = (time.perf_counter() - start) / len(chunk)
        reply = fheml._core.Server.from_bytes(shipment.server_bytes).run(
            request, shipment.client.evaluation_keys())
        start = time.perf_counter()
        shipment.client.deserialize_decrypt_dequantize(reply)
        decrypt_s = (time.perf_counter() - start) / len(chunk)
        r = {
            "model": name, "rows": len(rows),
            "bootstraps_per_row": model.fhe_circuit.statistics()["bootstraps"],
            "local_1_thread_rows_per_second": len(rows) / local_seconds,
            "runs": runs,
            "speedup_2_workers": runs[1]["rows_per_second"] / runs[0]["rows_per_second"],
            "local_1_thread_one_row_seconds_median": float(np.median(local_one_row)),
            "one_row_split_speedup_2_workers": (runs[0]["one_row_split_seconds_median"]
                                                / runs[1]["one_row_split_seconds_median"]),
            "lookup_stages": fheml._core.Server.from_bytes(model._shipment.server_bytes)
            .stage_count,
            "circuit_bytes": len(shipment.server_bytes),
            "evaluation_key_bytes": len(shipment.client.evaluation_keys()),
            "request_bytes_per_row": len(request) / len(chunk),
            "reply_bytes_per_row": len(reply) / len(chunk),
            "caller_encrypt_s_per_row": encrypt_s, "caller_decrypt_s_per_row": decrypt_s,
        }
        results.append(r)
        print(f"{name}: local 1 thread {r['local_1_thread_rows_per_second']:.3f} rows/s; "
              f"1 worker {runs[0]['rows_per_second']:.3f}, 2 workers "
              f"{runs[1]['rows_per_second']:.3f} rows/s ({r['speedup_2_workers']:.2f}x); once per "
              f"worker {(r['circuit_bytes'] + r['evaluation_key_bytes']) / 2**20:.1f} MiB; per row "
              f"{r['request_bytes_per_row'] / 1024:.1f} KiB up, "
              f"{r['reply_bytes_per_row'] / 1024:.1f} KiB down; caller "
              f"{1e3 * (encrypt_s + decrypt_s):.2f} ms/row; one row split by bootstraps: "
              f"local {r['local_1_thread_one_row_seconds_median']:.3f} s, 1 worker "
              f"{runs[0]['one_row_split_seconds_median']:.3f} s, 2 workers "
              f"{runs[1]['one_row_split_seconds_median']:.3f} s "
              f"({r['one_row_split_speedup_2_workers']:.2f}x)", flush=True)
    write_results(args.out, results)


if __name__ == "__main__":
    main()
