#include "fheml/tfhe/csprng.h"

#include <sodium.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <numbers>
#include <stdexcept>
#include <string>
#include <utility>

namespace fheml::tfhe {
namespace {

void ensure_sodium() {
  static const int status = sodium_init();
  if (status < 0) throw std::runtime_error("libsodium failed to initialise");
}

}  // namespace

Seed random_seed() {
  ensure_sodium();
  Seed seed;
  randombytes_buf(seed.data(), seed.size());
  return seed;
}

Seed test_seed(std::uint64_t value) {
  Seed seed{};
  for (std::size_t i = 0; i < 8; ++i) seed[i] = static_cast<std::uint8_t>(value >> (8 * i));
  seed[31] = 0xA5;  // never all-zero, so test seeds are recognisable in dumps
  return seed;
}

Csprng::Csprng(const Seed& seed, std::uint64_t stream) {
  ensure_sodium();
  std::memcpy(key_.data(), seed.data(), key_.size());
  for (std::size_t i = 0; i < 8; ++i) nonce_[i] = static_cast<std::uint8_t>(stream >> (8 * i));
}

Csprng::Csprng(Csprng&& other) noexcept { *this = std::move(other); }

Csprng& Csprng::operator=(Csprng&& other) noexcept {
  if (this == &other) return *this;
  key_ = other.key_;
  nonce_ = other.nonce_;
  block_counter_ = other.block_counter_;
  buffer_ = other.buffer_;
  position_ = other.position_;
  spare_gaussian_ = other.spare_gaussian_;
  has_spare_gaussian_ = other.has_spare_gaussian_;
  moved_from_ = other.moved_from_;
  sodium_memzero(other.key_.data(), other.key_.size());
  sodium_memzero(other.buffer_.data(), other.buffer_.size() * sizeof(std::uint64_t));
  other.position_ = kBufferWords;  // the next draw refills, and refill refuses
  other.has_spare_gaussian_ = false;
  other.spare_gaussian_ = 0.0;
  other.moved_from_ = true;
  return *this;
}

void Csprng::refill() {
  if (moved_from_) throw std::logic_error("Csprng: drawing from a moved-from generator");
  static_assert(std::endian::native == std::endian::little,
                "keystream words are read little-endian; big-endian hosts need a byte swap here");
  static constexpr std::array<std::uint8_t, kBufferWords * 8> kZeros{};
  auto* bytes = reinterpret_cast<unsigned char*>(buffer_.data());
  crypto_stream_chacha20_xor_ic(bytes, kZeros.data(), kZeros.size(), nonce_.data(), block_counter_,
                                key_.data());
  block_counter_ += kZeros.size() / 64;  // ChaCha20 blocks are 64 bytes
  position_ = 0;
}

std::uint64_t Csprng::next_u64() {
  if (position_ == kBufferWords) refill();
  return buffer_[position_++];
}

void Csprng::fill_u64(std::span<std::uint64_t> out) {
  std::size_t done = 0;
  while (done < out.size()) {
    if (position_ == kBufferWords) refill();
    const std::size_t take = std::min(out.size() - done, kBufferWords - position_);
    std::memcpy(out.data() + done, buffer_.data() + position_, take * sizeof(std::uint64_t));
    position_ += take;
    done += take;
  }
}

double Csprng::next_unit_double() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

void Csprng::fill_bits(std::span<std::uint64_t> out) {
  std::size_t i = 0;
  while (i < out.size()) {
    std::uint64_t word = next_u64();
    for (int b = 0; b < 64 && i < out.size(); ++b, ++i, word >>= 1) out[i] = word & 1;
  }
}

Torus Csprng::gaussian_noise(NoiseStdDev std) {
  // Beyond 2^-10 the scaled sample could leave the int64 range; no secure set comes close.
  if (!(std.value >= 0.0 && std.value <= 0x1p-10)) {
    throw std::invalid_argument("noise standard deviation must be in [0, 2^-10], found " +
                                std::to_string(std.value));
  }
  double z;
  if (has_spare_gaussian_) {
    z = spare_gaussian_;
    has_spare_gaussian_ = false;
  } else {
    // Box-Muller on two uniforms; u1 in (0, 1] so the logarithm is finite.
    const double u1 = 1.0 - next_unit_double();
    const double u2 = next_unit_double();
    const double radius = std::sqrt(-2.0 * std::log(u1));
    z = radius * std::cos(2.0 * std::numbers::pi * u2);
    spare_gaussian_ = radius * std::sin(2.0 * std::numbers::pi * u2);
    has_spare_gaussian_ = true;
  }
  const double scaled = std::nearbyint(z * std.value * 0x1.0p64);
  // |scaled| < 2^63 for every standard deviation a secure parameter set uses (<= 2^-10).
  return static_cast<Torus>(static_cast<std::int64_t>(scaled));
}

Seed derive_seed(const Seed& parent, std::string_view label) {
  ensure_sodium();
  Seed child;
  // Keyed BLAKE2b: a PRF of the parent seed, one output per label (domain separation).
  crypto_generichash(child.data(), child.size(),
                     reinterpret_cast<const unsigned char*>(label.data()), label.size(),
                     parent.data(), parent.size());
  return child;
}

Csprng::~Csprng() {
  sodium_memzero(key_.data(), key_.size());
  sodium_memzero(buffer_.data(), buffer_.size() * sizeof(std::uint64_t));
}

Seed Csprng::derive_seed() {
  std::array<std::uint64_t, kSeedBytes / 8> words;
  fill_u64(words);
  Seed seed;
  std::memcpy(seed.data(), words.data(), seed.size());
  return seed;
}

void Csprng::add_gaussian_noise(std::span<Torus> out, NoiseStdDev std) {
  for (auto& x : out) x += gaussian_noise(std);
}

}  // namespace fheml::tfhe
