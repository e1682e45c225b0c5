#include "fheml/tfhe/decomposition.h"

#include <algorithm>
#include <string>

#include "fheml/tfhe/errors.h"

namespace fheml::tfhe {

Decomposer::Decomposer(DecompositionBaseLog base_log, DecompositionLevelCount level)
    : base_log_(base_log.value), level_(level.value) {
  if (base_log_ < 1 || level_ < 1 || base_log_ * level_ >= 64) {
    throw_invalid_argument(
        "decomposition needs base_log >= 1, level >= 1 and base_log * level < 64, "
        "found base_log " +
        std::to_string(base_log_) + ", level " + std::to_string(level_));
  }
}

Torus Decomposer::closest_representable(Torus x) const {
  const std::size_t shift = 64 - base_log_ * level_;
  const Torus rounding = Torus{1} << (shift - 1);
  return ((x + rounding) >> shift) << shift;
}

namespace {

// Shared digit loop; `state` holds the rounded top base_log * level bits of the input.
inline void digits_from_state(Torus state, std::size_t base_log, std::size_t level,
                              std::int64_t* out, std::size_t stride) {
  const Torus mask = (Torus{1} << base_log) - 1;
  const std::int64_t half = std::int64_t{1} << (base_log - 1);
  for (std::size_t j = level; j-- > 0;) {
    const Torus d = state & mask;
    // Balanced digit: a digit >= B/2 becomes d - B and carries one into the next level.
    // Unsigned arithmetic, converted at the end: no signed overflow for any base.
    const Torus carry = d >= static_cast<Torus>(half) ? 1 : 0;
    state = (state >> base_log) + carry;
    out[j * stride] = static_cast<std::int64_t>(d - (carry << base_log));
  }
}

}  // namespace

void Decomposer::decompose(Torus x, std::span<std::int64_t> digits) const {
  FHEML_ASSERT_EQ(digits.size(), level_);
  const std::size_t shift = 64 - base_log_ * level_;
  const Torus state = (x >> shift) + ((x >> (shift - 1)) & 1);
  digits_from_state(state, base_log_, level_, digits.data(), 1);
}

void Decomposer::decompose_zero_mean(Torus x, std::span<std::int64_t> digits) const {
  FHEML_ASSERT_EQ(digits.size(), level_);
  const std::size_t shift = 64 - base_log_ * level_;
  Torus state = (x >> shift) + ((x >> (shift - 1)) & 1);
  const Torus mask = (Torus{1} << base_log_) - 1;
  const Torus half = Torus{1} << (base_log_ - 1);
  for (std::size_t j = level_; j-- > 0;) {
    const Torus d = state & mask;
    state >>= base_log_;
    // At a tie (d = B/2) the sign follows one of the bits below the rounding bit, a different one
    // per level: uniform and independent of the kept bits, so that every digit's residue stays
    // uniform and E[d^2] = (B^2 + 2)/12 holds exactly. (Rounding half to even on the next digit
    // instead, as TFHE-rs does, skews that digit towards even residues: E[d^2] came out 8.6% high
    // at B = 4; and the most significant digit has no next digit.)
    const Torus tie = shift >= j + 2 ? (x >> (shift - 2 - j)) & 1 : 0;
    const Torus carry = (d > half || (d == half && tie != 0)) ? 1 : 0;
    state += carry;
    digits[j] = static_cast<std::int64_t>(d - (carry << base_log_));
  }
}

namespace {

// The hot loop of every external product: level-major digits of a polynomial. Coefficients are
// processed in chunks whose rounded states stay in L1, level by level, so that each inner loop
// is a straight vectorisable pass (64-bit compares need AVX2; the clones are chosen at load time).
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default"))) void decompose_kernel(
    const Torus* __restrict in, std::int64_t* __restrict out, std::size_t n, std::size_t base_log,
    std::size_t level) {
  constexpr std::size_t kChunk = 256;
  const std::size_t shift = 64 - base_log * level;
  const Torus mask = (Torus{1} << base_log) - 1;
  const Torus half = Torus{1} << (base_log - 1);
  Torus state[kChunk];
  for (std::size_t start = 0; start < n; start += kChunk) {
    const std::size_t m = std::min(kChunk, n - start);
    for (std::size_t i = 0; i < m; ++i) {
      const Torus x = in[start + i];
      state[i] = (x >> shift) + ((x >> (shift - 1)) & 1);
    }
    for (std::size_t j = level; j-- > 0;) {
      std::int64_t* row = out + j * n + start;
      for (std::size_t i = 0; i < m; ++i) {
        const Torus d = state[i] & mask;
        const Torus carry = d >= half ? 1 : 0;
        state[i] = (state[i] >> base_log) + carry;
        row[i] = static_cast<std::int64_t>(d - (carry << base_log));
      }
    }
  }
}

}  // namespace

void Decomposer::decompose_polynomial(std::span<const Torus> in,
                                      std::span<std::int64_t> out) const {
  FHEML_ASSERT_EQ(out.size(), in.size() * level_);
  decompose_kernel(in.data(), out.data(), in.size(), base_log_, level_);
}

}  // namespace fheml::tfhe
