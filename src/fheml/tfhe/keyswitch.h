// LWE key switching: from the big key (dimension k*N, what sample extraction yields) to the
// small key (dimension n, what the blind rotation consumes).
//
// Entry (i, j) of the key is an LWE encryption under the output key of s_in[i] * q/B^(j+1).
// Key switching decomposes each input mask coefficient (digits of mean zero:
// Decomposer::decompose_zero_mean) and subtracts digit * entry from the trivial ciphertext (0, b).
//
// Shared prefix: where the output key is the first n coefficients of the input key (fheml's
// small keys are: runtime/keys.cpp, tfhe/engine.cpp), the first n mask coefficients already are
// a ciphertext's mask under the output key and are copied; only the k*N - n others are
// decomposed, so the key has no rows for them. This is the "shared randomness" secret key and
// its shrinking key switch of Bergerat, Chillotti, Ligier, Orfila, Roux-Langlois and Tap, "New
// Secret Keys for Enhanced Performance in (T)FHE" (IACR ePrint 2023/979; TFHE-rs has it as
// core_crypto/experimental LweShrinkingKeyswitchKey): a key switch from N = 2048 to n = 771
// streams 38% less key and adds 38% less noise. Security: the LWE instance of the small key
// (n, lwe_std) and the GLWE instance of the big key (k*N, glwe_std) are each the estimator's
// 128-bit ones, as with independent keys; what sharing adds is that the bootstrap key encrypts
// coefficients of its own key (key-dependent messages), an assumption TFHE already makes (its
// key switching and bootstrap keys encrypt each other's keys) (docs/security.md).
#pragma once

#include <span>
#include <vector>

#include "fheml/tfhe/csprng.h"
#include "fheml/tfhe/huge_pages.h"
#include "fheml/tfhe/lwe.h"
#include "fheml/tfhe/types.h"

namespace fheml::tfhe {

struct KeyswitchShape {
  LweDimension input_dimension;
  LweDimension output_dimension;
  DecompositionBaseLog base_log;
  DecompositionLevelCount level;
  // 0, or output_dimension when the output key is the input key's first n coefficients (then
  // those are copied and the key has rows for the others only).
  std::size_t shared_prefix = 0;

  std::size_t switched_dimension() const { return input_dimension.value - shared_prefix; }
  std::size_t entry_count() const { return switched_dimension() * level.value; }
  std::size_t length() const { return entry_count() * lwe_size(output_dimension); }
  bool operator==(const KeyswitchShape&) const = default;
};

// Throws std::invalid_argument unless shared_prefix is 0 or the output dimension, and the
// output dimension is at most the input's when it is shared.
void check_keyswitch_shape(const KeyswitchShape& shape);

struct KeyswitchKey {
  KeyswitchShape shape;
  std::vector<Torus> data;  // entry (i, j) at ((i - shared_prefix) * level + j) * (n + 1)
  bool operator==(const KeyswitchKey&) const = default;
};

// Masks of input coefficient i come from keystream i of the seed: the key travels as one seed
// plus one body per entry (a 1/(n+1) fraction of the expanded size).
struct SeededKeyswitchKey {
  KeyswitchShape shape;
  Seed seed{};
  std::vector<Torus> bodies;  // entry_count()
  bool operator==(const SeededKeyswitchKey&) const = default;
};

// shared_prefix: whether the output key is the input key's first n coefficients (checked).
SeededKeyswitchKey generate_seeded_keyswitch_key(std::span<const std::uint64_t> input_key,
                                                 const LweSecretKey& output_key,
                                                 DecompositionBaseLog base_log,
                                                 DecompositionLevelCount level, NoiseStdDev noise,
                                                 const Seed& mask_seed, Csprng& noise_rng,
                                                 bool shared_prefix);
KeyswitchKey expand(const SeededKeyswitchKey& seeded);

// The server's compute form: every word of the key rounded to its top 32 bits, so that a key
// switch streams half the memory (the key is ~60 MB at 4 bits, ~1.4 GB at 8 bits, and streaming
// it is the whole cost). The output is only ever modulus-switched to 2N <= 2^17 afterwards, so
// working modulo 2^32 loses nothing that matters; the rounding adds the small variance of
// keyswitch_rounding_variance (noise.h). Security is unchanged: this form is a public function
// of the published key. (TFHE-rs reaches the same saving with 32-bit key-switch parameter sets.)
struct KeyswitchKey32 {
  KeyswitchShape shape;
  KeyVector<std::uint32_t> data;  // same layout as KeyswitchKey, on huge pages
};

KeyswitchKey32 to_compute_form(const KeyswitchKey& key);
// Straight from the seeded form, without materialising the 64-bit key (1.4 GB at 8 bits).
KeyswitchKey32 expand_to_compute_form(const SeededKeyswitchKey& seeded);

// out (output dimension + 1) = key switch of in (input dimension + 1).
void keyswitch(std::span<Torus> out, std::span<const Torus> in, const KeyswitchKey& key);
// Same, modulo 2^32: out's words are multiples of 2^32 (the result sits in their top half).
void keyswitch(std::span<Torus> out, std::span<const Torus> in, const KeyswitchKey32& key);
// The key switches of a group of ciphertexts, each entry of the key read from memory once for
// the whole group instead of once per ciphertext (the key is what a key switch streams). Each
// out[c] is bit for bit what keyswitch(out[c], in[c], key) gives.
void keyswitch_group(std::span<const std::span<Torus>> out,
                     std::span<const std::span<const Torus>> in, const KeyswitchKey32& key);

}  // namespace fheml::tfhe
