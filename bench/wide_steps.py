"""Comparisons on values wider than a lookup (issue 13, "wide values, narrow lookups").

A torch module computes `v >= 0.1234` (a 0/1 output) on either its 16-bit input itself or a
gemm of two inputs with 8-bit weights (accumulators of 16 to 24 bits), compiled by
fheml.torch.compile_torch_model with exact rounding to p-bit lookups: the rounding's bucket
edges sit on the comparison's step, so encrypted equals the comparison of the exact quantized
value on every input (tests/compiler/wide_step_test.cpp). Per case: the accumulator width,
bootstraps per sample and their width, partitions, N, agreement of the quantized circuit with
the float module on 500 random rows, and the median latency per sample (encrypt + run +
decrypt, one thread, keys made beforehand) over `--rows` encrypted samples, each checked equal
to the clear circuit.

    .venv/bin/python bench/wide_steps.py [--rows 5] [--out bench/results/wide-steps-DATE.json]

Needs torch (`pip install 'fheml[torch]'`).
"""
from __future__ import annotations

import argparse
import datetime
import statistics
import time

import numpy as np
import torch

from _common import write_results
from fheml.torch import compile_torch_model

THRESHOLD = 0.1234
# (gemm, input bits, lookup bits): the 16-bit input itself; accumulators of 16, 20, 22, 24 bits.
CASES = [(False, 16, 4), (False, 16, 5), (True, 8, 4), (True, 12, 4), (True, 14, 5),
         (True, 16, 3)]


class Step(torch.nn.Module):
    def __init__(self, gemm: bool):
        super().__init__()
        self.gemm = gemm
        self.fc = torch.nn.Linear(2, 1)
        with torch.no_grad():
            self.fc.weight[:] = torch.tensor([[0.7, -0.45]])
            self.fc.bias[:] = 0.05

    def forward(self, x):
        return ((self.fc(x) if self.gemm else x) >= THRESHOLD).float()


def widest_value_bits(report: str) -> int:
    """The widest linear value (the compared value and its copies with chunks removed: one bit
    more when the step needed it), from the report's table (its `bits` column)."""
    widest = 0
    for line in report.splitlines():
        cells = line.split()
        if len(cells) > 4 and cells[0].startswith("%") and cells[1] == "linear":
            widest = max(widest, int(cells[-4]))
    return widest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=5)
    parser.add_argument("--out", default=f"bench/results/wide-steps-{datetime.date.today()}.json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    results = []
    for gemm, input_bits, p in CASES:
        X = rng.uniform(-1, 1, (500, 2 if gemm else 1)).astype(np.float32)
        module = Step(gemm)
        model = compile_torch_model(
            module, X, n_bits={"model_inputs": input_bits, "op_inputs": p, "op_weights": 8,
                               "model_outputs": 2},
            rounding_threshold_bits=p, rounding_method="exact", max_lookup_bits=p, threads=1)
        stats = model.fhe_circuit.statistics()
        clear = model.forward(X, fhe="disable")
        agreement = float((clear == module(torch.tensor(X)).numpy()).mean())
        model.forward(X[:1], fhe="execute")  # keys
        times = []
        for i in range(args.rows):
            start = time.perf_counter()
            encrypted = model.forward(X[i:i + 1], fhe="execute")
            times.append(time.perf_counter() - start)
            if not np.array_equal(encrypted, clear[i:i + 1]):
                raise SystemExit(f"row {i}: encrypted {encrypted} != clear {clear[i:i + 1]}")
        row = {"value": "gemm" if gemm else "input", "input_bits": input_bits,
               "widest_value_bits": widest_value_bits(model.fhe_circuit.report()),
               "lookup_bits": stats["max_lookup_bits"], "bootstraps": stats["bootstraps"],
               "partitions": len(stats["partitions"]), "N": stats["polynomial_size"],
               "agreement_with_float": agreement, "ms_per_sample": statistics.median(times) * 1e3}
        print(row, flush=True)
        results.append(row)
    write_results(args.out, results, rows=args.rows, threshold=THRESHOLD)


if __name__ == "__main__":
    main()
