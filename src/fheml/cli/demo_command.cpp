// `fheml demo`: the quick start's main job, an end-to-end encrypted prediction on a real data
// set. A neural network trained by scikit-learn (exported once with its data by
// scripts/export_test_data.py into tests/data/sklearn) becomes a float graph; it is quantized
// and compiled from the training rows, then test rows are encrypted, run on the server side with
// only the evaluation keys, and decrypted. The float, quantized (clear), simulated and encrypted
// accuracies are printed side by side; the command fails if an encrypted result differs from
// the clear integer circuit's (the compiler's contract).
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "fheml/cli/commands.h"
#include "fheml/cli/datasets.h"
#include "fheml/compiler/compile.h"
#include "fheml/runtime/runtime.h"

namespace fheml::cli {
namespace {

struct DemoOptions {
  std::string dataset = "breast_cancer";
  std::size_t rows = 8;
  std::uint32_t n_bits = 4;
  std::uint32_t lookup_bits = 4;
  bool approximate = false;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

ir::FloatGraph build_graph(const datasets::SklearnMlp& mlp) {
  ir::FloatGraph g;
  ir::ValueId h = g.input("features", {1, mlp.layers.front().in()});
  for (std::size_t l = 0; l < mlp.layers.size(); ++l) {
    const auto& layer = mlp.layers[l];
    ir::FloatTensor w({layer.in(), layer.out()});
    for (std::size_t i = 0; i < layer.in(); ++i) {
      for (std::size_t j = 0; j < layer.out(); ++j)
        w.data[i * layer.out() + j] = layer.weights[i][j];
    }
    const std::string name = "dense" + std::to_string(l);
    h = g.gemm(h, g.constant(name + ".weight", w),
               g.constant(name + ".bias", ir::FloatTensor({layer.out()}, layer.intercept)), false,
               name);
    if (l + 1 == mlp.layers.size()) break;
    if (mlp.activation == "relu") {
      h = g.unary(ir::FloatOp::kRelu, h);
    } else if (mlp.activation == "logistic") {
      h = g.unary(ir::FloatOp::kSigmoid, h);
    } else if (mlp.activation == "tanh") {
      h = g.unary(ir::FloatOp::kTanh, h);
    } else if (mlp.activation != "identity") {
      throw std::invalid_argument("unsupported MLP activation \"" + mlp.activation + "\"");
    }
  }
  g.mark_output(h);  // logits: sigmoid/softmax and argmax run on the client after decryption
  return g;
}

std::vector<runtime::FloatSample> as_samples(const datasets::LabelledData& data, std::size_t rows) {
  std::vector<runtime::FloatSample> samples;
  for (std::size_t i = 0; i < rows && i < data.size(); ++i) {
    samples.push_back({ir::FloatTensor({1, data.feature_count()}, data.features[i])});
  }
  return samples;
}

double accuracy(const std::vector<runtime::FloatSample>& outputs,
                const datasets::LabelledData& data, const datasets::SklearnMlp& mlp) {
  std::size_t right = 0;
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    right += mlp.classes[datasets::predicted_index(outputs[i][0].data)] == data.labels[i];
  }
  return outputs.empty() ? 0.0
                         : 100.0 * static_cast<double>(right) / static_cast<double>(outputs.size());
}

void run_demo(const DemoOptions& o) {
  const auto train = datasets::load_labelled_csv(datasets::sklearn_path(o.dataset + "_train.csv"));
  const auto test = datasets::load_labelled_csv(datasets::sklearn_path(o.dataset + "_test.csv"));
  const auto mlp = datasets::load_sklearn_mlp(datasets::sklearn_path(o.dataset + "_mlp.json"));
  const ir::FloatGraph graph = build_graph(mlp);
  std::printf("data set: %s (scikit-learn), %zu training rows, %zu test rows, %zu features\n",
              o.dataset.c_str(), train.size(), test.size(), train.feature_count());
  std::printf("model: MLPClassifier %zu layers (%s), trained by scikit-learn %s\n",
              mlp.layers.size(), mlp.activation.c_str(), mlp.sklearn_version.c_str());

  compiler::CompileOptions options;
  options.quantization.n_bits = quant::NBits::uniform(o.n_bits);
  options.quantization.max_lookup_bits = o.lookup_bits;
  options.quantization.per_channel_inputs = true;  // standardized features, outliers included
  options.quantization.rounding_threshold_bits = o.lookup_bits;
  options.quantization.rounding_method =
      o.approximate ? quant::RoundingMethod::kApproximate : quant::RoundingMethod::kExact;
  auto start = std::chrono::steady_clock::now();
  const auto calibration = as_samples(train, train.size());
  runtime::FheCircuit fhe(compiler::compile(graph, calibration, options));
  const double compile_s = seconds_since(start);
  const auto stats = runtime::compute_statistics(fhe.circuit());
  std::printf("compiled in %.2f s: n_bits=%u, lookups of at most %u bits (%s rounding)\n",
              compile_s, o.n_bits, o.lookup_bits, o.approximate ? "approximate" : "exact");
  std::printf("  %zu bootstraps per prediction in %zu stages; parameters: %s\n", stats.bootstraps,
              stats.depth, fhe.circuit().parameter_choice.c_str());

  const auto all = as_samples(test, test.size());
  std::vector<runtime::FloatSample> reference;
  for (const auto& s : all) reference.push_back(ir::evaluate(graph, s));
  const double float_accuracy = accuracy(reference, test, mlp);
  const double clear_accuracy = accuracy(fhe.predict(all, runtime::Mode::kDisable), test, mlp);
  const double simulated_accuracy = accuracy(fhe.predict(all, runtime::Mode::kSimulate), test, mlp);

  // Encrypted: the first `rows` test rows.
  const auto rows = as_samples(test, o.rows);
  start = std::chrono::steady_clock::now();
  fhe.keygen();
  const double keygen_s = seconds_since(start);
  std::vector<runtime::IntSample> quantized;
  for (const auto& s : rows) quantized.push_back({fhe.circuit().inputs[0].quantize(s[0])});
  start = std::chrono::steady_clock::now();
  const auto encrypted_ints = fhe.run_integers(quantized, runtime::Mode::kExecute);
  const double execute_s = seconds_since(start);
  const auto timings = fhe.statistics().last_run;
  const auto clear_ints = fhe.run_integers(quantized, runtime::Mode::kDisable);
  std::vector<runtime::FloatSample> encrypted;
  for (const auto& out : encrypted_ints) {
    encrypted.push_back({fhe.circuit().outputs[0].dequantize(out[0])});
  }
  std::size_t differ = 0;
  for (std::size_t i = 0; i < rows.size(); ++i) differ += encrypted_ints[i] != clear_ints[i];
  std::vector<runtime::FloatSample> reference_rows(
      reference.begin(), reference.begin() + static_cast<std::ptrdiff_t>(rows.size()));
  const auto mib = [](std::size_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); };

