// Shared helpers of the engine tests: a per-process key cache (key generation is the slow part
// of many tests) and the test profile.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "fheml/tfhe/engine.h"

namespace fheml::test {

// FHEML_TEST_PROFILE=sanitize trims repetitions and the largest precisions: the sanitizer build
// runs 5-20x slower and checks memory safety, not statistics.
inline bool sanitize_profile() {
  const char* profile = std::getenv("FHEML_TEST_PROFILE");
  return profile != nullptr && std::string(profile) == "sanitize";
}

struct TestKeys {
  tfhe::ClientKey client;
  tfhe::ServerKey server;
};

// Keys generated once per process and parameter set, from a fixed seed (reproducible runs).
inline const TestKeys& keys_for(const tfhe::PbsParameters& params) {
  static std::mutex mutex;
  static std::map<std::uint64_t, std::unique_ptr<TestKeys>> cache;
  std::lock_guard lock(mutex);
  auto& slot = cache[tfhe::fingerprint(params)];
  if (!slot) {
    tfhe::Csprng rng(tfhe::test_seed(tfhe::fingerprint(params)));
    tfhe::ClientKey client = tfhe::generate_client_key(params, rng);
    tfhe::ServerKey server = tfhe::decompress(tfhe::generate_compressed_server_key(
        client, rng, tfhe::test_seed(~tfhe::fingerprint(params))));
    slot = std::make_unique<TestKeys>(TestKeys{std::move(client), std::move(server)});
  }
  return *slot;
}

}  // namespace fheml::test
