// Circuits built by hand and keys shared by the runtime's tests (runtime_test.cpp,
// staged_test.cpp): one key generation per parameter set and process.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "fheml/compiler/circuit.h"
#include "fheml/compiler/encoding.h"
#include "fheml/runtime/runtime.h"
#include "tfhe/test_support.h"

namespace fheml::runtime::fixtures {

using ir::IntGraph;
using ir::IntNode;
using ir::IntOp;
using ir::IntRange;
using ir::ValueId;

// --- Building circuits by hand.

struct Term {
  std::uint32_t source;  // index into the node's inputs
  std::uint32_t element;
  std::int64_t coefficient;
};

inline ValueId add_input(IntGraph& g, ir::Shape shape, std::int64_t lo, std::int64_t hi) {
  IntNode n;
  n.op = IntOp::kInput;
  n.shape = std::move(shape);
  n.range = {lo, hi};
  n.origin = "x";
  return g.add(std::move(n));
}

// Each row: bias + sum of terms; the range is exact interval arithmetic over the sources' ranges.
inline ValueId add_linear(IntGraph& g, std::vector<ValueId> inputs,
                          const std::vector<std::vector<Term>>& rows,
                          std::vector<std::int64_t> bias, std::string origin) {
  IntNode n;
  n.op = IntOp::kLinear;
  n.inputs = std::move(inputs);
  n.shape = {rows.size()};
  n.linear.row_begin = {0};
  n.linear.bias = std::move(bias);
  std::int64_t lo = INT64_MAX, hi = INT64_MIN;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    std::int64_t row_lo = n.linear.bias[r], row_hi = n.linear.bias[r];
    for (const Term& t : rows[r]) {
      n.linear.entries.push_back({t.source, t.element, t.coefficient});
      const IntRange& in = g.node(n.inputs[t.source]).range;
      row_lo += std::min(t.coefficient * in.lo, t.coefficient * in.hi);
      row_hi += std::max(t.coefficient * in.lo, t.coefficient * in.hi);
    }
    n.linear.row_begin.push_back(n.linear.entries.size());
    lo = std::min(lo, row_lo);
    hi = std::max(hi, row_hi);
  }
  n.range = {lo, hi};
  n.origin = std::move(origin);
  return g.add(std::move(n));
}

// The range is that of the table entries the in-range inputs reach.
inline ValueId add_lookup(IntGraph& g, ValueId input, std::int64_t offset, std::uint32_t shift,
                          std::uint32_t bits, std::vector<std::vector<std::int64_t>> tables,
                          std::vector<std::uint32_t> table_of_element, std::string origin) {
  IntNode n;
  n.op = IntOp::kLookup;
  n.inputs = {input};
  n.shape = g.node(input).shape;
  n.lookup = {offset, shift, bits, std::move(tables), std::move(table_of_element)};
  std::int64_t lo = INT64_MAX, hi = INT64_MIN;
  const IntRange in = g.node(input).range;
  for (std::size_t e = 0; e < n.lookup.table_of_element.size(); ++e) {
    for (std::int64_t x = in.lo; x <= in.hi; ++x) {
      if (((x + offset) & ((std::int64_t{1} << shift) - 1)) != 0) continue;
      const std::int64_t y = ir::apply_lookup(n.lookup, e, x);
      lo = std::min(lo, y);
      hi = std::max(hi, y);
    }
  }
  n.range = {lo, hi};
  n.origin = std::move(origin);
  return g.add(std::move(n));
}

inline compiler::Circuit finish(IntGraph graph, std::size_t parameter_bits) {
  compiler::Circuit c;
  c.graph = std::move(graph);
  compiler::assign_encoding(c);
  c.parameters = tfhe::default_parameters(tfhe::MessageBits{parameter_bits});
  return c;
}

// %0 x[2] in [0,7] -> %1 linear[3] -> %2 lookup (4 bits, one table per channel)
//                  -> %3 linear[2] (reads %2 and %0) -> %4 lookup (4 bits)
// %0 -> %5 lookup (3 bits, reads the input directly, two channels)
// %4, %5 -> %6 linear[2]; outputs %6 and %2.
inline compiler::Circuit chain_circuit() {
  IntGraph g;
  const ValueId x = add_input(g, {2}, 0, 7);
  const ValueId r = add_linear(g, {x},
                               {{{0, 0, 1}, {0, 1, 1}},    // x0 + x1 - 7
                                {{0, 0, 1}, {0, 1, -1}},   // x0 - x1
                                {{0, 1, 1}, {0, 0, -1}}},  // x1 - x0 + 1
                               {-7, 0, 1}, "gemm fc1");
  std::vector<std::vector<std::int64_t>> tables(3, std::vector<std::int64_t>(16));
  for (std::int64_t m = 0; m < 16; ++m) {
    tables[0][m] = (m * m) % 5 - 2;
    tables[1][m] = std::clamp<std::int64_t>(m - 7, 0, 3);
    tables[2][m] = 2 - m / 4;
  }
  const ValueId t = add_lookup(g, r, 7, 0, 4, tables, {0, 1, 2}, "relu-ish(gemm fc1)");
  const ValueId z = add_linear(g, {t, x},
                               {{{0, 0, 1}, {0, 1, 1}, {0, 2, -1}},  // t0 + t1 - t2
                                {{1, 0, 1}, {0, 1, 1}}},             // x0 + t1 - 4
                               {0, -4}, "gemm fc2");
  const IntRange zr = g.node(z).range;
  std::vector<std::vector<std::int64_t>> sq(1, std::vector<std::int64_t>(16));
  for (std::int64_t m = 0; m < 16; ++m) sq[0][m] = (m - 8) * (m - 8) / 4;
  const std::int64_t z_offset = -zr.lo;
  EXPECT_LE(zr.hi - zr.lo, 15) << "the test circuit's second lookup must fit 4 bits";
  const ValueId u = add_lookup(g, z, z_offset, 0, 4, sq, {0, 0}, "square(gemm fc2)");
  const ValueId q = add_lookup(
      g, x, 0, 0, 3, {{3, -1, 4, -1, 5, -9, 2, 6}, {0, 1, 2, 3, 0, 1, 2, 3}}, {0, 1}, "quirk(x)");
  const ValueId o = add_linear(
      g, {u, q}, {{{0, 0, 1}, {0, 1, 3}, {1, 0, 1}}, {{1, 1, -2}, {0, 0, 1}}}, {0, 4}, "gemm out");
  g.outputs = {o, t};
  return finish(std::move(g), 4);
}

