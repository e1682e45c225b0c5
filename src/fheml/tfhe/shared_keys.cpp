// Small keys shared with the big key (keyswitch.h, "Shared prefix"): the pieces the
// deserializers need too, apart from engine.cpp (scripts/fuzz.sh builds them with clang, without
// the FFT).
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "fheml/tfhe/engine.h"
#include "fheml/tfhe/errors.h"

namespace fheml::tfhe {

KeyswitchShape keyswitch_shape_of(const PbsParameters& p) {
  return {extracted_lwe_dimension(p.glwe_dimension, p.polynomial_size), p.lwe_dimension,
          p.ks_base_log, p.ks_level, shares_small_key(p) ? p.lwe_dimension.value : 0};
}

LweSecretKey small_key_of(std::span<const std::uint64_t> big_key, LweDimension n) {
  if (n.value > big_key.size()) {
    throw_invalid_argument("small_key_of: n = " + std::to_string(n.value) +
                           " is longer than the big key (" + std::to_string(big_key.size()) +
                           " coefficients)");
  }
  return LweSecretKey{
      SecretWords(big_key.begin(), big_key.begin() + static_cast<std::ptrdiff_t>(n.value))};
}

void check_shared_prefix(const ClientKey& client) {
  if (!shares_small_key(client.parameters)) return;
  // An OR of the differences, without a branch on a key bit.
  std::uint64_t differ = 0;
  const std::span<const std::uint64_t> big = client.glwe_key.as_lwe_key();
  for (std::size_t t = 0; t < client.small_key.bits.size() && t < big.size(); ++t)
    differ |= client.small_key.bits[t] ^ big[t];
  if (differ != 0) {
    throw_invalid_argument(
        "client key: its small key is not the first n coefficients of its big key, as fheml's "
        "keys are since serialization format 2 (keys made by an earlier fheml had independent "
        "small keys); generate a new key with this version");
  }
}

}  // namespace fheml::tfhe
