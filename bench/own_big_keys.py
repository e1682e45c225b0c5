"""Partitions of their own big key (issue 13): a network whose lookups differ in width, timed
under whichever fheml is importable, so that two builds can run side by side.

The model: fheml's MLPClassifier (20-20, relu) on breast cancer (bench/_common.py's split), 8-bit
inputs and outputs, 3-bit op inputs and 4-bit weights inside: the first layer's 20 lookups read 3
rounded bits, the second layer's 20 read 8. Before own big keys every set shared the 8-bit set's
N = 2^15; since, the first layer's outputs (read only by the second layer's lookups, through a
key switch) take a smaller k * N of their own. Per run: the partitions, bootstraps per
partition, evaluation key sizes, the estimated latency, the key generation time, agreement of
the encrypted classes with the clear circuit, and encrypt + run + decrypt per row on one thread
(keys made beforehand), median over `--rows` rows.

    .venv/bin/python bench/own_big_keys.py --label after [--rows 3] [--out FILE]

Run it with two environments (two builds) in turn, several rounds, and compare the medians.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

from _common import breast_cancer_split
from fheml.sklearn import MLPClassifier

N_BITS = {"model_inputs": 8, "op_inputs": 3, "op_weights": 4, "model_outputs": 8}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--label", required=True)
    parser.add_argument("--rows", type=int, default=3)
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    Xtr, Xte, ytr, yte = breast_cancer_split()
    model = MLPClassifier(n_bits=N_BITS, hidden_layer_sizes=(20, 20), random_state=0,
                          max_iter=1000).fit(Xtr, ytr)
    t = time.perf_counter()
    model.compile(Xtr, threads=1)
    compile_s = time.perf_counter() - t
    stats = model.fhe_circuit.statistics()
    estimate = None
    for line in model.fhe_circuit.report().splitlines():
        if line.startswith("estimated latency"):
            estimate = float(line.split(":")[1].split("ms")[0])
    clear = model.predict(Xte)
    t = time.perf_counter()
    model.fhe_circuit.keygen()
    keygen_s = time.perf_counter() - t
    latencies, agree = [], True
    for i in range(args.rows):
        t = time.perf_counter()
        enc = model.predict(Xte[i:i + 1], fhe="execute")
        latencies.append(time.perf_counter() - t)
        agree = agree and bool(enc[0] == clear[i])
    row = {
        "label": args.label,
        "partitions": stats["partitions"],
        "bootstraps_per_partition": stats["bootstraps_per_partition"],
        "evaluation_key_mib_sent": stats["evaluation_key_bytes"] / 2**20,
        "evaluation_key_mib_held": stats["evaluation_key_bytes_server"] / 2**20,
        "estimated_ms_1_thread": estimate,
        "accuracy_clear": float((clear == yte).mean()),
        "compile_s": compile_s,
        "keygen_s": keygen_s,
        "latency_s": latencies,
        "latency_s_median": statistics.median(latencies) if latencies else None,
        "execute_equals_clear": agree,
    }
    print(json.dumps(row, indent=1))
    if args.out:
        data = json.load(open(args.out)) if os.path.exists(args.out) else {"runs": []}
        data["runs"].append(row)
        with open(args.out, "w") as f:
            json.dump(data, f, indent=1)


if __name__ == "__main__":
    main()
