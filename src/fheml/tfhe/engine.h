// The engine's front door: keys for one parameter set, encryption of small messages, and the
// server's key switch + programmable bootstrap, one at a time or as a parallel batch.
//
// Ciphertexts between operations live under the big key (dimension k*N), as in Concrete's and
// TFHE-rs's KS-PBS order: a lookup key-switches to the small key, then bootstraps back.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "fheml/tfhe/bootstrap.h"
#include "fheml/tfhe/csprng.h"
#include "fheml/tfhe/glwe.h"
#include "fheml/tfhe/keyswitch.h"
#include "fheml/tfhe/lwe.h"
#include "fheml/tfhe/parameters.h"
#include "fheml/tfhe/thread_pool.h"

namespace fheml::tfhe {

// Secret material: stays with the client.
struct ClientKey {
  PbsParameters parameters;
  LweSecretKey small_key;  // n: the big key's first n coefficients when n <= k*N (shares_small_key)
  GlweSecretKey glwe_key;  // k polynomials of N: the big LWE key once flattened
  LweDimension big_dimension() const {
    return extracted_lwe_dimension(parameters.glwe_dimension, parameters.polynomial_size);
  }
};

// Refuses (std::invalid_argument) parameters that validate() rejects, insecure ones included
// unless `check` says otherwise (tests only).
ClientKey generate_client_key(const PbsParameters& parameters, Csprng& secret_rng,
                              SecurityCheck check = SecurityCheck::kRequire128);

// The small key of dimension n that shares the big key's first n coefficients (a copy of them).
LweSecretKey small_key_of(std::span<const std::uint64_t> big_key, LweDimension n);
// Throws std::invalid_argument when the set shares its small key (shares_small_key) and the
// key's small key is not its big key's first n coefficients (a key of an earlier fheml).
void check_shared_prefix(const ClientKey& client);
// The key switching key's shape from the set's own big key (shared prefix when n <= k*N).
KeyswitchShape keyswitch_shape_of(const PbsParameters& p);

// Evaluation keys as they travel: masks regenerated from seeds.
struct CompressedServerKey {
  PbsParameters parameters;
  SeededKeyswitchKey keyswitch_key;
  SeededBootstrapKey bootstrap_key;
};

// Evaluation keys as the server computes with them.
struct ServerKey {
  PbsParameters parameters;
  KeyswitchKey32 keyswitch_key;
  FourierBootstrapKey bootstrap_key;
};

// Uses `noise_rng` for the noise and fresh OS-entropy seeds for the masks. The client key is
// checked first, as one built by hand may be anything: its parameters (validate(), 128-bit
// unless `check` says otherwise, tests only), its keys' sizes against them, binary coefficients.
CompressedServerKey generate_compressed_server_key(const ClientKey& client, Csprng& noise_rng);
CompressedServerKey generate_compressed_server_key(
    const ClientKey& client, Csprng& noise_rng, const Seed& mask_seed,
    SecurityCheck check = SecurityCheck::kRequire128);
// Checks that the parameters are runnable (and 128-bit secure unless `check` says otherwise) and
// that both keys have the shapes they imply. With `keyswitch` false the key switching key is
// left empty (a circuit's partition whose lookups all read another big key never uses it).
ServerKey decompress(const CompressedServerKey& compressed,
                     SecurityCheck check = SecurityCheck::kRequire128, bool keyswitch = true);

// Sizes in bytes, as they travel and as the server holds them.
struct KeySizes {
  std::size_t keyswitch_compressed = 0, keyswitch_expanded = 0;
  std::size_t bootstrap_compressed = 0, bootstrap_expanded = 0, bootstrap_fourier = 0;
};
KeySizes key_sizes(const PbsParameters& parameters);

// Encryption of a p-bit message (with padding) under the big key.
LweCiphertext encrypt(const ClientKey& key, std::uint64_t message, MessageBits p, Csprng& rng);
SeededLweCiphertextList encrypt_compressed(const ClientKey& key,
                                           std::span<const std::uint64_t> messages, MessageBits p,
                                           Csprng& noise_rng);
std::uint64_t decrypt(const ClientKey& key, std::span<const Torus> ct, MessageBits p);

// Per-thread buffers of one key switch + bootstrap.
class PbsWorkspace {
 public:
  explicit PbsWorkspace(const ServerKey& key);
  explicit PbsWorkspace(const BootstrapShape& shape);

 private:
  friend void keyswitch_bootstrap(std::span<Torus>, std::span<const Torus>, const ServerKey&,
                                  const LookupTable&, PbsWorkspace&);
  friend LweCiphertextList keyswitch_bootstrap_batch(const ServerKey&, const LweCiphertextList&,
                                                     std::span<const LookupTable* const>,
                                                     ThreadPool&);
  friend LweCiphertextList keyswitch_bootstrap_batch(const KeyswitchKey32&,
                                                     const FourierBootstrapKey&,
                                                     const LweCiphertextList&,
                                                     std::span<const LookupTable* const>,
                                                     ThreadPool&);
  std::vector<Torus> small_;
  BootstrapScratch scratch_;
};

// outputs: table.function_count ciphertexts under the big key, contiguous.
void keyswitch_bootstrap(std::span<Torus> outputs, std::span<const Torus> input,
                         const ServerKey& key, const LookupTable& table, PbsWorkspace& workspace);
LweCiphertextList keyswitch_bootstrap(const ServerKey& key, std::span<const Torus> input,
                                      const LookupTable& table);

// Bootstraps every ciphertext of `inputs` through tables[i] (or tables[0] for all when a
// single table is given) on all workers of `pool`, a few ciphertexts per work item blind-rotated
// together (blind_rotate_group: the key is streamed once per group). Results are bit-identical
// to one-by-one calls.
LweCiphertextList keyswitch_bootstrap_batch(const ServerKey& key, const LweCiphertextList& inputs,
                                            std::span<const LookupTable* const> tables,
                                            ThreadPool& pool = ThreadPool::global());
// The same with a key switching key and a bootstrap key given apart: the key switch may come
// from another big key than the one the bootstrap key encrypts under (a circuit whose partitions
// have their own k and N; runtime/). Its input dimension must be the inputs', its output the
// bootstrap key's input; the outputs are under the bootstrap key's big key.
LweCiphertextList keyswitch_bootstrap_batch(const KeyswitchKey32& keyswitch_key,
                                            const FourierBootstrapKey& bootstrap_key,
                                            const LweCiphertextList& inputs,
                                            std::span<const LookupTable* const> tables,
                                            ThreadPool& pool = ThreadPool::global());

}  // namespace fheml::tfhe