  std::printf(
      "\naccuracy on the test rows      float   quantized (clear)   simulated   encrypted\n");
  std::printf("  all %3zu rows               %6.2f%%   %6.2f%%             %6.2f%%\n", test.size(),
              float_accuracy, clear_accuracy, simulated_accuracy);
  std::printf("  first %zu rows, encrypted     %6.2f%%                                   %6.2f%%\n",
              rows.size(), accuracy(reference_rows, test, mlp), accuracy(encrypted, test, mlp));
  std::printf(
      "\nencrypted run: %zu rows in %.2f s (%.3f s per row on %zu threads; keygen %.2f s)\n",
      rows.size(), execute_s, execute_s / static_cast<double>(rows.size()),
      tfhe::ThreadPool::global().size(), keygen_s);
  if (timings) {
    std::printf("  client encrypt %.3f s, server run %.3f s, client decrypt %.3f s\n",
                timings->encrypt_s, timings->run_s, timings->decrypt_s);
  }
  std::printf(
      "  evaluation keys sent %.1f MiB (held by the server %.1f MiB); inputs %.1f KiB per row\n",
      mib(stats.key_sizes.keyswitch_compressed + stats.key_sizes.bootstrap_compressed),
      mib(stats.key_sizes.keyswitch_expanded + stats.key_sizes.bootstrap_fourier),
      static_cast<double>(stats.input_bytes) / 1024.0);
  if (o.approximate) {
    // Approximate rounding may read a neighbouring table entry near a tie: compare classes.
    std::size_t same_class = 0;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto clear = fhe.circuit().outputs[0].dequantize(clear_ints[i][0]);
      same_class +=
          datasets::predicted_index(clear.data) == datasets::predicted_index(encrypted[i][0].data);
    }
    std::printf(
        "  approximate rounding: %zu of %zu outputs equal to the clear circuit, %zu of %zu "
        "predicted classes\n",
        rows.size() - differ, rows.size(), same_class, rows.size());
    return;
  }
  std::printf("  encrypted results equal to the clear integer circuit: %zu of %zu rows\n",
              rows.size() - differ, rows.size());
  if (differ != 0) {
    throw std::runtime_error(std::to_string(differ) +
                             " encrypted results differ from the clear circuit");
  }
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto options = std::make_shared<DemoOptions>();
  CLI::App* demo = app.add_subcommand(
      "demo", "End-to-end encrypted prediction with a scikit-learn MLP on a real data set");
  demo->add_option("--dataset", options->dataset, "breast_cancer or digits")
      ->check(CLI::IsMember({"breast_cancer", "digits"}))
      ->capture_default_str();
  demo->add_option("--rows", options->rows, "test rows to run encrypted")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  demo->add_option("--n-bits", options->n_bits, "bits of inputs, weights and activations")
      ->check(CLI::Range(2, 8))
      ->capture_default_str();
  demo->add_option("--lookup-bits", options->lookup_bits,
                   "largest lookup; wider accumulators are rounded to it")
      ->check(CLI::Range(2, 8))
      ->capture_default_str();
  demo->add_flag("--approximate", options->approximate,
                 "approximate rounding (no extra bootstrap, off by one near ties)");
  demo->callback([options] { run_demo(*options); });
}

}  // namespace fheml::cli
