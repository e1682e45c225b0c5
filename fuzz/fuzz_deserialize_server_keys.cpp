// libFuzzer target: loaders of key switching, bootstrap and compressed server keys.
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace fheml::tfhe;
  const std::span<const std::uint8_t> in(data, size);
  fheml::fuzz::exercise(in, ObjectType::kKeyswitchKey, deserialize_keyswitch_key);
  fheml::fuzz::exercise(in, ObjectType::kSeededKeyswitchKey, deserialize_seeded_keyswitch_key);
  fheml::fuzz::exercise(in, ObjectType::kBootstrapKey, deserialize_bootstrap_key);
  fheml::fuzz::exercise(in, ObjectType::kSeededBootstrapKey, deserialize_seeded_bootstrap_key);
  fheml::fuzz::exercise(in, ObjectType::kCompressedServerKey, deserialize_compressed_server_key);
  return 0;
}