// %0 x[1] in [0,7] -> %1 linear 4x + 4 -> %2 lookup (offset -4, shift 2, 3 bits): reads x
// exactly; %3 = 20x shares %0's class and widens it to 7 bits, so the lookup also multiplies by
// 2^(W - p - shift) = 4. Outputs %2 and %3.
inline compiler::Circuit shift_circuit() {
  IntGraph g;
  const ValueId x = add_input(g, {1}, 0, 7);
  const ValueId y = add_linear(g, {x}, {{{0, 0, 4}}}, {4}, "4x+4");
  const ValueId t = add_lookup(g, y, -4, 2, 3, {{-5, 7, 2, 0, 11, -3, 6, 1}}, {0}, "f(x)");
  const ValueId w = add_linear(g, {x}, {{{0, 0, 20}}}, {0}, "20x");
  g.outputs = {t, w};
  return finish(std::move(g), 3);
}

// --- Keys shared by all tests: one generation per parameter set and process.

struct RuntimeKeys {
  ClientKeys client;
  EvaluationKeys evaluation;
};

inline const RuntimeKeys& keys_for(const compiler::Circuit& circuit) {
  static std::mutex mutex;
  static std::map<std::pair<std::uint64_t, bool>, std::unique_ptr<RuntimeKeys>> cache;
  std::lock_guard lock(mutex);
  // Every partition's set names the keys (a circuit of one partition: its parameters).
  std::uint64_t id = tfhe::fingerprint(circuit.parameters);
  for (std::size_t p = 1; p < circuit.partitions.size(); ++p) {
    id = id * 0x100000001b3ull ^ tfhe::fingerprint(circuit.partitions[p]);
  }
  // And the key switches between big keys the circuit's lookups need.
  for (const KeyswitchPair& pair : client_view(circuit).keyswitch_pairs) {
    id = id * 0x100000001b3ull ^ (std::uint64_t{pair.from} << 32 | pair.to);
  }
  auto& slot = cache[{id, circuit.has_lookups}];
  if (!slot) {
    Keys keys = keygen(circuit, {tfhe::test_seed(id)});
    slot = std::make_unique<RuntimeKeys>(
        RuntimeKeys{std::move(keys.client), decompress(keys.evaluation)});
  }
  return *slot;
}

inline std::vector<IntSample> execute(const Program& program, std::span<const IntSample> samples,
                                      ExecutionTrace* trace = nullptr) {
  const RuntimeKeys& keys = keys_for(program.circuit());
  tfhe::Csprng rng(tfhe::test_seed(samples.size()));
  const auto inputs = encrypt(program.circuit(), keys.client, samples, rng);
  const auto outputs = run(program, keys.evaluation, inputs, {nullptr, trace});
  return decrypt(program.circuit(), keys.client, outputs);
}

// Every pair (x0, x1) in [lo, hi]^2.
inline std::vector<IntSample> pairs(std::int64_t lo, std::int64_t hi) {
  std::vector<IntSample> samples;
  for (std::int64_t a = lo; a <= hi; ++a) {
    for (std::int64_t b = lo; b <= hi; ++b) samples.push_back({ir::IntTensor({2}, {a, b})});
  }
  return samples;
}

inline std::string describe(const IntSample& sample) {
  std::string s;
  for (const auto& t : sample) {
    for (const auto v : t.data) s += std::to_string(v) + " ";
    s += "| ";
  }
  return s;
}

inline void expect_same(const std::vector<IntSample>& actual,
                        const std::vector<IntSample>& expected, std::span<const IntSample> inputs,
                        const char* what) {
  ASSERT_EQ(actual.size(), expected.size());
  for (std::size_t s = 0; s < actual.size(); ++s) {
    ASSERT_EQ(actual[s], expected[s])
        << what << " on input " << describe(inputs[s]) << ": got " << describe(actual[s])
        << "expected " << describe(expected[s]);
  }
}

}  // namespace fheml::runtime::fixtures
