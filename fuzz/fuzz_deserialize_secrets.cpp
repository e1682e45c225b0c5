// libFuzzer target: loaders of parameters and secret keys.
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace fheml::tfhe;
  const std::span<const std::uint8_t> in(data, size);
  fheml::fuzz::exercise(in, ObjectType::kPbsParameters, deserialize_pbs_parameters);
  fheml::fuzz::exercise(in, ObjectType::kLweSecretKey, deserialize_lwe_secret_key);
  fheml::fuzz::exercise(in, ObjectType::kGlweSecretKey, deserialize_glwe_secret_key);
  fheml::fuzz::exercise(in, ObjectType::kClientKey, deserialize_client_key);
  return 0;
}
