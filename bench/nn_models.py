"""End-to-end benchmark of fheml's networks (issue 12's table).

For the breast-cancer MLP 30-30-30-2 (the shape of Concrete ML's NeuralNetClassifier row in
bench/README.md), an MLP 64-64-10 on digits and a small digits CNN, all trained in float with
torch and compiled by fheml.torch.compile_torch_model at its defaults (the precision search,
99% agreement with the float network on the training rows): accuracy of the float network,
of the compiled circuit in the clear (`disable`) and simulated, the precision chosen,
bootstraps per sample and their width, compile time and peak RSS during compilation, and the
latency per sample (encrypt + run + decrypt, keys made beforehand) on 1 and 2 threads for
`--rows` encrypted samples (one for the CNN); plus the same at an explicit 4-bit precision, and
fheml's own NeuralNetClassifier (trained for FHE: 4-bit activations and weights, 4-bit lookups)
of the same hidden sizes on the same splits.

    .venv/bin/python bench/nn_models.py [--rows 2] [--out bench/results/nn-models-DATE.json]

Needs torch (`pip install 'fheml[torch]'`).
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
import torch
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from fheml import _qat
from fheml.sklearn import NeuralNetClassifier
from fheml.torch import compile_torch_model

FOUR_BITS = {"n_bits": {"op_inputs": 4, "op_weights": 4}, "rounding_threshold_bits": 5}


def peak_rss_reset() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # resets VmHWM to the current RSS
        f.write("5")


def rss_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def train(net, X, y, epochs, lr):
    torch.manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    Xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    for _ in range(epochs):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(Xt), yt).backward()
        opt.step()
    return net.eval()


def datasets(split: int = 0):
    """Breast cancer (70/30, standardized), digits (75/25, pixels / 16) and the digits as 8x8
    images; `split` is train_test_split's random_state (the table uses 0)."""
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=split)
    s = StandardScaler().fit(Xtr)
    cancer = (s.transform(Xtr), s.transform(Xte), ytr, yte)
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=split)
    digits = (Xtr, Xte, ytr, yte)
    images = tuple(a.reshape(-1, 1, 8, 8) for a in (Xtr, Xte)) + (ytr, yte)
    return cancer, digits, images


def models(split: int = 0):
    cancer, digits, images = datasets(split)
    nn = torch.nn
    torch.manual_seed(0)
    yield ("MLP 30-30-30-2 breast cancer", cancer,
           nn.Sequential(nn.Linear(30, 30), nn.ReLU(), nn.Linear(30, 30), nn.ReLU(),
                         nn.Linear(30, 2)), 300, 1e-2)
    torch.manual_seed(0)
    yield ("MLP 64-64-10 digits", digits,
           nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)), 300, 1e-2)
    torch.manual_seed(0)
    yield ("CNN digits (conv 8@3x3, relu, avgpool 2, conv 16@3x3, relu, gemm)", images,
           nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                         nn.Conv2d(8, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 10)),
           200, 1e-2)


def measure(name, data, net, rows, precision, float_acc=None):
    Xtr, Xte, ytr, yte = data
    if float_acc is None:
        with torch.no_grad():
            float_acc = float((net(torch.tensor(Xte, dtype=torch.float32)).numpy().argmax(1)
                               == yte).mean())
    builtin = isinstance(net, NeuralNetClassifier)

    def build(threads):
        if builtin:
            net.compile(Xtr, threads=threads)
            return net
        return compile_torch_model(net, Xtr, threads=threads, **precision)

    rss_before = rss_mib("VmRSS")
    peak_rss_reset()
    times = []
    for _ in range(3):
        t = time.perf_counter()
        model = build(1)
        times.append(time.perf_counter() - t)
    rss_peak = rss_mib("VmHWM")
    if builtin:
        clear, sim = model.predict_proba(Xte), model.predict_proba(Xte, fhe="simulate")
        n_bits = {"op_inputs": net.n_bits, "op_weights": net.n_bits}
        rounding = net.n_bits
    else:
        clear, sim = model.forward(Xte), model.forward(Xte, fhe="simulate")
        n_bits, rounding = model.n_bits, model.rounding_threshold_bits
    stats = model.fhe_circuit.statistics()
    row = {
        "model": name,
        "precision": "QAT" if builtin else "search" if not precision else "4-bit",
        "float_accuracy": float_acc,
        "fhe_accuracy_disable": float((clear.argmax(1) == yte).mean()),
        "fhe_accuracy_simulate": float((sim.argmax(1) == yte).mean()),
        "n_bits": n_bits, "rounding_threshold_bits": rounding,
        "bootstraps": stats["bootstraps"], "max_lookup_bits": None,
        "polynomial_size": stats["polynomial_size"],
        "compile_s_median": statistics.median(times), "rss_before_mib": rss_before,
        "rss_peak_compile_mib": rss_peak,
        "estimated_ms_1_thread": None,
        "evaluation_key_mib": stats["evaluation_key_bytes"] / 2**20,
    }
    report = model.fhe_circuit.report()
    for line in report.splitlines():
        if line.startswith("max width"):
            row["max_lookup_bits"] = int(line.split("max lookup bits")[1].split(",")[0])
        if line.startswith("estimated latency"):
            row["estimated_ms_1_thread"] = float(line.split(":")[1].split("ms")[0])
    for threads in (1, 2):
        if rows == 0:
            break
        m = build(threads)
        m.fhe_circuit.keygen()
        run = m.predict_proba if builtin else m.forward
        t = time.perf_counter()
        enc = run(Xte[:rows], fhe="execute")
        row[f"latency_s_{threads}_threads"] = (time.perf_counter() - t) / rows
        row["execute_agrees_with_disable_on_class"] = bool(
            (enc.argmax(1) == run(Xte[:rows]).argmax(1)).all())
    return row


