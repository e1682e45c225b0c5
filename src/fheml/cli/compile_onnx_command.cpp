// `fheml compile-onnx MODEL.onnx --calibration X.npy --out DIR`: from an ONNX network to the
// deployment artifacts (DIR/server.fheml, DIR/client.fheml) without Python. The same importer,
// precision search and compiler as fheml.onnx.compile_onnx_model.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>

#include "fheml/cli/commands.h"
#include "fheml/compiler/compile.h"
#include "fheml/deploy/deploy.h"
#include "fheml/models/neural_network.h"
#include "fheml/models/npy.h"
#include "fheml/models/onnx_import.h"
#include "fheml/runtime/statistics.h"

namespace fheml::cli {
namespace {

struct CompileOnnxOptions {
  std::string model;
  std::string calibration;
  std::string out;
  std::optional<unsigned> bits;           // activations and weights; none: the search
  std::optional<unsigned> rounding_bits;  // none: bits (or the search's)
  unsigned input_bits = 8;
  std::string rounding = "approximate";
  std::optional<double> p_error;
  int security = 128;
  std::string profile = "standard";
  std::size_t max_partitions = 3;
  std::uint32_t output_noise_bits = 0;
  double min_agreement = 0.99;
  bool force = false;
};

void run_compile_onnx(const CompileOnnxOptions& o) {
  const std::filesystem::path out(o.out);
  if (!o.force && (std::filesystem::exists(out / "server.fheml") ||
                   std::filesystem::exists(out / "client.fheml"))) {
    throw std::invalid_argument("'" + o.out +
                                "' already holds deployment artifacts; pass --force to replace "
                                "them (keys made for them stop working)");
  }
  models::OnnxImport imported = models::import_onnx_file(o.model);
  const models::Matrix rows = models::rows_of(models::read_npy(o.calibration));
  models::NeuralNetworkOptions options;
  auto& q = options.compile.quantization;
  q.per_channel_inputs = true;
  q.per_channel_activations = true;
  q.rounding_method =
      o.rounding == "exact" ? quant::RoundingMethod::kExact : quant::RoundingMethod::kApproximate;
  options.compile.p_error = o.p_error;
  options.compile.search.security =
      o.security == 132 ? tfhe::SecurityLevel::k132 : tfhe::SecurityLevel::k128;
  options.compile.profile = compiler::parse_profile(o.profile);
  options.compile.max_partitions = o.max_partitions;
  options.compile.output_noise_bits = o.output_noise_bits;
  if (o.bits) {
    q.n_bits = {o.input_bits, *o.bits, *o.bits, 8};
    q.rounding_threshold_bits = o.rounding_bits.value_or(*o.bits);
  } else {
    options.search.enabled = true;
    options.search.min_agreement = o.min_agreement;
    for (models::PrecisionCandidate c : models::default_precision_candidates()) {
      c.n_bits.model_inputs = o.input_bits;
      options.search.candidates.push_back(c);
    }
  }
  std::printf("imported %s: opset %lld, producer '%s'\n", o.model.c_str(),
              static_cast<long long>(imported.opset), imported.producer.c_str());
  for (const std::string& note : imported.notes) std::printf("  %s\n", note.c_str());
  const models::Link link = imported.post_processing;
  models::NeuralNetwork net(std::move(imported.graph), link, rows, options);
  for (std::size_t i = 0; i < net.trials().size(); ++i) {
    const models::PrecisionTrial& t = net.trials()[i];
    std::printf("  trial %2zu: activations %u, weights %u, rounding %u bits: ", i,
                t.candidate.n_bits.op_inputs, t.candidate.n_bits.op_weights,
                t.candidate.rounding_threshold_bits);
    if (!t.error.empty()) {
      std::printf("does not compile\n");
    } else {
      std::printf("agreement %.4f, %.0f ms per sample%s\n", t.agreement, t.estimated_latency_ms,
                  i == net.chosen_trial() ? "  <- chosen" : "");
    }
  }
  const nlohmann::json metadata = {{"estimator", "onnx"},
                                   {"source", std::filesystem::path(o.model).filename().string()},
                                   {"n_features_in", net.features()},
                                   {"classes", nullptr},
                                   {"single_output", false}};
  deploy::save_artifacts(out, net.circuit().circuit(), std::string(models::to_string(link)),
                         metadata.dump());
  std::printf("%s", runtime::report(net.circuit().circuit(), net.circuit().statistics()).c_str());
  std::printf("wrote %s/server.fheml and %s/client.fheml (client post-processing: %s)\n",
              o.out.c_str(), o.out.c_str(), std::string(models::to_string(link)).c_str());
}

}  // namespace

void add_compile_onnx_command(CLI::App& app) {
  auto o = std::make_shared<CompileOnnxOptions>();
  CLI::App* cmd = app.add_subcommand(
      "compile-onnx",
      "Compile an ONNX network into deployment artifacts (server.fheml, client.fheml)");
  cmd->add_option("model", o->model, "the .onnx file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--calibration", o->calibration,
                  "representative inputs as a .npy array [N, ...] (np.save)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", o->out, "directory for the artifacts")->required();
  cmd->add_option("--bits", o->bits,
                  "bits of activations and weights (default: the precision search)")
      ->check(CLI::Range(2, 8));
  cmd->add_option("--rounding-bits", o->rounding_bits,
                  "accumulators rounded to this many bits before a lookup (default: --bits)")
      ->check(CLI::Range(2, 8));
  cmd->add_option("--input-bits", o->input_bits, "bits of each input feature")
      ->check(CLI::Range(2, 16))
      ->capture_default_str();
  cmd->add_option("--rounding", o->rounding, "approximate (no extra bootstrap) or exact")
      ->check(CLI::IsMember({"approximate", "exact"}))
      ->capture_default_str();
  cmd->add_option("--p-error", o->p_error, "failure probability per bootstrap (default 2^-40)")
      ->check(CLI::Range(1e-300, 0.5));
  cmd->add_option("--security", o->security,
                  "bits of security the keys are chosen for: 128 (Concrete's curve) or 132 "
                  "(TFHE-rs's)")
      ->check(CLI::IsMember({128, 132}))
      ->capture_default_str();
  cmd->add_option("--profile", o->profile,
                  "standard, or ind-cpa-d when decrypted results may reach the server "
                  "(p_error <= 2^-64, 132-bit keys)")
      ->check(CLI::IsMember({"standard", "ind-cpa-d"}))
      ->capture_default_str();
  cmd->add_option("--max-partitions", o->max_partitions,
                  "up to this many parameter sets, one per group of lookups, each kept only if "
                  "it saves 5% of the estimated cost (1: one set for the whole circuit)")
      ->check(CLI::Range(std::size_t{1}, compiler::kMaxPartitions))
      ->capture_default_str();
  cmd->add_option("--output-noise-bits", o->output_noise_bits,
                  "approximate outputs: the noise may change the lowest bits of each output's "
                  "integer (within 2^(b-1)), so the last layer's lookups take cheaper "
                  "bootstraps (0: exact)")
      ->check(CLI::Range(std::uint32_t{0}, compiler::kMaxOutputNoiseBits))
      ->capture_default_str();
  cmd->add_option("--min-agreement", o->min_agreement,
                  "the search keeps the fastest candidate agreeing with the float network on "
                  "the calibration rows: the class of this share of them, and the outputs to "
                  "this R^2")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_flag("--force", o->force, "replace artifacts already in --out");
  cmd->callback([o] { run_compile_onnx(*o); });
}

}  // namespace fheml::cli
