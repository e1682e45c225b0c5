// The README's C++ example, built and run by the test suite (ctest: example_engine_quickstart).
// An encrypted lookup m -> m^2 mod 16 on a 4-bit message, with the default 128-bit parameters.
#include <cstdint>
#include <cstdio>
#include <vector>

#include "fheml/tfhe/engine.h"

int main() {
  using namespace fheml::tfhe;

  const MessageBits bits{4};
  const PbsParameters& params = default_parameters(bits);  // 128-bit secure, p_fail <= 2^-40
  Csprng rng(random_seed());                               // ChaCha20 (libsodium), OS-seeded
  ClientKey client = generate_client_key(params, rng);     // stays with the client
  CompressedServerKey wire = generate_compressed_server_key(client, rng);  // what travels
  ServerKey server = decompress(wire);  // what the server computes with

  std::vector<std::uint64_t> square(16);
  for (std::uint64_t m = 0; m < 16; ++m) square[m] = (m * m) % 16;
  const LookupTable lut = make_lookup_table(lookup_polynomial_size(params), bits, square, bits);

  const LweCiphertext ct = encrypt(client, 7, bits, rng);                   // client
  const LweCiphertextList out = keyswitch_bootstrap(server, ct.data, lut);  // server
  const std::uint64_t result = decrypt(client, out.at(0), bits);            // client: 49 % 16

  std::printf("7^2 mod 16 = %llu (encrypted lookup)\n", static_cast<unsigned long long>(result));
  return result == 1 ? 0 : 1;
}
