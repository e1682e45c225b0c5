// Partitions in the runtime, differentially: random integer graphs whose lookups mix 2-, 4- and
// 6-bit messages, compiled with partitions (the 2-bit lookups tolerate far more noise than the
// 6-bit ones, so they take cheaper sets of their own), must give in simulate and execute exactly
// what the interpreter gives.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "fheml/compiler/compile.h"
#include "runtime_fixtures.h"

namespace fheml::runtime {
namespace {

using namespace fixtures;

// x[3] in [0, 3] -> a chain of lookup nodes of `bits` (2 elements each), each reading a linear
// combination of x and the earlier lookups whose range fits its message space -> an output
// summing every lookup.
compiler::Circuit mixed_circuit(unsigned seed, const std::vector<std::uint32_t>& bits) {
  std::mt19937 rng(seed);
  IntGraph g;
  const ValueId x = add_input(g, {3}, 0, 3);
  std::vector<ValueId> values{x};
  for (std::size_t k = 0; k < bits.size(); ++k) {
    const std::int64_t space = std::int64_t{1} << bits[k];
    std::vector<std::vector<Term>> rows(2);
    std::vector<std::int64_t> bias(2, 0);
    for (std::size_t r = 0; r < 2; ++r) {
      // Terms from x and earlier lookups, kept while the row's range fits the lookup.
      std::int64_t lo = 0, hi = 0;
      for (int attempt = 0; attempt < 6; ++attempt) {
        const std::uint32_t source = rng() % values.size();
        const std::uint32_t element =
            rng() % static_cast<std::uint32_t>(g.node(values[source]).shape[0]);
        const std::int64_t c = rng() % 2 ? 1 : -1;
        const ir::IntRange in = g.node(values[source]).range;
        const std::int64_t add_lo = std::min(c * in.lo, c * in.hi);
        const std::int64_t add_hi = std::max(c * in.lo, c * in.hi);
        if ((hi + add_hi) - (lo + add_lo) >= space) continue;
        rows[r].push_back({source, element, c});
        lo += add_lo;
        hi += add_hi;
      }
      if (rows[r].empty()) rows[r].push_back({0, static_cast<std::uint32_t>(r), 1});  // fits 2 bits
    }
    const ValueId linear = add_linear(g, values, rows, bias, "mix" + std::to_string(k));
    const ir::IntRange range = g.node(linear).range;
    std::vector<std::vector<std::int64_t>> tables(2, std::vector<std::int64_t>(space));
    for (auto& table : tables) {
      for (auto& v : table) v = static_cast<std::int64_t>(rng() % 3) - 1;
    }
    values.push_back(
        add_lookup(g, linear, -range.lo, 0, bits[k], tables, {0, 1},
                   "f" + std::to_string(k) + " (" + std::to_string(bits[k]) + " bits)"));
  }
  std::vector<Term> sum;
  for (std::uint32_t v = 1; v < values.size(); ++v) sum.push_back({v, 0, 1});
  std::vector<ValueId> inputs = values;
  const ValueId out = add_linear(g, inputs, {sum}, {0}, "sum");
  g.outputs = {out, values.back()};
  compiler::Circuit c;
  c.graph = std::move(g);
  compiler::assign_encoding(c);
  compiler::CompileOptions options;  // default: up to 3 partitions
  compiler::choose_parameters(c, options);
  return c;
}

TEST(Partitions, MixedPrecisionGraphsAgreeInEveryMode) {
  const std::vector<std::vector<std::uint32_t>> shapes{{2, 4, 6}, {6, 2, 4}, {4, 6, 2, 2}, {2, 6}};
  std::size_t partitioned = 0;
  for (unsigned seed = 0; seed < shapes.size(); ++seed) {
    const compiler::Circuit circuit = mixed_circuit(seed, shapes[seed]);
    SCOPED_TRACE("seed " + std::to_string(seed) + ": " + circuit.parameter_choice);
    const Program program(circuit);
    if (circuit.partitions.size() > 1) ++partitioned;
    std::mt19937 rng(100 + seed);
    std::vector<IntSample> samples;
    const std::size_t count = test::sanitize_profile() ? 2 : 6;
    for (std::size_t i = 0; i < count; ++i) {
      samples.push_back({ir::IntTensor(
          {3}, {static_cast<std::int64_t>(rng() % 4), static_cast<std::int64_t>(rng() % 4),
                static_cast<std::int64_t>(rng() % 4)})});
    }
    const std::vector<IntSample> expected = run_clear(circuit, samples);
    tfhe::Csprng noise(tfhe::test_seed(seed));
    expect_same(run_simulate(program, samples, noise), expected, samples, "simulate");
    expect_same(execute(program, samples), expected, samples, "execute");
  }
  // The cheaper sets of 2-bit lookups make most of these circuits partitioned.
  EXPECT_GE(partitioned, 2u);
}

}  // namespace
}  // namespace fheml::runtime