def accuracy(net, X, y) -> float:
    with torch.no_grad():
        return float((net(torch.tensor(X, dtype=torch.float32)).numpy().argmax(1) == y).mean())


def qat_seeds(seeds: int, splits: int, out: str | None) -> None:
    """Test accuracy (disable) of NeuralNetClassifier over random_state 1..seeds on each of
    `splits` train/test splits (train_test_split's random_state 0..splits-1), against two float
    references on the same splits: the torch network of the table (trained as there) and the
    same network, seeds and schedule trained in float (`_qat.train(fake_quantization=False)`:
    what QAT itself costs). One test row is 0.58 points on breast cancer, 0.22 on digits: one
    split's mean over a few seeds moves by a point between splits, hence several."""
    rows = []
    d = NeuralNetClassifier()  # its defaults: 60 epochs, Adam 0.01, cosine, batches of 64
    for model in range(2):
        name, table_float, same, qat = None, [], [], []
        for split in range(splits):
            name, data, net, epochs, lr = list(models(split))[model]
            Xtr, Xte, ytr, yte = data
            table_float.append(accuracy(train(net, Xtr, ytr, epochs, lr), Xte, yte))
            hidden = tuple(m.out_features for m in net if isinstance(m, torch.nn.Linear))[:-1]
            for seed in range(1, seeds + 1):
                qat.append(float(NeuralNetClassifier(hidden_layer_sizes=hidden, random_state=seed)
                                 .fit(Xtr, ytr).score(Xte, yte)))
                float_net, _ = _qat.train(Xtr, ytr, hidden, len(np.unique(ytr)), True, 4, 4, 4,
                                          d.max_epochs, d.lr, d.batch_size, d.weight_decay, seed,
                                          fake_quantization=False)
                same.append(accuracy(float_net, Xte, yte))
        qat_arr = np.array(qat)
        rows.append({"model": name, "splits": splits, "seeds": seeds,
                     "float_table_accuracies": table_float,
                     "float_same_schedule_accuracies": same, "qat_accuracies": qat,
                     "float_table_mean": float(np.mean(table_float)),
                     "float_same_schedule_mean": float(np.mean(same)),
                     "qat_mean": float(qat_arr.mean()),
                     "qat_mean_standard_error": float(qat_arr.std() / np.sqrt(len(qat_arr))),
                     "gap_to_table_points": 100 * (np.mean(table_float) - qat_arr.mean()),
                     "gap_to_same_schedule_points": 100 * (np.mean(same) - qat_arr.mean())})
        print(json.dumps(rows[-1]), flush=True)
    if out:
        with open(out, "w") as f:
            json.dump({"date": datetime.date.today().isoformat(), "results": rows}, f, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2, help="encrypted samples timed per model")
    parser.add_argument("--out", default=None, help="JSON file for the results")
    parser.add_argument("--qat-seeds", type=int, default=0,
                        help="only: fheml's NeuralNetClassifier over this many seeds (accuracy)")
    parser.add_argument("--qat-splits", type=int, default=1,
                        help="with --qat-seeds: over this many train/test splits")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.qat_seeds:
        qat_seeds(args.qat_seeds, args.qat_splits, args.out)
        return
    results = []
    for name, data, net, epochs, lr in models():
        net = train(net, data[0], data[2], epochs, lr)
        rows = 1 if name.startswith("CNN") else args.rows
        for precision in ({}, FOUR_BITS):
            row = measure(name, data, net, rows, precision)
            results.append(row)
            print(json.dumps(row), flush=True)
        if name.startswith("MLP"):
            hidden = tuple(m.out_features for m in net if isinstance(m, torch.nn.Linear))[:-1]
            builtin = NeuralNetClassifier(hidden_layer_sizes=hidden, random_state=1)
            builtin.fit(data[0], data[2])
            row = measure(name, data, builtin, rows, {}, float_acc=results[-1]["float_accuracy"])
            results.append(row)
            print(json.dumps(row), flush=True)
    print("\n| model | precision | float acc | FHE acc (disable / simulate) | bootstraps (bits) "
          "| N | compile (peak RSS) | est. 1 thread | execute 1 / 2 threads |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        nb = r["n_bits"]
        print(f"| {r['model']} | {r['precision']}: a{nb['op_inputs']} w{nb['op_weights']} "
              f"r{r['rounding_threshold_bits']} | {r['float_accuracy']:.4f} | "
              f"{r['fhe_accuracy_disable']:.4f} / {r['fhe_accuracy_simulate']:.4f} | "
              f"{r['bootstraps']} ({r['max_lookup_bits']}) | {r['polynomial_size']} | "
              f"{r['compile_s_median']:.2f} s ({r['rss_peak_compile_mib']:.0f} MiB) | "
              f"{r['estimated_ms_1_thread'] / 1000:.2f} s | "
              f"{r.get('latency_s_1_threads', float('nan')):.2f} / "
              f"{r.get('latency_s_2_threads', float('nan')):.2f} s |")
    if args.out:
        meta = {"date": datetime.date.today().isoformat(), "machine": platform.machine(),
                "cpus": os.cpu_count(), "rows": args.rows}
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
