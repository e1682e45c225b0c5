// libFuzzer target: loaders of LWE and GLWE ciphertexts and ciphertext lists.
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace fheml::tfhe;
  const std::span<const std::uint8_t> in(data, size);
  fheml::fuzz::exercise(in, ObjectType::kLweCiphertext, deserialize_lwe_ciphertext);
  fheml::fuzz::exercise(in, ObjectType::kLweCiphertextList, deserialize_lwe_ciphertext_list);
  fheml::fuzz::exercise(in, ObjectType::kSeededLweCiphertextList,
                        deserialize_seeded_lwe_ciphertext_list);
  fheml::fuzz::exercise(in, ObjectType::kGlweCiphertext, deserialize_glwe_ciphertext);
  return 0;
}
