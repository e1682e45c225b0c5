// Objects the Python bindings call from several threads at once (the GIL is released around
// everything that computes): a deploy::Client encrypting and a runtime::FheCircuit running.
// Each call must draw its own noise stream: two ciphertexts with the same noise word and
// different masks would give a noiseless linear equation on the secret key.
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <set>
#include <thread>
#include <vector>

#include "fheml/deploy/deploy.h"
#include "fheml/models/linear_model.h"
#include "fheml/tfhe/lwe.h"
#include "fheml/tfhe/serialization.h"
#include "test_helpers.h"

namespace fheml::deploy {
namespace {

constexpr int kThreads = 8;

compiler::Circuit three_feature_linear() {
  const models::Matrix coef{3, 1, {0.5, -1.0, 0.25}};
  const models::Matrix rows{3, 3, {0, 1, 2, -1, 0.5, 3, 2, 2, 2}};
  models::LinearModel model(coef, std::vector<double>{0.1}, models::Link::kIdentity, rows);
  return model.circuit().circuit();
}

std::vector<std::uint8_t> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(Concurrency, ClientEncryptionsOnEightThreadsNeverShareNoise) {
  test::TempDir dir("noise-race");
  Client client(make_client_spec(three_feature_linear()), dir.path() / "keys");
  client.generate_private_and_evaluation_keys();
  const tfhe::ClientKey key =
      tfhe::deserialize_client_key(read_bytes(dir.path() / "keys" / kClientKeyFile));
  // The same sample every time: the phases of its ciphertexts differ by their noise only.
  const std::vector<runtime::FloatSample> sample{
      {ir::FloatTensor({1, 3}, std::vector<double>{0.5, 0.5, 0.5})}};
  constexpr int kCalls = 40;
  std::vector<std::vector<std::uint8_t>> requests(kThreads * kCalls);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int c = 0; c < kCalls; ++c)
        requests[t * kCalls + c] = client.quantize_encrypt_serialize(sample);
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<std::vector<tfhe::Torus>> noise;  // per request: the phases of its 3 ciphertexts
  for (const auto& request : requests) {
    const EncryptedInputs in = deserialize_encrypted_inputs(request);
    const tfhe::LweCiphertextList list = tfhe::expand(in.inputs.at(0).ciphertexts);
    std::vector<tfhe::Torus> phases;
    for (std::size_t i = 0; i < list.count(); ++i)
      phases.push_back(tfhe::decrypt_lwe_phase(list.at(i), key.glwe_key.bits));
    noise.insert(phases);
  }
  EXPECT_EQ(noise.size(), requests.size()) << "two encryptions drew the same noise";
}

TEST(Concurrency, OneCircuitRunOnEightThreadsMakesItsKeysOnceAndStaysExact) {
  // Eight threads execute on one FheCircuit that has no keys yet: one keygen, every result
  // equal to the clear circuit's.
  runtime::FheCircuitOptions options;
  options.threads = 1;
  runtime::FheCircuit circuit(three_feature_linear(), options);
  std::vector<runtime::IntSample> samples;
  for (std::int64_t v = 0; v < 16; ++v)
    samples.push_back({ir::IntTensor({1, 3}, std::vector<std::int64_t>{v, 15 - v, v * 7 % 16})});
  const auto clear = circuit.run_integers(samples, runtime::Mode::kDisable);
  std::vector<std::vector<runtime::IntSample>> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      results[t] = circuit.run_integers(
          samples, t % 2 == 0 ? runtime::Mode::kExecute : runtime::Mode::kSimulate);
    });
  }
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(results[t], clear) << "thread " << t;
  EXPECT_TRUE(circuit.statistics().last_run.has_value());
}

}  // namespace
}  // namespace fheml::deploy
