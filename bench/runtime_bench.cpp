// Runtime benchmarks: a 30-feature linear model (one gemm, 8-bit inputs and weights, no
// bootstrap) encrypted, run and decrypted on one thread, 16 rows per call. The figure that
// matters is us_per_row (encrypt + run + decrypt, quantization included).
//
//   BM_LinearPredictExecute   FheCircuit::predict(kExecute), threads = 1: masks generated once
//                             (expanded inputs, what a client and server in one process do)
//   BM_LinearSeededExecute    the client/server path: seeded encryption, run (expands the masks
//                             a second time), decryption, on a one-thread pool
//   BM_LinearPredictDisable   the clear interpreter, for scale
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <vector>

#include "fheml/compiler/compile.h"
#include "fheml/runtime/runtime.h"

namespace fheml::runtime {
namespace {

constexpr std::size_t kFeatures = 30;
constexpr std::size_t kRows = 16;

struct LinearModel {
  compiler::Circuit circuit;
  std::vector<FloatSample> rows;  // kRows samples of shape [1, kFeatures]
};

const LinearModel& linear_model() {
  static const LinearModel model = [] {
    std::mt19937 rng(3);  // weights and data of the benchmark only, nothing secret
    std::normal_distribution<double> normal(0.0, 1.0);
    ir::FloatGraph g;
    const auto x = g.input("x", {1, kFeatures});
    std::vector<double> coef(kFeatures);
    for (auto& w : coef) w = normal(rng);
    const auto w = g.constant("coef", ir::FloatTensor({kFeatures, 1}, coef));
    const auto b = g.constant("bias", ir::FloatTensor({1}, {0.25}));
    g.mark_output(g.gemm(x, w, b, /*trans_b=*/false, "linear"));
    std::vector<quant::Sample> calibration;
    for (int i = 0; i < 200; ++i) {
      std::vector<double> row(kFeatures);
      for (auto& v : row) v = normal(rng);
      calibration.push_back({ir::FloatTensor({1, kFeatures}, row)});
    }
    compiler::CompileOptions options;
    options.quantization.n_bits = quant::NBits::uniform(8);
    LinearModel m{compiler::compile(g, calibration, options), {}};
    for (std::size_t r = 0; r < kRows; ++r) m.rows.push_back(calibration[r]);
    return m;
  }();
  return model;
}

void set_counters(benchmark::State& state) {
  state.counters["us_per_row"] = benchmark::Counter(
      static_cast<double>(kRows) * 1e-6,
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["N"] =
      static_cast<double>(linear_model().circuit.parameters.polynomial_size.value);
  state.counters["k"] = static_cast<double>(linear_model().circuit.parameters.glwe_dimension.value);
}

void BM_LinearPredictExecute(benchmark::State& state) {
  const LinearModel& model = linear_model();
  FheCircuitOptions options;
  options.seed = tfhe::test_seed(1);
  options.threads = 1;
  FheCircuit circuit(model.circuit, options);
  circuit.keygen();
  Timings sum{};
  for (auto _ : state) {
    benchmark::DoNotOptimize(circuit.predict(model.rows, Mode::kExecute));
    const Timings t = *circuit.statistics().last_run;
    sum.encrypt_s += t.encrypt_s;
    sum.run_s += t.run_s;
    sum.decrypt_s += t.decrypt_s;
  }
  set_counters(state);
  const double per_row = 1e6 / static_cast<double>(state.iterations() * kRows);
  state.counters["encrypt_us_per_row"] = sum.encrypt_s * per_row;
  state.counters["run_us_per_row"] = sum.run_s * per_row;
  state.counters["decrypt_us_per_row"] = sum.decrypt_s * per_row;
}
BENCHMARK(BM_LinearPredictExecute)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Repetitions(7)
    ->ReportAggregatesOnly(true);

void BM_LinearSeededExecute(benchmark::State& state) {
  const LinearModel& model = linear_model();
  const compiler::Circuit& c = model.circuit;
  const Program program(c);
  Keys keys = keygen(c, {tfhe::test_seed(2)});
  const EvaluationKeys evaluation = decompress(keys.evaluation);
  tfhe::ThreadPool pool(1);
  tfhe::Csprng noise_rng(tfhe::test_seed(3));
  for (auto _ : state) {
    std::vector<IntSample> quantized;
    for (const FloatSample& row : model.rows) quantized.push_back({c.inputs[0].quantize(row[0])});
    const auto inputs = encrypt(c, keys.client, quantized, noise_rng);
    const auto outputs = run(program, evaluation, inputs, {&pool, nullptr});
    const auto results = decrypt(c, keys.client, outputs);
    for (const IntSample& r : results) benchmark::DoNotOptimize(c.outputs[0].dequantize(r[0]));
  }
  set_counters(state);
}
BENCHMARK(BM_LinearSeededExecute)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Repetitions(7)
    ->ReportAggregatesOnly(true);

void BM_LinearPredictDisable(benchmark::State& state) {
  const LinearModel& model = linear_model();
  FheCircuit circuit(model.circuit, {tfhe::test_seed(1)});
  for (auto _ : state) benchmark::DoNotOptimize(circuit.predict(model.rows, Mode::kDisable));
  set_counters(state);
}
BENCHMARK(BM_LinearPredictDisable)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime()
    ->Repetitions(7)
    ->ReportAggregatesOnly(true);

}  // namespace
}  // namespace fheml::runtime
