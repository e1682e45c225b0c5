// Shared by the key store and HTTP server tests: real models, compiled once per process from
// small float graphs and saved as deployment artifacts, and clients with real 128-bit keys.
//
//   mlp:    x[1,2] -> gemm 2x3 -> relu -> gemm 3x1   (lookups: the server needs a server key)
//   linear: x[1,3] -> gemm 3x2                        (no lookup: no server key, no bootstrap)
//
// Few features and 3-bit values keep keygen and bootstraps cheap (a lookup circuit's keygen is
// ~0.3 s), so every test can use real keys.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include "fheml/compiler/compile.h"
#include "fheml/deploy/deploy.h"
#include "fheml/ir/float_graph.h"
#include "fheml/runtime/runtime.h"
#include "test_helpers.h"

namespace fheml::deploy::test {

using fheml::test::TempDir;

inline ir::FloatTensor uniform_tensor(const ir::Shape& shape, std::mt19937& rng, double lo,
                                      double hi) {
  std::uniform_real_distribution<double> d(lo, hi);
  ir::FloatTensor t(shape);
  for (auto& v : t.data) v = d(rng);
  return t;
}

inline std::vector<runtime::FloatSample> uniform_samples(const ir::Shape& shape, std::size_t count,
                                                         std::mt19937& rng) {
  std::vector<runtime::FloatSample> samples;
  for (std::size_t i = 0; i < count; ++i) samples.push_back({uniform_tensor(shape, rng, -1, 1)});
  return samples;
}

enum class ModelKind { kMlp, kLinear };

// `seed` picks the weights: two seeds of one kind give two circuits of the same shapes (and, in
// practice, the same parameters) but different circuit ids.
inline compiler::Circuit compile_model(ModelKind kind, unsigned seed) {
  std::mt19937 rng(7000 + seed);
  ir::FloatGraph g;
  const ir::Shape shape = kind == ModelKind::kMlp ? ir::Shape{1, 2} : ir::Shape{1, 3};
  const auto dense = [&](ir::ValueId x, std::size_t in, std::size_t out, const std::string& name) {
    const auto w = g.constant(name + ".weight", uniform_tensor({out, in}, rng, -1, 1));
    const auto b = g.constant(name + ".bias", uniform_tensor({out}, rng, -0.3, 0.3));
    return g.gemm(x, w, b, /*trans_b=*/true, name);
  };
  const auto x = g.input("x", shape);
  if (kind == ModelKind::kMlp) {
    g.mark_output(dense(g.unary(ir::FloatOp::kRelu, dense(x, 2, 3, "fc1")), 3, 1, "fc2"));
  } else {
    g.mark_output(dense(x, 3, 2, "fc"));
  }
  std::vector<quant::Sample> calibration;
  for (const auto& s : uniform_samples(shape, 100, rng)) calibration.push_back(s);
  compiler::CompileOptions options;
  options.quantization.n_bits = quant::NBits::uniform(3);
  options.quantization.max_lookup_bits = 4;
  options.quantization.rounding_threshold_bits = 4;
  return compiler::compile(g, calibration, options);
}

// A model saved as artifacts, with a client whose keys are generated (the secret key in
// client_key_dir, never under artifact_dir).
struct DeployedModel {
  std::unique_ptr<TempDir> dir;
  std::filesystem::path artifact_dir;
  std::filesystem::path client_key_dir;
  compiler::Circuit circuit;
  std::unique_ptr<Client> client;
  std::vector<std::uint8_t> keys;  // client->serialized_evaluation_keys()

  // Another client of the same model and the same keys (read from client_key_dir): clients are
  // not thread-safe (the noise generator), so each thread of a test gets its own.
  std::unique_ptr<Client> new_client() const {
    auto c = std::make_unique<Client>(artifact_dir, client_key_dir);
    c->generate_private_and_evaluation_keys();
    return c;
  }
};

inline const DeployedModel& deployed(ModelKind kind, unsigned seed = 0) {
  static std::mutex mutex;
  static std::map<std::pair<int, unsigned>, std::unique_ptr<DeployedModel>> cache;
  std::lock_guard lock(mutex);
  auto& slot = cache[{static_cast<int>(kind), seed}];
  if (!slot) {
    auto m = std::make_unique<DeployedModel>();
    m->dir = std::make_unique<TempDir>("deployed-model");
    m->artifact_dir = m->dir->path() / "artifacts";
    m->client_key_dir = m->dir->path() / "client-keys";
    m->circuit = compile_model(kind, seed);
    save_artifacts(m->artifact_dir, m->circuit);
    m->client = std::make_unique<Client>(m->artifact_dir, m->client_key_dir);
    m->client->generate_private_and_evaluation_keys();
    m->keys = m->client->serialized_evaluation_keys();
    slot = std::move(m);
  }
  return *slot;
}

}  // namespace fheml::deploy::test
