// Programmable bootstrapping: modulus switch, blind rotation by CMux external products, sample
// extraction. One bootstrap applies a lookup table to the message and resets the noise; with
// several tables packed in one test polynomial (many-LUT) it returns one ciphertext per table.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "fheml/tfhe/aligned.h"
#include "fheml/tfhe/csprng.h"
#include "fheml/tfhe/ggsw.h"
#include "fheml/tfhe/glwe.h"
#include "fheml/tfhe/huge_pages.h"
#include "fheml/tfhe/lwe.h"
#include "fheml/tfhe/thread_pool.h"
#include "fheml/tfhe/types.h"

namespace fheml::tfhe {

struct BootstrapShape {
  LweDimension input_dimension;  // n, the small key
  GgswShape ggsw;

  std::size_t length() const { return input_dimension.value * ggsw.length(); }
  LweDimension output_dimension() const {
    return extracted_lwe_dimension(ggsw.glwe_dimension, ggsw.polynomial_size);
  }
  bool operator==(const BootstrapShape&) const = default;
};

// Standard-domain bootstrap key: GGSW encryptions of the n small-key bits under the GLWE key.
struct BootstrapKey {
  BootstrapShape shape;
  std::vector<Torus> data;
  bool operator==(const BootstrapKey&) const = default;
};

// GGSW i draws its row masks from keystream i of the seed; only bodies travel (1/(k+1) of the
// expanded size).
struct SeededBootstrapKey {
  BootstrapShape shape;
  Seed seed{};
  std::vector<Torus> bodies;  // n * (k+1) * level * N
  bool operator==(const SeededBootstrapKey&) const = default;
};

// What the server computes with: doubles in the FFT's layout, converted once after loading.
struct FourierBootstrapKey {
  BootstrapShape shape;
  KeyVector<double> data;  // on huge pages: streamed once per bootstrap
};

SeededBootstrapKey generate_seeded_bootstrap_key(const LweSecretKey& input_key,
                                                 const GlweSecretKey& output_key,
                                                 DecompositionBaseLog base_log,
                                                 DecompositionLevelCount level, NoiseStdDev noise,
                                                 const Seed& mask_seed, Csprng& noise_rng);
BootstrapKey expand(const SeededBootstrapKey& seeded);
FourierBootstrapKey to_fourier(const BootstrapKey& key);
// Straight from the seeded form, one GGSW at a time on the pool's threads: never holds the
// standard-domain key (2 GB at 8 bits). Bit-identical to to_fourier(expand(seeded)).
FourierBootstrapKey expand_to_fourier(const SeededBootstrapKey& seeded, ThreadPool& pool);

// A test polynomial holding `function_count` tables of 2^input_bits entries, interleaved so
// that one blind rotation serves all of them (Chillotti-Ligier-Orfila-Tap 2021, "many-LUT").
// A single table is function_count == 1.
struct LookupTable {
  PolynomialSize polynomial_size{0};
  MessageBits input_bits{0};
  std::size_t function_count = 0;
  std::vector<Torus> polynomial;
  // The bits of precision the bootstrap needs: input_bits + log2(function_count).
  std::size_t bootstrap_bits() const;
};

// `outputs[f][m]` is the torus value (already encoded) that table f returns for message m.
// The number of tables must be a power of two, and N >= 2^(bootstrap_bits + 1).
LookupTable make_lookup_table(PolynomialSize n, MessageBits input_bits,
                              std::span<const std::vector<Torus>> outputs);
// Convenience: one table of cleartext outputs f(m) in [0, 2^output_bits), encoded with padding.
LookupTable make_lookup_table(PolynomialSize n, MessageBits input_bits,
                              std::span<const std::uint64_t> outputs, MessageBits output_bits);

class BootstrapScratch {
 public:
  explicit BootstrapScratch(const BootstrapShape& shape);

