// Signed gadget decomposition with base B = 2^base_log over `level` levels.
//
// x is first rounded to the closest multiple of q / B^level, then written as
// sum_{j=0}^{level-1} d_j * q / B^{j+1} with balanced digits d_j in [-B/2, B/2). Balanced digits
// have E[d^2] = (B^2 + 2) / 12, the figure the noise model uses.
#pragma once

#include <cstdint>
#include <span>

#include "fheml/tfhe/types.h"

namespace fheml::tfhe {

class Decomposer {
 public:
  Decomposer(DecompositionBaseLog base_log, DecompositionLevelCount level);

  DecompositionBaseLog base_log() const { return DecompositionBaseLog{base_log_}; }
  DecompositionLevelCount level() const { return DecompositionLevelCount{level_}; }

  // The gadget value of level j (0 = most significant): q / B^(j+1).
  Torus gadget(std::size_t j) const { return Torus{1} << (64 - base_log_ * (j + 1)); }
  Torus closest_representable(Torus x) const;
  // digits[j] multiplies gadget(j), each in [-B/2, B/2).
  void decompose(Torus x, std::span<std::int64_t> digits) const;
  // The key switch's digits: balanced and of mean zero. A digit of exactly B/2 becomes -B/2 (and
  // carries) or stays +B/2 by one of the input's bits below the rounding bit, so that both are
  // equally likely; E[d^2] = (B^2 + 2)/12 as for decompose(). A level without such a bit (when
  // base_log * level > 62 - level; the key switch's sets use at most 30 bits) keeps +B/2.
  // decompose()'s digits have mean -1/2 on uniform inputs: multiplied by the key switching key's
  // fixed noises, that mean is a bias shared by every ciphertext under one key, a sixth of the
  // key noise's variance at B = 4 (measured with ks = 2^2 x 5: 3-bit lookups at p_error 0.1
  // failed 8% or 13% of the time depending on the key). The external product keeps decompose()'s
  // digits: its bases are 2^7 and above, where the mean is 10^-4 of E[d^2] or less.
  void decompose_zero_mean(Torus x, std::span<std::int64_t> digits) const;
  // Level-major: out[j * N + i] is digit j of in[i].
  void decompose_polynomial(std::span<const Torus> in, std::span<std::int64_t> out) const;

 private:
  std::size_t base_log_;
  std::size_t level_;
};

}  // namespace fheml::tfhe
