// Cryptographically secure randomness for keys, masks and noise.
//
// The stream cipher is libsodium's ChaCha20 (a well-kept implementation with its own runtime SIMD
// dispatch); we only add buffering and the samplers TFHE needs. A generator is a (seed, stream id)
// pair, so that a seeded (compressed) object can regenerate its masks later, and so that the
// masks of object i can be regenerated independently of object j (parallel decompression).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <string_view>

#include "fheml/tfhe/types.h"

namespace fheml::tfhe {

inline constexpr std::size_t kSeedBytes = 32;
using Seed = std::array<std::uint8_t, kSeedBytes>;

// A fresh seed from the operating system's entropy source (getrandom).
Seed random_seed();

// Deterministic seed for reproducible tests: never use it for real keys.
Seed test_seed(std::uint64_t value);

// A child seed for one purpose: a keyed BLAKE2b of the parent under `label`, so that different
// labels give independent seeds (e.g. the masks of the key switching and bootstrap keys).
Seed derive_seed(const Seed& parent, std::string_view label);

class Csprng {
 public:
  // `stream` selects an independent keystream (the ChaCha20 nonce) under the same seed.
  explicit Csprng(const Seed& seed, std::uint64_t stream = 0);
  // Not copyable: a copy of a noise generator would replay the same noise.
  Csprng(const Csprng&) = delete;
  Csprng& operator=(const Csprng&) = delete;
  // Moving hands the stream over: the moved-from generator's key and buffer are wiped and any
  // later draw from it throws std::logic_error (it would otherwise replay the new owner's
  // stream).
  Csprng(Csprng&& other) noexcept;
  Csprng& operator=(Csprng&& other) noexcept;
  // Wipes the key and the buffered keystream.
  ~Csprng();

  std::uint64_t next_u64();
  void fill_u64(std::span<std::uint64_t> out);
  // Uniform in [0, 1) with 53 random bits.
  double next_unit_double();
  // Uniform bits, one per output word: the binary secret key distribution.
  void fill_bits(std::span<std::uint64_t> out);
  // Adds to each word a centred Gaussian sample of standard deviation `std` (a torus fraction),
  // rounded to the nearest integer on the 2^64 scale (a rounded Gaussian, as in tfhe-rs and
  // Concrete; the variance difference from rounding, 1/12 of a unit, is negligible).
  void add_gaussian_noise(std::span<Torus> out, NoiseStdDev std);
  Torus gaussian_noise(NoiseStdDev std);
  // A seed drawn from this generator: the key of independent child streams (one per key entry,
  // so that key generation can run in parallel and stay reproducible). As secret as this
  // generator's output.
  Seed derive_seed();

 private:
  void refill();

  static constexpr std::size_t kBufferWords = 512;  // 4 KiB of keystream per call
  std::array<std::uint8_t, 32> key_{};
  std::array<std::uint8_t, 8> nonce_{};
  std::uint64_t block_counter_ = 0;
  std::array<std::uint64_t, kBufferWords> buffer_{};
  std::size_t position_ = kBufferWords;
  double spare_gaussian_ = 0.0;
  bool has_spare_gaussian_ = false;
  bool moved_from_ = false;
};

// The noise of an object whose methods run concurrently (a model or a client called from
// several threads, the Python bindings releasing the GIL): each call takes its own generator,
// keyed by a seed drawn under a lock from the object's parent stream, so that no two calls
// ever share a stream (two ciphertexts with the same noise and different masks would give a
// noiseless linear equation on the secret key). Not movable: hold it by pointer.
class NoiseSource {
 public:
  explicit NoiseSource(const Seed& seed) : parent_(seed) {}
  NoiseSource(const NoiseSource&) = delete;
  NoiseSource& operator=(const NoiseSource&) = delete;

  // A generator for one call; thread-safe.
  Csprng next() {
    std::lock_guard<std::mutex> lock(mutex_);
    return Csprng(parent_.derive_seed());
  }

 private:
  std::mutex mutex_;
  Csprng parent_;
};

}  // namespace fheml::tfhe