 private:
  friend void blind_rotate(std::span<Torus>, std::span<const Torus>, const FourierBootstrapKey&,
                           const LookupTable&, BootstrapScratch&);
  friend void blind_rotate_group(std::span<const std::span<Torus>>,
                                 std::span<const std::span<const Torus>>,
                                 const FourierBootstrapKey&, std::span<const LookupTable* const>,
                                 BootstrapScratch&);
  friend void programmable_bootstrap_group(std::span<const std::span<Torus>>,
                                           std::span<const std::span<const Torus>>,
                                           const FourierBootstrapKey&,
                                           std::span<const LookupTable* const>, BootstrapScratch&);
  ExternalProductScratch external_product_;
  AlignedVector<Torus> group_accumulators_;  // the transforms' input and output: aligned
  AlignedVector<Torus> saved_component_;     // an extended CMux's one copy (blind_rotate_group)
};

// Rounds a torus value to Z_{2N}: the modulus switch before blind rotation.
std::size_t modulus_switch(Torus x, PolynomialSize n);

// The noiseless value a bootstrap extracts for table `function` when the modulus-switched phase
// is `ms_index` (in [0, 2N)): coefficient function * box of X^(-ms_index) * table.polynomial,
// negacyclic. The clear model of programmable_bootstrap that the runtime's simulation reads, so
// that simulated and encrypted lookups share one definition of what a table returns.
Torus lookup_clear(const LookupTable& table, std::size_t ms_index, std::size_t function = 0);

// Lookup tables may be larger than the key's ring: polynomial size N' = 2^nu * N with
// 2^nu <= kMaxExtension ("extended" tables). The modulus switch then rounds to Z_{2N'}, so a
// p-bit lookup needs N' >= 2^(p+1) while the bootstrap key, its noise and its transforms stay at
// the key's N: the accumulator is 2^nu GLWEs of R_N (component j holds the coefficients
// j + 2^nu t of the big ring's polynomials) and each CMux is 2^nu external products of R_N.
// This is the tower R_N' = R_N[X]/(X^(2^nu) - Y), Y = X^(2^nu): a key of R_N is an element of
// the subring, so multiplying by it, or by a GGSW under it, acts on each component alone. The
// extracted ciphertext is under the key's k*N: what a bootstrap with the key's own N gives, at
// the precision of N'. 8 bits need 2N' = 2^16: with N = 2048 that is 16 external products of
// 64 KiB GGSWs each, cache-resident, instead of one of a 2 MiB GGSW streamed from memory with
// transforms of 2^15 (bench/README.md, "Extended lookup tables").
inline constexpr std::size_t kMaxExtension = 64;

// (k+1) * the table's polynomial size: the accumulator a blind rotation through `table` needs.
// Throws std::invalid_argument unless the table fits the key (see kMaxExtension).
std::size_t accumulator_length(const BootstrapShape& shape, const LookupTable& table);

// Leaves in `accumulator` (accumulator_length) a GLWE encryption of X^(-phase) * table, in the
// extended layout above when the table is larger than the key's ring.
void blind_rotate(std::span<Torus> accumulator, std::span<const Torus> small_lwe,
                  const FourierBootstrapKey& key, const LookupTable& table,
                  BootstrapScratch& scratch);

// Blind-rotates several ciphertexts together (member c through tables[c]), step by step, so
// that each GGSW of the key is read from memory once per group: the batch path. Results are
// bit-identical to blind_rotate on each member.
void blind_rotate_group(std::span<const std::span<Torus>> accumulators,
                        std::span<const std::span<const Torus>> small_lwes,
                        const FourierBootstrapKey& key, std::span<const LookupTable* const> tables,
                        BootstrapScratch& scratch);

// programmable_bootstrap for a group (see blind_rotate_group).
void programmable_bootstrap_group(std::span<const std::span<Torus>> outputs,
                                  std::span<const std::span<const Torus>> small_lwes,
                                  const FourierBootstrapKey& key,
                                  std::span<const LookupTable* const> tables,
                                  BootstrapScratch& scratch);

// Bootstraps a small-key ciphertext (dimension n) into `outputs` (function_count ciphertexts of
// dimension k*N, contiguous): the many-LUT form; a single table gives one ciphertext.
void programmable_bootstrap(std::span<Torus> outputs, std::span<const Torus> small_lwe,
                            const FourierBootstrapKey& key, const LookupTable& table,
                            BootstrapScratch& scratch);

}  // namespace fheml::tfhe
