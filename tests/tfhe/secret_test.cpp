// Secrets are wiped when freed: key coefficients live in WipingAllocator memory, serialized keys
// are zeroed by the code that held them (deploy, runtime::key_id).
#include "fheml/tfhe/secret.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <type_traits>
#include <vector>

#include "fheml/tfhe/glwe.h"
#include "fheml/tfhe/lwe.h"

namespace fheml::tfhe {
namespace {

TEST(Secrets, KeyCoefficientsLiveInMemoryWipedWhenFreed) {
  static_assert(std::is_same_v<decltype(LweSecretKey::bits), SecretWords>);
  static_assert(std::is_same_v<decltype(GlweSecretKey::bits), SecretWords>);
  static_assert(std::is_same_v<SecretWords::allocator_type, WipingAllocator<std::uint64_t>>);
  // Copies keep the allocator: a key copied around is wiped too.
  LweSecretKey key{SecretWords(8, 1)};
  const LweSecretKey copy = key;
  EXPECT_EQ(copy, key);
  GlweSecretKey glwe{GlweDimension{1}, PolynomialSize{4}, SecretWords(4, 1)};
  const LweSecretKey flattened = glwe.to_lwe_key();
  EXPECT_EQ(flattened.bits.size(), 4u);
}

TEST(Secrets, WipeZeroesAndEmptiesABuffer) {
  std::vector<std::uint8_t> bytes(64, 0xAB);
  const std::uint8_t* data = bytes.data();
  const std::size_t capacity = bytes.capacity();
  wipe(bytes);
  EXPECT_TRUE(bytes.empty());
  EXPECT_EQ(bytes.capacity(), capacity);  // the same block, still owned: its bytes are readable
  for (std::size_t i = 0; i < 64; ++i) EXPECT_EQ(data[i], 0) << i;
}

}  // namespace
}  // namespace fheml::tfhe
