// LWE secret keys and ciphertexts, encoding of small messages, and the linear operations.
//
// A ciphertext of dimension n is n mask coefficients followed by the body:
//   (a_0, ..., a_{n-1}, b)  with  b = sum a_i s_i + plaintext + e   (mod 2^64).
// Algorithms take spans (views) and write into caller buffers; the owned types are thin.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "fheml/tfhe/csprng.h"
#include "fheml/tfhe/secret.h"
#include "fheml/tfhe/types.h"

namespace fheml::tfhe {

// Binary secret key: one word (0 or 1) per coefficient.
struct LweSecretKey {
  SecretWords bits;  // wiped when freed
  LweDimension dimension() const { return LweDimension{bits.size()}; }
  bool operator==(const LweSecretKey&) const = default;
};

LweSecretKey generate_lwe_secret_key(LweDimension n, Csprng& secret_rng);

struct LweCiphertext {
  std::vector<Torus> data;  // mask then body
  LweCiphertext() = default;
  explicit LweCiphertext(LweDimension n) : data(lwe_size(n), 0) {}
  LweDimension dimension() const { return LweDimension{data.size() - 1}; }
  Torus body() const { return data.back(); }
  bool operator==(const LweCiphertext&) const = default;
};

// Many ciphertexts of one dimension, contiguous: the unit of work of a batch.
struct LweCiphertextList {
  LweDimension dimension{0};
  std::vector<Torus> data;
  LweCiphertextList() = default;
  LweCiphertextList(LweDimension n, std::size_t count) : dimension(n), data(lwe_size(n) * count) {}
  std::size_t count() const { return data.size() / lwe_size(dimension); }
  std::span<Torus> at(std::size_t i) {
    return {data.data() + i * lwe_size(dimension), lwe_size(dimension)};
  }
  std::span<const Torus> at(std::size_t i) const {
    return {data.data() + i * lwe_size(dimension), lwe_size(dimension)};
  }
  bool operator==(const LweCiphertextList&) const = default;
};

// --- Encoding of p-bit messages with one padding bit: m -> m * 2^(63 - p).
// The padding bit keeps messages in the first half of the torus, which the negacyclic blind
// rotation needs; it also absorbs one carry from additions.
Torus delta(MessageBits p);
Torus encode(std::uint64_t message, MessageBits p);  // throws if message >= 2^p
// Rounds to the nearest multiple of delta and returns it modulo 2^p (the padding bit dropped).
std::uint64_t decode(Torus plaintext, MessageBits p);
// Signed distance between a phase and the encoding of a message: the noise, for statistical tests.
std::int64_t noise_of(Torus phase, Torus expected_plaintext);

// --- Encryption. The mask comes from `mask_rng` (which may be public and seeded: compressed
// ciphertexts), the noise from `noise_rng` (secret).
void encrypt_lwe(std::span<Torus> out, std::span<const std::uint64_t> key, Torus plaintext,
                 NoiseStdDev noise, Csprng& mask_rng, Csprng& noise_rng);
LweCiphertext allocate_and_encrypt_lwe(const LweSecretKey& key, Torus plaintext, NoiseStdDev noise,
                                       Csprng& mask_rng, Csprng& noise_rng);
// A noiseless ciphertext with zero mask: a known constant.
LweCiphertext trivial_lwe(LweDimension n, Torus plaintext);
// body - <mask, key>: plaintext plus noise.
Torus decrypt_lwe_phase(std::span<const Torus> ct, std::span<const std::uint64_t> key);

// --- Linear operations (all wrapping mod 2^64). Sizes are checked.
void lwe_add_assign(std::span<Torus> lhs, std::span<const Torus> rhs);
void lwe_sub_assign(std::span<Torus> lhs, std::span<const Torus> rhs);
void lwe_negate_assign(std::span<Torus> ct);
void lwe_mul_scalar_assign(std::span<Torus> ct, std::int64_t scalar);
// lhs += scalar * rhs in one pass: a multiply-accumulate without a scaled copy of rhs.
void lwe_add_scaled_assign(std::span<Torus> lhs, std::span<const Torus> rhs, std::int64_t scalar);
void lwe_add_plaintext_assign(std::span<Torus> ct, Torus plaintext);

// --- Lists. Ciphertext i of the result encrypts plaintexts[i] under `key`; the masks are drawn
// in order from `mask_rng`, which must be a CSPRNG stream no other ciphertext uses (e.g.
// Csprng(random_seed())). Each mask is generated once, straight into the list: what a client and
// server in one process use, where a seeded list would have its masks generated a second time by
// expand.
LweCiphertextList encrypt_lwe_list(std::span<const std::uint64_t> key,
                                   std::span<const Torus> plaintexts, NoiseStdDev noise,
                                   Csprng& mask_rng, Csprng& noise_rng);

// --- Seeded (compressed) ciphertexts: the masks of ciphertext i are the keystream i of `seed`,
// so a list of LWE ciphertexts travels as one seed plus one body each. `mask_seed` must be fresh
// for every list (random_seed()): two lists under one key and one seed share their masks, and
// the difference of their bodies would reveal the difference of their messages.
struct SeededLweCiphertextList {
  LweDimension dimension{0};
  Seed seed{};
  std::vector<Torus> bodies;
  std::size_t count() const { return bodies.size(); }
  bool operator==(const SeededLweCiphertextList&) const = default;
};

SeededLweCiphertextList encrypt_seeded_lwe_list(const LweSecretKey& key,
                                                std::span<const Torus> plaintexts,
                                                NoiseStdDev noise, const Seed& mask_seed,
                                                Csprng& noise_rng);
// The same on a key view (GlweSecretKey::as_lwe_key), without copying the key.
SeededLweCiphertextList encrypt_seeded_lwe_list(std::span<const std::uint64_t> key,
                                                std::span<const Torus> plaintexts,
                                                NoiseStdDev noise, const Seed& mask_seed,
                                                Csprng& noise_rng);
LweCiphertextList expand(const SeededLweCiphertextList& seeded);

}  // namespace fheml::tfhe
