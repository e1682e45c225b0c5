// The README's model example, built and run by the test suite (ctest: example_two_layer_mlp).
// A float two-layer network (4 -> 8 relu -> 3) is compiled to a TFHE circuit and run three ways:
// disable (exact integers in the clear), simulate (the same with sampled noise) and execute
// (encrypted). The keys are real 128-bit keys; 5-bit quantization and lookups keep it fast.
// Exits non-zero if the encrypted result differs from the clear one.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "fheml/compiler/compile.h"
#include "fheml/ir/float_graph.h"
#include "fheml/runtime/runtime.h"

namespace {

using fheml::ir::FloatOp;
using fheml::ir::FloatTensor;

// Stand-in for trained weights and real data: values in [-bound, bound] from a hash of a
// counter (SplitMix64's mixer), so every run builds the same model. Keys and noise never come
// from here: fheml draws them from its ChaCha20 CSPRNG seeded by the OS.
FloatTensor pattern(fheml::ir::Shape shape, std::uint64_t& counter, double bound) {
  FloatTensor t(std::move(shape));
  for (double& v : t.data) {
    std::uint64_t z = (counter += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    v = bound * (2.0 * static_cast<double>(z >> 11) * 0x1.0p-53 - 1.0);
  }
  return t;
}

void print_row(const char* mode, const FloatTensor& y) {
  std::printf("  %-9s", mode);
  for (const double v : y.data) std::printf(" %8.4f", v);
  std::printf("\n");
}

}  // namespace

int main() {
  using namespace fheml;
  std::uint64_t counter = 2024;

  // 1. The model as a float graph (what an ONNX or sklearn adapter would build).
  ir::FloatGraph graph;
  const auto x = graph.input("x", {1, 4});
  const auto w1 = graph.constant("fc1.weight", pattern({8, 4}, counter, 1.0));
  const auto b1 = graph.constant("fc1.bias", pattern({8}, counter, 0.3));
  const auto h = graph.unary(FloatOp::kRelu, graph.gemm(x, w1, b1, /*trans_b=*/true, "fc1"));
  const auto w2 = graph.constant("fc2.weight", pattern({3, 8}, counter, 1.0));
  const auto b2 = graph.constant("fc2.bias", pattern({3}, counter, 0.3));
  graph.mark_output(graph.gemm(h, w2, b2, /*trans_b=*/true, "fc2"));

  // 2. Calibration data: representative inputs fix the quantization ranges.
  std::vector<quant::Sample> calibration;
  for (int i = 0; i < 200; ++i) calibration.push_back({pattern({1, 4}, counter, 1.0)});

  // 3. Compile: 5-bit inputs and activations, 6-bit weights; accumulators wider than 5 bits are
  //    rounded exactly to 5 bits before their lookup. The compiler picks 128-bit parameters for
  //    p_error = 2^-40 per lookup.
  compiler::CompileOptions options;
  options.quantization.n_bits = quant::NBits::uniform(5);
  options.quantization.n_bits.op_weights = 6;  // finer weights: the accumulator is rounded anyway
  options.quantization.max_lookup_bits = 5;
  options.quantization.rounding_threshold_bits = 5;
  compiler::Circuit compiled = compiler::compile(graph, calibration, options);

  std::printf("integer graph:\n%s\n", ir::to_string(compiled.graph).c_str());
  std::printf("%s\n", runtime::report(compiled, runtime::compute_statistics(compiled)).c_str());

  // 4. Run. FheCircuit quantizes, runs and dequantizes; keys come from OS entropy and are
  //    generated on the first encrypted run.
  runtime::FheCircuit circuit(std::move(compiled));
  std::vector<runtime::FloatSample> samples;
  for (int i = 0; i < 4; ++i) samples.push_back({pattern({1, 4}, counter, 1.0)});
  const auto clear = circuit.predict(samples, runtime::Mode::kDisable);
  const auto simulated = circuit.predict(samples, runtime::Mode::kSimulate);
  const auto encrypted = circuit.predict(samples, runtime::Mode::kExecute);

  int mismatches = 0;
  for (std::size_t s = 0; s < samples.size(); ++s) {
    const std::vector<FloatTensor> reference = ir::evaluate(graph, samples[s]);
    std::printf("sample %zu:\n", s);
    print_row("float", reference[0]);
    print_row("disable", clear[s][0]);
    print_row("simulate", simulated[s][0]);
    print_row("execute", encrypted[s][0]);
    if (encrypted[s] != clear[s]) ++mismatches;
  }
  const runtime::Statistics stats = circuit.statistics();
  std::printf("encrypted run of %zu samples: keygen %.2f s, encrypt %.3f s, run %.2f s\n",
              samples.size(), stats.last_run->keygen_s, stats.last_run->encrypt_s,
              stats.last_run->run_s);
  if (mismatches != 0) {
    std::printf("FAILED: execute differs from disable on %d of %zu samples\n", mismatches,
                samples.size());
    return 1;
  }
  std::printf("execute == disable on every output\n");
  return 0;
}
