// Parameters of the KS-PBS atomic pattern (as in Concrete / TFHE-rs): a ciphertext under the big
// key of dimension k*N is key-switched to dimension n, modulus-switched to 2N, blind-rotated with
// a bootstrap key of n GGSW ciphertexts, and sample-extracted back to dimension k*N.
//
// This header also holds the cost model, the parameter search (minimum cost under 128-bit
// security and a failure-probability bound) and the built-in table produced by that search.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "fheml/tfhe/security.h"
#include "fheml/tfhe/types.h"

namespace fheml::tfhe {

struct PbsParameters {
  LweDimension lwe_dimension;      // n
  GlweDimension glwe_dimension;    // k
  PolynomialSize polynomial_size;  // N
  NoiseStdDev lwe_noise;           // small-key LWE (key switching key)
  NoiseStdDev glwe_noise;          // GLWE / GGSW / big-key LWE (fresh encryptions)
  DecompositionBaseLog pbs_base_log;
  DecompositionLevelCount pbs_level;
  DecompositionBaseLog ks_base_log;
  DecompositionLevelCount ks_level;
  // Lookup tables of N * 2^extension_log coefficients (bootstrap.h, kMaxExtension): the modulus
  // switch rounds to 2N * 2^extension_log, which is what a lookup's precision needs, while the
  // keys, their noise and their transforms stay at N. 0: the classic bootstrap.
  std::size_t extension_log = 0;
  bool operator==(const PbsParameters&) const = default;
};

// N * 2^extension_log: the size of the set's lookup tables, and what the modulus switch before
// a blind rotation rounds to (2 * it). The precision a lookup gets is that of this size.
inline PolynomialSize lookup_polynomial_size(const PbsParameters& params) {
  return PolynomialSize{params.polynomial_size.value << params.extension_log};
}

// Bound on the probability that one bootstrap decodes to the wrong message.
enum class FailureBound { k2m40, k2m64 };

// log2 of the bound: -40 or -64.
double log2_bound(FailureBound bound);

// Built-in parameters for p-bit messages (p = 1..8) and a failure bound, found by
// search_parameters with SearchOptions defaults (nu2 = 1) and hard-coded; the tests recompute
// them. Throws std::invalid_argument for p outside 1..8.
const PbsParameters& default_parameters(MessageBits p, FailureBound bound = FailureBound::k2m40);

// Whether validate() also demands 128-bit security. Only tests and test vectors may use the
// second value, whose name says what it does: it exists so that tiny, fast, INSECURE parameter
// sets can exercise code paths. No options struct of the library carries it as a field: it is
// passed explicitly, to the tfhe-level functions only (generate_client_key,
// generate_compressed_server_key, decompress, validate); every model, circuit and deployment
// path demands 128 bits.
enum class SecurityCheck { kRequire128, kUnsafeAllowInsecure };

// Throws std::invalid_argument, naming the field, the value and the allowed range, unless the
// set is one this engine can run: k in 1..16, N a power of two in [32, 2^17] (the FFT's range),
// 2^extension_log <= kMaxExtension with N * 2^extension_log <= 2^17,
// n in 1..2^21, decomposition base_log in 1..32 with level >= 1, bootstrap base_log * level
// <= 52 (the FFT's double precision) and key switch base_log * level <= 63, noise standard
// deviations finite in (0, 2^-10]; and, with kRequire128, both noises at or above the 128-bit
// curve for their dimension (is_secure_128 for n and for k*N).
void validate(const PbsParameters& params, SecurityCheck check = SecurityCheck::kRequire128);

// Stable 64-bit identity of a parameter set for serialization: FNV-1a over a version tag and
// every field, each as 8 little-endian bytes (noise as its IEEE-754 bit pattern).
std::uint64_t fingerprint(const PbsParameters& params);

// Whether two sets share their big key: the same k * N and GLWE noise (one LWE key of k * N bits
// reads as a GLWE key of any k and N with that product).
bool same_big_key(const PbsParameters& a, const PbsParameters& b);

// Whether the set's small key is its big key's first n coefficients (n <= k*N; fheml's keys
// always are then: runtime/keys.cpp, tfhe/engine.cpp): its key switch from its own big key copies
// those n mask coefficients and decomposes the others (keyswitch.h, "Shared prefix").
inline bool shares_small_key(std::size_t n, std::size_t big_dimension) {
  return n <= big_dimension;
}
bool shares_small_key(const PbsParameters& params);
// The coefficients a key switch from a big key of `big_dimension` into the small key of
// dimension n decomposes: big_dimension - n when it is the set's own big key and shares the small
// key, else all of them.
inline std::size_t switched_dimension(std::size_t big_dimension, std::size_t n, bool own_big_key) {
  return own_big_key && shares_small_key(n, big_dimension) ? big_dimension - n : big_dimension;
}

// One line, e.g. "n=771 k=1 N=2048 lwe_std=2^-17.14 glwe_std=2^-49.95 pbs=2^23x1 ks=2^3x5".
std::string describe(const PbsParameters& params);

// Cost of one key switch plus one bootstrap: single-thread nanoseconds by a model fitted to this
// engine's measured kernel times (parameters.cpp, "Cost model"). What the parameter search
// minimises; its ratios, not its absolute values, carry over to other machines.
double estimated_cost(const PbsParameters& params);
// The same with the key switch reading a ciphertext of `keyswitch_input` coefficients (a lookup
// whose input is under another partition's big key: its key switch starts from that k*N).
double estimated_cost(const PbsParameters& params, LweDimension keyswitch_input);

struct SearchOptions {
  double log2_p_fail = -40;  // per-bootstrap failure bound, must be < 0
  double nu2 = 1;            // squared 2-norm of the weights applied before a lookup, >= 1
  std::size_t min_glwe_dimension = 1;
  std::size_t max_glwe_dimension = 3;
  std::size_t min_log2_polynomial_size = 8;
  std::size_t max_log2_polynomial_size = 16;  // at most 16
  // extension_log tried (lookup tables of N * 2^extension_log, bootstrap.h), with
  // N * 2^extension_log <= 2^16 whatever the key's N range: min <= max <= 6.
  std::size_t min_extension_log = 0;
  std::size_t max_extension_log = 4;
  std::size_t min_lwe_dimension = 450;  // at least the curve's 450
  std::size_t max_lwe_dimension = 1200;
  std::size_t max_pbs_level = 5;
  // The bootstrap key is multiplied in a double-precision FFT: keep B^l within a double mantissa.
  std::size_t max_pbs_base_log_times_level = 52;
  std::size_t max_ks_level = 10;
  std::size_t max_ks_base_log_times_level = 64;
  // The curve the keys' noise is taken from (security.h): 128 bits, or 132 for a margin.
  SecurityLevel security = SecurityLevel::k128;
};

// The highest level both of the set's noises meet: k132, else k128 (validate() demands 128).
SecurityLevel achieved_security(const PbsParameters& params);

// Cheapest parameters (by estimated_cost) with the noise of every key at the options.security
// curve's minimum for its dimension (n for the key switching key, k*N for the bootstrap key and
// fresh encryptions) and log2_failure_probability(params, p, nu2) <= options.log2_p_fail. For
// many-LUT with 2^m tables per bootstrap pass p + m. Returns nullopt when nothing in the ranges
// fits. Throws std::invalid_argument for inconsistent options or p outside 1..16.
std::optional<PbsParameters> search_parameters(MessageBits p, const SearchOptions& options = {});

}  // namespace fheml::tfhe
