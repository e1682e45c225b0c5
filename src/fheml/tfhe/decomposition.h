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
  // digits[j] multiplies gadget(j).
  void decompose(Torus x, std::span<std::int64_t> digits) const;
  // Level-major: out[j * N + i] is digit j of in[i].
  void decompose_polynomial(std::span<const Torus> in, std::span<std::int64_t> out) const;

 private:
  std::size_t base_log_;
  std::size_t level_;
};

}  // namespace fheml::tfhe
